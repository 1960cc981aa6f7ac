package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/chromedp/chromedp"
)

// screenshot loads page in headless Chromium (a fresh profile) and writes
// a PNG of the whole of it to cfg.out.
func screenshot(ctx context.Context, cfg config, page string) error {
	path := cfg.chromium
	if path == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				path = p
				break
			}
		}
	}
	if path == "" {
		return fmt.Errorf("no Chromium: set -chromium or EXTAGRAM_CHROMIUM")
	}
	dir, err := os.MkdirTemp("", "extagram-render-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	htmlPath := filepath.Join(dir, "dashboard.html")
	if err := os.WriteFile(htmlPath, []byte(page), 0o600); err != nil {
		return err
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.WindowSize(cfg.width, 900),
	)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	if err := chromedp.Do(bctx); err != nil { // starts the browser, for as long as bctx
		return fmt.Errorf("chromium: %w", err)
	}
	tctx, cancelTimeout := context.WithTimeout(bctx, time.Minute)
	defer cancelTimeout()
	if err := chromedp.Do(tctx, chromedp.Navigate("file://"+htmlPath)); err != nil {
		return fmt.Errorf("chromium: %w", err)
	}
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("chromium: %w", err)
	}
	if err := os.WriteFile(cfg.out, png, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "render: wrote %s (%d bytes)\n", cfg.out, len(png))
	return nil
}
