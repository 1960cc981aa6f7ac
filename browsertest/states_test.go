package browsertest

import (
	"bytes"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/extagram/extagram/edge/web"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testutil"
)

// TestFeed: every state of the page, on a desktop and on a 360px phone
// (axe-core finds no accessibility violation, the page does not scroll
// sideways); pagination; the checks' own checks (axe and the console do see
// violations); the security headers of every kind of response; the
// screenshots. Each tab stays on one mesh (a tab going from one to the
// other can lose track of the page's script context) and goes through its
// steps in turn.
func TestFeed(t *testing.T) {
	t.Parallel()
	axe := axeSource(t)
	full, shots := startMesh(t), startMesh(t)
	tabs := []*tab{newTab(t, desktop), newTab(t, phone)}
	shotTabs := []*tab{newTab(t, desktop), newTab(t, phone)}
	// The screenshots' mesh shows the empty feed before it gets its posts.
	t.Run("empty", func(t *testing.T) {
		for _, tb := range shotTabs {
			tb.step(t, tb.vp.name, func(t *testing.T) {
				t.Parallel()
				tb.open(shots.URL+"/", http.StatusOK)
				tb.do(chromedp.WaitVisible(chromedp.CSS("main .empty")))
				if got := eval[string](tb, `document.querySelector("main .empty").textContent + document.querySelectorAll(".post, .pager").length`); got != "No posts yet. Be the first to publish.0" {
					t.Errorf("empty feed: %q, want the message alone", got)
				}
				tb.audit(axe)
			})
		}
	})
	for i, p := range []struct {
		text string
		w, h int
	}{
		{"Night sky from the terrace.", 1080, 1080},
		{"Evening walk, the hills turning purple.", 1280, 720},
		{"First light over the valley.", 1080, 720},
	} {
		publish(t, shots, p.text, testutil.EncodePNG(t, photo(p.w, p.h, 2-i)))
	}
	// A page and a bit of posts (photos of several shapes, a long unbroken
	// word).
	publish(t, full, "the oldest post", testutil.EncodePNG(t, photo(300, 300, 2)))
	filler := testutil.EncodePNG(t, photo(120, 90, 0))
	for i := range 19 {
		publish(t, full, "filler post "+strconv.Itoa(i+1), filler)
	}
	publish(t, full, "a wide panorama", testutil.EncodePNG(t, photo(1600, 500, 0)))
	publish(t, full, "a tall portrait", testutil.EncodePNG(t, photo(400, 700, 3)))
	publish(t, full, "a long word: "+strings.Repeat("supercalifragilistic", 12)+" and a link-like text https://example.invalid/"+strings.Repeat("x", 120), nil)
	publish(t, full, "the newest post, with a photo", testutil.EncodePNG(t, photo(1080, 720, 1)))
	stored := storedPosts(t, full)
	notImage := writeFile(t, "notes.png", []byte("not a picture\n"))
	pic := pngFile(t, "chosen.png", 800, 600, 0)
	// Each state: the page at path (none: the page of the state before),
	// then what a person does on it.
	states := []struct {
		name   string
		path   string
		status int64
		then   func(t *testing.T, tb *tab)
	}{
		{"posts", "/", 200, nil},
		{"photo-chosen", "", 0, func(t *testing.T, tb *tab) {
			tb.do(chromedp.SetUploadFiles(chromedp.ID("file"), []string{pic}), chromedp.WaitVisible(chromedp.ID("remove")))
			tb.waitJS(`document.getElementById("preview").src.startsWith("blob:") && document.getElementById("preview").complete`)
		}},
		{"not-an-image-chosen", "", 0, func(t *testing.T, tb *tab) {
			tb.do(chromedp.SetUploadFiles(chromedp.ID("file"), []string{notImage}), chromedp.WaitVisible(chromedp.ID("photo-note")))
		}},
		{"error", "", 0, func(t *testing.T, tb *tab) {
			tb.do(chromedp.SendKeys(chromedp.ID("post"), "a draft that must survive "+strings.Repeat("long", 30)))
			tb.expectConsole("the server responded with a status of 415")
			if resp := tb.load(chromedp.Click(chromedp.ID("publish"))); resp.Status != http.StatusUnsupportedMediaType {
				t.Fatalf("upload of a text file: %d, want 415", resp.Status)
			}
			tb.do(chromedp.WaitVisible(chromedp.ID("upload-error")))
		}},
		{"older", "/", 200, func(t *testing.T, tb *tab) {
			tb.load(chromedp.Click(chromedp.CSS(".pager .older")))
			tb.do(chromedp.WaitVisible(chromedp.CSS(".pager .newest")))
		}},
		// The page of one post, which Telegram messages link to, and the
		// page of a link to no post.
		{"post", "/posts/" + stored[0].ID.String(), 200, nil},
		{"post-not-found", "/posts/" + contract.NewID().String(), 404, nil},
	}
	for _, tb := range tabs {
		tb.step(t, tb.vp.name, func(t *testing.T) {
			t.Parallel()
			for _, s := range states {
				tb.step(t, s.name, func(t *testing.T) {
					if s.status >= 400 {
						tb.expectConsole("the server responded with a status of " + strconv.Itoa(int(s.status)))
					}
					if s.path != "" {
						tb.open(full.URL+s.path, s.status)
					}
					if s.then != nil {
						s.then(t, tb)
					}
					tb.audit(axe)
				})
			}
			// One viewport is enough for these: the desktop's, which
			// renders a quarter of the phone's pixels.
			if tb.vp.mobile {
				return
			}
			// Pages of 20, the first photos load eagerly, the rest lazily, each
			// with its stored size; Older posts and Newest posts move between
			// pages.
			tb.step(t, "pagination", func(t *testing.T) {
				tb.open(full.URL+"/", http.StatusOK)
				posts := tb.posts()
				if len(posts) != 20 || posts[0].Text != "the newest post, with a photo" || posts[19].Text != "filler post 4" {
					t.Fatalf("first page: %d posts, from %q", len(posts), posts[0].Text)
				}
				for i, p := range posts {
					img := stored[i].Image
					if img == nil {
						continue
					}
					wantLoading := "lazy"
					if i < 2 {
						wantLoading = ""
					}
					if p.Width != strconv.Itoa(img.Width) || p.Height != strconv.Itoa(img.Height) || p.Loading != wantLoading {
						t.Errorf("post %d: width=%q height=%q loading=%q, want %d, %d, %q", i, p.Width, p.Height, p.Loading, img.Width, img.Height, wantLoading)
					}
				}
				// A lazy image far down the page loads once scrolled to.
				tb.do(chromedp.ScrollIntoView(chromedp.CSS("main .post:last-of-type img")))
				tb.waitJS(`document.querySelector("main .post:last-of-type img").naturalWidth === 120`)
				if eval[bool](tb, `document.querySelector(".pager .newest") !== null`) {
					t.Error("the first page links to the newest posts")
				}
				resp := tb.load(chromedp.Click(chromedp.CSS(".pager .older")))
				if resp.Status != http.StatusOK || !strings.Contains(resp.URL, "/?page=") {
					t.Fatalf("Older posts: %d %s", resp.Status, resp.URL)
				}
				if older := tb.posts(); len(older) != 4 || older[0].Text != "filler post 3" || older[3].Text != "the oldest post" {
					t.Fatalf("second page: %+v", older)
				}
				if eval[bool](tb, `document.querySelector(".pager .older") !== null`) {
					t.Error("the last page links to older posts")
				}
				tb.load(chromedp.Click(chromedp.CSS(".pager .newest")))
				if posts := tb.posts(); len(posts) != 20 || posts[0].Text != "the newest post, with a photo" {
					t.Errorf("Newest posts: %d posts from %q", len(posts), posts[0].Text)
				}
			})
			// The axe check sees a photo without alt text and text without
			// contrast, made on purpose on the page in the tab.
			tb.step(t, "axe sees violations", func(t *testing.T) {
				// CSSOM changes are not inline style for the CSP; setAttribute("style")
				// would be.
				tb.do(chromedp.Evaluate[chromedp.Void](`document.querySelector("main .post img").removeAttribute("alt");
					document.querySelector(".site-name a").style.color = "#eeeeee";`))
				found := strings.Join(runAxe(t, tb, axe), "\n")
				if !strings.Contains(found, "image-alt (") || !strings.Contains(found, "color-contrast (") {
					t.Errorf("axe found %s; want image-alt and color-contrast", found)
				}
			})
			// The console watcher sees CSP violations: an inline script and an
			// inline style added to the page are refused and reported.
			tb.step(t, "CSP violations are reported", func(t *testing.T) {
				tb.expectConsole("Content Security Policy directive 'script-src 'self''")
				tb.expectConsole("Content Security Policy directive 'style-src 'self''")
				tb.do(chromedp.Evaluate[chromedp.Void](`(() => {
					const s = document.createElement("script");
					s.textContent = "window.inlineRan = true";
					document.body.appendChild(s);
					document.body.setAttribute("style", "background: red");
				})()`))
				if eval[bool](tb, `window.inlineRan === true`) {
					t.Error("an inline script ran")
				}
				tb.mu.Lock()
				console := strings.Join(tb.console, "\n")
				tb.mu.Unlock()
				if !strings.Contains(console, "script-src") || !strings.Contains(console, "style-src") {
					t.Errorf("CSP violations not seen on the console: %q", console)
				}
			})
			// Every kind of edge response the browser loads carries the security
			// headers (the tab checks each response it saw as the step ends).
			tb.step(t, "security headers", func(t *testing.T) {
				id := stored[0].Image.ID.String()
				// Chromium shows an image opened as a page in a document of its own,
				// styled inline; the edge's CSP refuses that style (the image shows
				// all the same, unstyled). Expected for that URL only.
				tb.expectConsole("Applying inline style violates the following Content Security Policy directive 'style-src 'self''", "("+full.URL+"/storage/"+id+")")
				for path, status := range map[string]int64{
					"/": 200, "/extagram.php": 200, "/static/style.css": 200, "/static/app.js": 200,
					"/static/preview.svg": 200, "/static/favicon.svg": 200, "/storage/" + id: 200,
					"/api/v1/posts": 200, "/healthz": 200, "/nope": 404, "/storage/not-an-id": 400,
				} {
					if status >= 400 {
						tb.expectConsole("the server responded with a status of " + strconv.Itoa(int(status)))
					}
					tb.open(full.URL+path, status)
				}
				// The policy itself: every directive the page needs, nothing unsafe.
				for _, d := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'",
					"frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'", "img-src 'self' blob:"} {
					if !strings.Contains(web.CSP, d) {
						t.Errorf("CSP lacks %s", d)
					}
				}
				if strings.Contains(web.CSP, "unsafe") {
					t.Errorf("CSP allows something unsafe: %s", web.CSP)
				}
				tb.mu.Lock()
				defer tb.mu.Unlock()
				if len(tb.responses) < 11 {
					t.Errorf("only %d responses seen", len(tb.responses))
				}
			})
		})
	}
	// The first screen of a feed with a few photo posts. With
	// EXTAGRAM_UPDATE_SCREENSHOTS=1 written to docs/screenshots/ (the
	// README shows them), otherwise to a temporary folder.
	for _, tb := range shotTabs {
		tb.step(t, "screenshot "+tb.vp.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if os.Getenv("EXTAGRAM_UPDATE_SCREENSHOTS") == "1" {
				dir = "../docs/screenshots"
			}
			tb.open(shots.URL+"/", http.StatusOK)
			// The whole page in one viewport: every image, lazy or not, is in view
			// and loads.
			vp := tb.vp
			vp.height = eval[int64](tb, `document.documentElement.scrollHeight`)
			tb.do(tb.emulate(vp))
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
			if b := img.Bounds(); int64(b.Dx()) != vp.width*scale || int64(b.Dy()) != vp.height*scale {
				t.Errorf("screenshot %dx%d, want %dx%d", b.Dx(), b.Dy(), vp.width*scale, vp.height*scale)
			}
			f := filepath.Join(dir, "feed-"+vp.name+".png")
			if err := os.WriteFile(f, shot, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d KB", f, len(shot)>>10)
		})
	}
}

// audit waits for the images in the first screen, as a person would, then
// checks that the page does not scroll sideways and that axe finds nothing.
func (tb *tab) audit(axe string) {
	tb.t.Helper()
	tb.waitJS(`Array.from(document.images).filter((i) => i.getBoundingClientRect().top < innerHeight && i.loading !== "lazy").every((i) => i.complete)`)
	tb.noHorizontalScroll()
	for _, v := range runAxe(tb.t, tb, axe) {
		tb.t.Errorf("axe %s", v)
	}
}

// runAxe injects axe-core through the DevTools protocol (which the page's
// CSP does not govern: a <script> element with the same code would be
// refused), runs it on the whole document and returns the violations, one
// "rule-id (impact): ..." per node.
func runAxe(t *testing.T, tb *tab, source string) []string {
	t.Helper()
	if !eval[bool](tb, `typeof window.axe === "object"`) {
		tb.do(chromedp.Evaluate[chromedp.Void](source))
	}
	res := eval[struct {
		Violations, Incomplete []string
		Version                string
	}](tb, `axe.run(document, {resultTypes: ["violations"]}).then((r) => ({Version: r.testEngine.version,
		Violations: r.violations.flatMap((v) => v.nodes.map((n) => v.id + " (" + v.impact + "): " + v.help + "\n\t" +
			n.target.join(" ") + " " + n.html + "\n\t" + n.failureSummary.replaceAll("\n", "\n\t"))),
		Incomplete: r.incomplete.map((i) => i.id)}))`)
	if res.Version == "" {
		t.Fatal("axe did not run")
	}
	if len(res.Incomplete) > 0 {
		t.Logf("axe %s: needs review by a person: %v", res.Version, res.Incomplete)
	}
	return res.Violations
}
