package browsertest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/extagram/extagram/edge/web"
	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
)

// testTimeout bounds each tab's browser work. It is generous: two cores,
// shared with other test runs.
const testTimeout = 3 * time.Minute

// startMesh starts a whole mesh on an embedded store. It starts the browser
// first, so that a test without one skips (or fails, in CI) before it
// builds anything.
func startMesh(t *testing.T) *testmesh.Mesh {
	t.Helper()
	browser(t)
	return testmesh.Start(t, testmesh.Options{Store: storetest.Embedded(t)})
}

// tab is one browser tab. It records what the console says and every
// response of the meshes, and checks both at the end of each step.
type tab struct {
	t   *testing.T // of the step running in the tab
	ctx context.Context
	vp  viewport

	mu        sync.Mutex
	console   []string   // errors and warnings, as "kind: text (url)"
	expected  [][]string // console errors the step causes, by substrings
	responses []*network.Response
	seen      int // mesh responses checked so far
}

// viewport sizes: the desktop of the screenshots and the smallest phone the
// page supports.
type viewport struct {
	name          string
	width, height int64
	mobile        bool
}

var (
	desktop = viewport{"desktop", 1280, 900, false}
	phone   = viewport{"phone", 360, 740, true}
)

// newTab opens a tab in a fresh browser context with the given viewport.
func newTab(t *testing.T, vp viewport) *tab {
	t.Helper()
	bctx := browser(t)
	tabCtx, closeTab := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
	t.Cleanup(closeTab)
	// The first Run opens the tab; it must have no deadline (the deadline
	// would close the tab), so the timeout goes on a child context.
	if err := chromedp.Do(tabCtx); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	ctx, cancel := context.WithTimeout(tabCtx, testTimeout)
	t.Cleanup(cancel)
	tb := &tab{t: t, ctx: ctx, vp: vp}
	if err := chromedp.Listen(tabCtx, tb.event); err != nil {
		t.Fatalf("listen: %v", err)
	}
	// The tab's work goes in steps, each checked as it ends. What comes
	// after the last (a late favicon request to a mesh already stopped) is
	// no step's.
	t.Cleanup(func() {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		if tb.seen == 0 && !t.Failed() && !t.Skipped() {
			t.Error("no response from the mesh was seen")
		}
	})
	// Tabs of parallel tests each behave as the focused one: focus rings,
	// :focus-visible and keyboard input do not depend on which was opened
	// last.
	if _, err := chromedp.Call(ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
		t.Fatalf("focus emulation: %v", err)
	}
	tb.do(tb.emulate(vp))
	return tb
}

// step runs f as the subtest name of t in the tab; what the browser reported
// meanwhile is checked as it ends.
func (tb *tab) step(t *testing.T, name string, f func(t *testing.T)) {
	t.Run(name, func(t *testing.T) {
		parent := tb.t
		tb.t = t
		defer func() {
			tb.check()
			tb.t = parent
		}()
		f(t)
	})
}

func (tb *tab) emulate(vp viewport) chromedp.Action[chromedp.Void] {
	if vp.mobile {
		return chromedp.EmulateViewport(vp.width, vp.height, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulateScale(2))
	}
	return chromedp.EmulateViewport(vp.width, vp.height)
}

// event runs on the tab's message loop: it only records.
func (tb *tab) event(ev any) {
	var line string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		args := make([]string, len(ev.Args))
		for i, a := range ev.Args {
			args[i] = cmp.Or(string(a.Value), a.Description)
		}
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			line = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " "))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		if d.Exception != nil {
			d.Text += " " + d.Exception.Description
		}
		line = fmt.Sprintf("exception: %s (%s:%d)", d.Text, d.URL, d.LineNumber+1)
	case *log.EventEntryAdded:
		if e := ev.Entry; e.Level == log.EntryLevelError || e.Level == log.EntryLevelWarning {
			line = fmt.Sprintf("log %s %s: %s (%s)", e.Source, e.Level, e.Text, e.URL)
		}
	case *network.EventResponseReceived:
		tb.mu.Lock()
		tb.responses = append(tb.responses, ev.Response)
		tb.mu.Unlock()
	}
	if line != "" {
		tb.mu.Lock()
		tb.console = append(tb.console, line)
		tb.mu.Unlock()
	}
}

// expectConsole declares console errors the test causes on purpose: those
// that contain every one of substrs.
func (tb *tab) expectConsole(substrs ...string) {
	tb.mu.Lock()
	tb.expected = append(tb.expected, substrs)
	tb.mu.Unlock()
}

// check fails the step for console errors (CSP violations among them) and
// for mesh responses without the security headers, and forgets them.
func (tb *tab) check() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, line := range tb.console {
		if !slices.ContainsFunc(tb.expected, func(e []string) bool {
			return !slices.ContainsFunc(e, func(sub string) bool { return !strings.Contains(line, sub) })
		}) {
			tb.t.Errorf("browser console: %s", line)
		}
	}
	want := map[string]string{
		"Content-Security-Policy":   web.CSP,
		"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
		"Referrer-Policy":           "no-referrer",
		"X-Content-Type-Options":    "nosniff",
	}
	for _, r := range tb.responses {
		// Every https URL in these tests is a mesh's.
		if !strings.HasPrefix(r.URL, "https://") {
			continue
		}
		tb.seen++
		got := map[string]string{}
		for k, v := range r.Headers {
			got[http.CanonicalHeaderKey(k)], _ = v.(string) // HTTP/2 names are lower case
		}
		for name, v := range want {
			if got[name] != v {
				tb.t.Errorf("%s (%d): %s %q, want %q", r.URL, r.Status, name, got[name], v)
			}
		}
	}
	tb.console, tb.expected, tb.responses = nil, nil, nil
}

// do runs actions in the tab and fails the test on error.
func (tb *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, steps...); err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
}

// load runs the actions (a navigation, a click on a link or a submit) and
// waits for the page they load; it returns the document's response.
func (tb *tab) load(steps ...chromedp.Action[chromedp.Void]) *network.Response {
	tb.t.Helper()
	resp, err := chromedp.RunResponse(tb.ctx, steps...)
	if err != nil {
		tb.t.Fatalf("browser: load: %v", err)
	}
	if resp == nil {
		tb.t.Fatal("browser: load: no response")
	}
	return resp
}

// open loads url and checks the status.
func (tb *tab) open(url string, status int64) {
	tb.t.Helper()
	resp := tb.load(chromedp.Navigate(url))
	if resp.Status != status {
		tb.t.Fatalf("GET %s: %d, want %d", url, resp.Status, status)
	}
}

// back goes one step back in the tab's history and waits for the document
// of that entry to be complete, in its own new script context (a page from
// the back/forward cache has no load event, and a script run before the new
// context exists names one that is gone).
func (tb *tab) back() {
	tb.t.Helper()
	hist, err := chromedp.Run(tb.ctx, chromedp.NavigationEntries())
	if err != nil || hist.CurrentIndex < 1 {
		tb.t.Fatalf("history: %v (at %d)", err, hist.CurrentIndex)
	}
	entry := hist.Entries[hist.CurrentIndex-1].ID
	tree, err := chromedp.Call(tb.ctx, page.GetFrameTree, cdp.Empty{})
	if err != nil {
		tb.t.Fatalf("frame tree: %v", err)
	}
	top := tree.FrameTree.Frame.ID
	created, err := chromedp.Run(tb.ctx, chromedp.WaitEvent(runtime.ExecutionContextCreated,
		func(e runtime.EventExecutionContextCreated) bool {
			var aux struct {
				FrameID   cdp.FrameID `json:"frameId"`
				IsDefault bool        `json:"isDefault"`
			}
			return json.Unmarshal(e.Context.AuxData, &aux) == nil && aux.FrameID == top && aux.IsDefault
		},
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, page.NavigateToHistoryEntry, page.NavigateToHistoryEntryParams{EntryID: entry})
			return err
		})))
	if err != nil {
		tb.t.Fatalf("back: %v", err)
	}
	res, err := chromedp.Call(tb.ctx, runtime.Evaluate, runtime.EvaluateParams{
		Expression:      `document.readyState === "complete" || new Promise(ok => addEventListener("load", () => ok(true), {once: true}))`,
		UniqueContextID: created.Context.UniqueID,
		AwaitPromise:    new(true),
		ReturnByValue:   new(true),
	})
	if err != nil || res.ExceptionDetails != nil {
		tb.t.Fatalf("back: wait for the document to be complete: %v %+v", err, res.ExceptionDetails)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise) and returns
// its value decoded as T.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("evaluate %.200s: %v", strings.Join(strings.Fields(expr), " "), err)
	}
	return v
}

// waitJS waits until the JavaScript expression cond is true in the page.
// chromedp.Poll builds its predicate with new Function; that works under the
// page's CSP (no 'unsafe-eval') because it runs through the DevTools
// protocol, which CSP does not govern.
func (tb *tab) waitJS(cond string) {
	tb.t.Helper()
	_, err := chromedp.Run(tb.ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		tb.t.Fatalf("wait for %.200s: %v", strings.Join(strings.Fields(cond), " "), err)
	}
}

// noHorizontalScroll fails when the page is wider than the viewport.
func (tb *tab) noHorizontalScroll() {
	tb.t.Helper()
	got := eval[struct {
		Scroll, Client int64
		Widest         string
	}](tb, `(() => {
		const de = document.documentElement;
		let widest = "";
		for (const el of document.body.querySelectorAll("*")) {
			const r = el.getBoundingClientRect();
			if (r.right > de.clientWidth + 0.5) { widest = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.className ? "." + el.className : "") + " right=" + r.right; break; }
		}
		return {Scroll: de.scrollWidth, Client: de.clientWidth, Widest: widest};
	})()`)
	if got.Client != tb.vp.width {
		tb.t.Errorf("documentElement.clientWidth %d, want the viewport's %d", got.Client, tb.vp.width)
	}
	if got.Scroll > got.Client {
		tb.t.Errorf("horizontal scroll: scrollWidth %d > clientWidth %d (first element past the edge: %s)", got.Scroll, got.Client, got.Widest)
	}
}

// feedPost is a post as the page shows it.
type feedPost struct {
	Text, Src, Alt, Width, Height, Loading, Datetime, Ago string
	Natural                                               int
}

// posts reads the posts on the page, in order.
func (tb *tab) posts() []feedPost {
	tb.t.Helper()
	return eval[[]feedPost](tb, `Array.from(document.querySelectorAll("main .post")).map((p) => {
		const img = p.querySelector("img");
		const time = p.querySelector("time");
		return {
			Text: p.querySelector("p").textContent,
			Src: img ? img.getAttribute("src") : "",
			Alt: img ? img.getAttribute("alt") : "",
			Width: img ? img.getAttribute("width") || "" : "",
			Height: img ? img.getAttribute("height") || "" : "",
			Loading: img ? img.getAttribute("loading") || "" : "",
			Natural: img ? img.naturalWidth : 0,
			Datetime: time ? time.getAttribute("datetime") : "",
			Ago: time ? time.textContent : "",
		};
	})`)
}

// Images.

// photo draws a w x h picture: a sky, a sun and two hills in flat colors,
// so that the screenshots look like a feed and stay small as PNG.
func photo(w, h int, hue int) image.Image {
	palettes := [][4]color.RGBA{
		{{0x8e, 0xc5, 0xfc, 255}, {0xff, 0xd1, 0x66, 255}, {0x4c, 0x9a, 0x6a, 255}, {0x2f, 0x6f, 0x4e, 255}},
		{{0xfb, 0xb0, 0x8a, 255}, {0xff, 0xf1, 0xc1, 255}, {0x7a, 0x5c, 0x8e, 255}, {0x4a, 0x3a, 0x66, 255}},
		{{0x1d, 0x2b, 0x53, 255}, {0xf4, 0xf1, 0xde, 255}, {0x3b, 0x55, 0x7a, 255}, {0x22, 0x33, 0x4f, 255}},
		{{0xb8, 0xe0, 0xf0, 255}, {0xff, 0xff, 0xff, 255}, {0xd9, 0xa4, 0x41, 255}, {0xb5, 0x7f, 0x2a, 255}},
	}
	p := palettes[hue%len(palettes)]
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	sunX, sunY, sunR := w*7/10, h*3/10, h/9
	for y := range h {
		for x := range w {
			c := p[0]
			dx, dy := x-sunX, y-sunY
			if dx*dx+dy*dy <= sunR*sunR {
				c = p[1]
			}
			// Two hills: parabolas over the lower part of the picture.
			h1 := h*6/10 + (x-w/4)*(x-w/4)*h/(3*w*w)
			h2 := h*7/10 + (x-w*3/4)*(x-w*3/4)*h/(2*w*w)
			if y >= h1 {
				c = p[2]
			}
			if y >= h2 {
				c = p[3]
			}
			img.Set(x, y, c)
		}
	}
	return img
}

// writeFile writes data to a file named name in a new temporary folder and
// returns its path, for chromedp.SetUploadFiles.
func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// pngFile writes photo(w, h, hue) as a PNG file named name.
func pngFile(t testing.TB, name string, w, h, hue int) string {
	t.Helper()
	return writeFile(t, name, testutil.EncodePNG(t, photo(w, h, hue)))
}

// publish makes a post through the edge as a client would (not through the
// browser): for filling the feed before a test.
func publish(t testing.TB, m *testmesh.Mesh, text string, photoPNG []byte) {
	t.Helper()
	var f *testutil.File
	if photoPNG != nil {
		f = testutil.Photo("photo.png", "application/octet-stream", photoPNG)
	}
	body, ct := testutil.Form(t, [][2]string{{"post", text}}, f)
	resp, err := m.Client.Post(m.URL+"/upload.php", ct, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("publish %q: %v", text, err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("publish %q: %d\n%s", text, resp.StatusCode, page)
	}
}

// storedPosts returns the posts in the store, newest first.
func storedPosts(t testing.TB, m *testmesh.Mesh) []store.Post {
	t.Helper()
	ps, err := m.Store.ListPosts(t.Context(), store.ListOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return ps
}
