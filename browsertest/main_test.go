package browsertest

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/extagram/extagram/internal/testutil"
)

// The one Chromium of the package, started by the first test that needs it
// and stopped by TestMain. Each test opens its own tab in its own browser
// context (a fresh profile: no shared cookies or cache).
var shared struct {
	once    sync.Once
	ctx     context.Context // a chromedp context with the browser
	stop    func()
	dataDir string
	skip    string // why there is no browser, when a tool is missing
	err     error  // why the browser did not start
	output  testutil.Buffer
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.stop != nil {
		shared.stop()
	}
	if shared.dataDir != "" {
		_ = os.RemoveAll(shared.dataDir)
	}
	os.Exit(code)
}

// browser returns the context of the shared browser, starting it on first
// use.
func browser(t testing.TB) context.Context {
	t.Helper()
	shared.once.Do(startBrowser)
	if shared.skip != "" {
		testutil.NeedTool(t, "%s", shared.skip)
	}
	if shared.err != nil {
		t.Fatalf("start chromium: %v\n%s", shared.err, shared.output.String())
	}
	return shared.ctx
}

// startBrowser starts EXTAGRAM_CHROMIUM (which must then work), else the
// first of the usual names on PATH.
func startBrowser() {
	shared.output.Max = 64 << 10 // the browser's output, shown when it fails to start
	path := os.Getenv("EXTAGRAM_CHROMIUM")
	if _, err := exec.LookPath(path); path != "" && err != nil {
		shared.err = fmt.Errorf("EXTAGRAM_CHROMIUM=%s: %w", path, err)
		return
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); path == "" && err == nil {
			path = p
		}
	}
	if path == "" {
		shared.skip = "no Chromium found (chromium, chromium-browser or google-chrome on PATH): install Debian's chromium package, or set EXTAGRAM_CHROMIUM to the browser"
		return
	}
	dir, err := os.MkdirTemp("", "extagram-chromium-")
	if err != nil {
		shared.err = err
		return
	}
	shared.dataDir = dir
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		// The edge's certificate is self-signed.
		chromedp.IgnoreCertErrors,
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(&shared.output),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	shared.stop = func() {
		cancel()
		cancelAlloc()
	}
	// Starts the browser; the browser lives as long as ctx, so no timeout
	// here (go test's own timeout stops a hung start).
	if err := chromedp.Do(ctx); err != nil {
		shared.err = err
		return
	}
	shared.ctx = ctx
}

// axeSource returns axe.min.js: EXTAGRAM_AXE_JS, else where `npm install
// --prefix /opt/extagram-tools axe-core` puts it.
func axeSource(t testing.TB) string {
	t.Helper()
	p := cmp.Or(os.Getenv("EXTAGRAM_AXE_JS"), "/opt/extagram-tools/node_modules/axe-core/axe.min.js")
	b, err := os.ReadFile(p)
	if err != nil {
		if os.Getenv("EXTAGRAM_AXE_JS") != "" {
			t.Fatalf("EXTAGRAM_AXE_JS: %v", err)
		}
		testutil.NeedTool(t, "axe-core not found (%v): install it with `npm install --prefix /opt/extagram-tools --ignore-scripts axe-core@4.11.0` or set EXTAGRAM_AXE_JS to axe.min.js", err)
	}
	return string(b)
}
