package browsertest

import (
	"bytes"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/extagram/extagram/internal/testutil"
)

// screenshotDir is where the committed screenshots live, relative to this
// package.
const screenshotDir = "../docs/screenshots"

// TestScreenshots takes the first screen of a feed with a few photo posts on
// a desktop and on a phone. With EXTAGRAM_UPDATE_SCREENSHOTS=1 it writes them
// to docs/screenshots/ (the README shows them); otherwise to a temporary
// folder, so that a test run never changes the tree.
func TestScreenshots(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if os.Getenv("EXTAGRAM_UPDATE_SCREENSHOTS") == "1" {
		dir = screenshotDir
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m := startMesh(t)
	for i, p := range []struct {
		text string
		w, h int
	}{
		{"Night sky from the terrace.", 1080, 1080},
		{"Evening walk, the hills turning purple.", 1280, 720},
		{"First light over the valley.", 1080, 720},
	} {
		publish(t, m, p.text, testutil.EncodePNG(t, photo(p.w, p.h, 2-i)))
	}
	for _, vp := range []viewport{desktop, phone} {
		t.Run(vp.name, func(t *testing.T) {
			tb := newTab(t, m, vp)
			tb.open("/", http.StatusOK)
			// The whole page in one viewport: every image, lazy or not, is
			// in view and loads.
			height := eval[int64](tb, `document.documentElement.scrollHeight`)
			full := vp
			full.height = height
			tb.do(tb.emulate(full))
			tb.waitJS(`document.fonts.status === "loaded" && Array.from(document.images).every((i) => i.complete && i.naturalWidth > 0)`)
			shot, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(shot))
			if err != nil {
				t.Fatalf("screenshot is not a PNG: %v", err)
			}
			scale := int64(1)
			if vp.mobile {
				scale = 2
			}
			if b := img.Bounds(); int64(b.Dx()) != vp.width*scale || int64(b.Dy()) != height*scale {
				t.Errorf("screenshot %dx%d, want %dx%d", b.Dx(), b.Dy(), vp.width*scale, height*scale)
			}
			f := filepath.Join(dir, "feed-"+vp.name+".png")
			if err := os.WriteFile(f, shot, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d KB", f, len(shot)>>10)
		})
	}
}
