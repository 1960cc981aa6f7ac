package browsertest

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/extagram/extagram/edge/web"
	"github.com/extagram/extagram/internal/testutil"
)

// placeholder is the camera image the form shows when no photo is chosen.
var placeholder = web.AssetURL("preview.svg")

// The main path: type, choose a photo, see it previewed, publish once, see
// the post first with its photo.
func TestPublishWithPhoto(t *testing.T) {
	t.Parallel()
	m := startMesh(t)
	publish(t, m, "an older post", nil)
	tb := newTab(t, m, desktop)
	tb.open("/", http.StatusOK)

	pic := writeFile(t, "sunset.png", testutil.EncodePNG(t, photo(640, 480, 1)))
	text := `Sunset <b>over</b> the "hills" & more`
	tb.do(
		chromedp.SendKeys(chromedp.ID("post"), text),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{pic}),
	)
	tb.waitJS(`document.getElementById("preview").src.startsWith("blob:") && document.getElementById("preview").naturalWidth === 640`)
	tb.do(chromedp.WaitVisible(chromedp.ID("remove")))
	if alt := eval[string](tb, `document.getElementById("preview").alt`); !strings.Contains(alt, "sunset.png") {
		t.Errorf("preview alt %q does not name the chosen file", alt)
	}

	resp := tb.load(chromedp.Click(chromedp.ID("publish")))
	if resp.Status != http.StatusOK || resp.URL != m.URL+"/" {
		t.Fatalf("after Publish: %d %s, want 200 %s/ (303 from /upload.php)", resp.Status, resp.URL, m.URL)
	}
	tb.waitJS(`document.querySelector("main .post img") && document.querySelector("main .post img").complete`)
	posts := tb.posts()
	if len(posts) != 2 {
		t.Fatalf("%d posts on the page, want 2: %+v", len(posts), posts)
	}
	p := posts[0]
	if p.Text != text || p.Alt != text {
		t.Errorf("first post text %q alt %q, want %q", p.Text, p.Alt, text)
	}
	if !strings.HasPrefix(p.Src, "/storage/") || p.Natural != 640 {
		t.Errorf("first post image %q, naturalWidth %d, want a /storage/ image 640 wide", p.Src, p.Natural)
	}
	if p.Width != "640" || p.Height != "480" || p.Loading != "" {
		t.Errorf("first post img width=%q height=%q loading=%q, want 640, 480 and eager", p.Width, p.Height, p.Loading)
	}
	if when, err := time.Parse(time.RFC3339, p.Datetime); err != nil || time.Since(when) > time.Minute || p.Ago != "just now" {
		t.Errorf("first post time datetime=%q (%v) text %q, want now and \"just now\"", p.Datetime, err, p.Ago)
	}
	if posts[1].Text != "an older post" || posts[1].Src != "" {
		t.Errorf("second post %+v, want the older text-only post", posts[1])
	}
	// The new page starts with an empty form.
	form := eval[struct{ Text, Preview string }](tb, `({Text: document.getElementById("post").value, Preview: document.getElementById("preview").getAttribute("src")})`)
	if form.Text != "" || form.Preview != placeholder {
		t.Errorf("form after publishing: %+v, want empty", form)
	}
	// Back to the page the post was sent from, from the back/forward cache
	// or the network: Publish works again.
	tb.back()
	if eval[bool](tb, `document.getElementById("publish").disabled`) {
		t.Error("Publish is still disabled after going back")
	}
	stored := storedPosts(t, m)
	if len(stored) != 2 || stored[0].Image == nil || stored[0].Image.Width != 640 || stored[0].Image.Height != 480 {
		t.Errorf("store holds %d posts, first %+v; want 2, the first with a 640x480 image", len(stored), stored[0])
	}
}

// A chosen photo can be taken back before publishing.
func TestRemovePhoto(t *testing.T) {
	t.Parallel()
	m := startMesh(t)
	tb := newTab(t, m, desktop)
	tb.open("/", http.StatusOK)
	tb.do(chromedp.WaitNotVisible(chromedp.ID("remove")))
	pic := writeFile(t, "cat.png", testutil.EncodePNG(t, photo(300, 200, 2)))
	tb.do(
		chromedp.SendKeys(chromedp.ID("post"), "text only after all"),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{pic}),
		chromedp.WaitVisible(chromedp.ID("remove")),
	)
	tb.waitJS(`document.getElementById("preview").src.startsWith("blob:")`)
	tb.do(
		chromedp.Click(chromedp.ID("remove")),
		chromedp.WaitNotVisible(chromedp.ID("remove")),
	)
	got := eval[struct {
		Preview, Alt, Active string
		Files                int
	}](tb, `({Preview: document.getElementById("preview").getAttribute("src"), Alt: document.getElementById("preview").alt,
		Active: document.activeElement.id, Files: document.getElementById("file").files.length})`)
	if got.Preview != placeholder || got.Alt != "Choose a photo" || got.Files != 0 || got.Active != "file" {
		t.Errorf("after Remove photo: %+v; want the placeholder back, no file, focus on the picker", got)
	}
	tb.load(chromedp.Click(chromedp.ID("publish")))
	posts := tb.posts()
	if len(posts) != 1 || posts[0].Text != "text only after all" || posts[0].Src != "" {
		t.Errorf("posts %+v, want one text-only post", posts)
	}
}

// A file that is not an image: the message above the form, the typed text
// kept, nothing stored; then a photo makes the post.
func TestUploadNotAnImage(t *testing.T) {
	t.Parallel()
	m := startMesh(t)
	tb := newTab(t, m, desktop)
	tb.open("/", http.StatusOK)
	notes := writeFile(t, "notes.png", []byte("these are my notes, not a picture\n"))
	text := "my draft, typed with care"
	tb.do(
		chromedp.SendKeys(chromedp.ID("post"), text),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{notes}),
	)
	// The browser cannot show the file: the placeholder stays with a note,
	// and the file is still sent (the server decides).
	tb.do(chromedp.WaitVisible(chromedp.ID("photo-note")), chromedp.WaitVisible(chromedp.ID("remove")))
	chosen := eval[struct{ Preview, Alt, Note string }](tb, `({Preview: document.getElementById("preview").getAttribute("src"),
		Alt: document.getElementById("preview").alt, Note: document.getElementById("photo-note").textContent})`)
	if chosen.Preview != placeholder || !strings.Contains(chosen.Alt, "notes.png") || !strings.Contains(chosen.Note, "notes.png") {
		t.Errorf("after choosing a file that is no image: %+v; want the placeholder and a note naming the file", chosen)
	}

	// Chromium logs every document that answers 4xx as a failed resource.
	tb.expectConsole("the server responded with a status of 415")
	resp := tb.load(chromedp.Click(chromedp.ID("publish")))
	if resp.Status != http.StatusUnsupportedMediaType {
		t.Fatalf("upload of a text file: %d, want 415", resp.Status)
	}
	tb.do(chromedp.WaitVisible(chromedp.ID("upload-error")))
	got := eval[struct {
		Error, Role, Text, Invalid, Described string
		ErrorBottom, FormTop                  float64
	}](tb, `(() => {
		const e = document.getElementById("upload-error"), p = document.getElementById("post");
		return {Error: e.textContent, Role: e.getAttribute("role"), Text: p.value,
			Invalid: p.getAttribute("aria-invalid"), Described: p.getAttribute("aria-describedby"),
			ErrorBottom: e.getBoundingClientRect().bottom, FormTop: document.getElementById("upload").getBoundingClientRect().top};
	})()`)
	if !strings.Contains(got.Error, "JPEG, PNG, GIF or WebP") {
		t.Errorf("error message %q does not say which files work", got.Error)
	}
	if got.Text != text {
		t.Errorf("typed text %q after the error, want %q kept", got.Text, text)
	}
	if got.Role != "alert" || got.Invalid != "true" || got.Described != "upload-error" {
		t.Errorf("error role %q, input aria-invalid %q aria-describedby %q", got.Role, got.Invalid, got.Described)
	}
	if got.ErrorBottom > got.FormTop {
		t.Errorf("error (bottom %.0f) is not above the form (top %.0f)", got.ErrorBottom, got.FormTop)
	}
	if n := len(storedPosts(t, m)); n != 0 {
		t.Errorf("%d posts stored after a refused upload", n)
	}

	// Fixing the mistake: choose a real photo and publish the kept text.
	pic := writeFile(t, "real.png", testutil.EncodePNG(t, photo(200, 150, 3)))
	tb.do(chromedp.SetUploadFiles(chromedp.ID("file"), []string{pic}))
	tb.waitJS(`document.getElementById("preview").src.startsWith("blob:")`)
	if resp := tb.load(chromedp.Click(chromedp.ID("publish"))); resp.Status != http.StatusOK {
		t.Fatalf("second try: %d", resp.Status)
	}
	if posts := tb.posts(); len(posts) != 1 || posts[0].Text != text || posts[0].Src == "" {
		t.Errorf("after the second try: %+v", posts)
	}
}

// A double click on Publish sends the form once. Chromium itself drops a
// second submission that comes before the first request has left, so the
// test holds the answer to the first POST (the server has made the post) and
// sends the second click while the page is still there, as happens when a
// person double-clicks on a slow connection.
func TestDoubleClickPublishesOnce(t *testing.T) {
	t.Parallel()
	m := startMesh(t)
	tb := newTab(t, m, desktop)
	tb.open("/", http.StatusOK)
	tb.do(chromedp.SendKeys(chromedp.ID("post"), "one click, one post"))
	at := eval[struct{ X, Y float64 }](tb, `(() => {
		const r = document.getElementById("publish").getBoundingClientRect();
		return {X: r.x + r.width / 2, Y: r.y + r.height / 2};
	})()`)
	// What a mouse sends for a double click: two presses and releases, the
	// second with clickCount 2. Each release is a click event.
	click := func(n int) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.MouseEvent(chromedp.MousePressed, at.X, at.Y, chromedp.ButtonType(input.MouseButtonLeft), chromedp.ClickCount(n)),
			chromedp.MouseEvent(chromedp.MouseReleased, at.X, at.Y, chromedp.ButtonType(input.MouseButtonLeft), chromedp.ClickCount(n)),
		)
	}

	// Every answer to a POST to /upload.php stops in the browser: the first
	// is held, any other goes on at once (and would be a second post).
	paused := chromedp.Events(tb.ctx, fetch.RequestPaused)
	if _, err := chromedp.Call(tb.ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{
		{URLPattern: "*/upload.php", RequestStage: fetch.RequestStageResponse},
	}}); err != nil {
		t.Fatal(err)
	}
	held := make(chan fetch.EventRequestPaused, 1)
	var posts atomic.Int32
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			if posts.Add(1) == 1 {
				held <- ev
				continue
			}
			_, _ = chromedp.Call(tb.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()

	tb.do(click(1))
	var first fetch.EventRequestPaused
	select {
	case first = <-held:
	case <-tb.ctx.Done():
		t.Fatal("the first click sent no form")
	}
	if first.ResponseStatusCode != http.StatusSeeOther {
		t.Fatalf("first POST answered %d, want 303", first.ResponseStatusCode)
	}
	// The page is still there (its navigation waits for the held answer):
	// the second click lands on the same Publish button.
	tb.do(click(2))
	// Let the held answer through and land on the feed. Had the second
	// click sent the form again, that navigation would have replaced this
	// one and its POST would have made a second post.
	_, err := chromedp.RunResponse(tb.ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: first.RequestID})
		return err
	}))
	if err != nil {
		t.Errorf("the held answer to the first POST could not go on (%v): a second submission replaced its navigation", err)
		tb.do(chromedp.WaitVisible(chromedp.CSS("main .post")))
	}
	if _, err := chromedp.Call(tb.ctx, fetch.Disable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if n := posts.Load(); n != 1 {
		t.Errorf("%d POSTs after a double click, want 1", n)
	}
	if n := len(storedPosts(t, m)); n != 1 {
		t.Errorf("%d posts stored after a double click, want 1", n)
	}
	if p := tb.posts(); len(p) != 1 {
		t.Errorf("%d posts on the page after a double click, want 1: %+v", len(p), p)
	}
}

// The form works from the keyboard alone, with a visible focus on the
// picture that stands for the file input.
func TestKeyboard(t *testing.T) {
	t.Parallel()
	m := startMesh(t)
	tb := newTab(t, m, desktop)
	tb.open("/", http.StatusOK)

	active := func() string {
		return eval[string](tb, `(() => { const a = document.activeElement; return a.id || a.tagName.toLowerCase() + ":" + a.textContent.trim(); })()`)
	}
	var order []string
	for range 4 {
		tb.do(chromedp.KeyEvent(kb.Tab))
		order = append(order, active())
	}
	want := []string{"a:Extagram", "post", "file", "publish"}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Fatalf("Tab order %q, want %q", order, want)
	}

	// Back to the file input: its focus shows on the picture.
	tb.do(chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)))
	if a := active(); a != "file" {
		t.Fatalf("Shift+Tab from Publish reached %q, want the file input", a)
	}
	ring := eval[struct{ Style, Width string }](tb, `(() => { const s = getComputedStyle(document.getElementById("preview")); return {Style: s.outlineStyle, Width: s.outlineWidth}; })()`)
	if ring.Style != "solid" || ring.Width != "3px" {
		t.Errorf("focused file input: preview outline %s %s, want a 3px solid ring", ring.Style, ring.Width)
	}

	// Space opens the file chooser; the test answers it as a person would.
	if _, err := chromedp.Call(tb.ctx, page.SetInterceptFileChooserDialog, page.SetInterceptFileChooserDialogParams{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	chooser, err := chromedp.Run(tb.ctx, chromedp.WaitEvent(page.FileChooserOpened, nil, chromedp.KeyEvent(" ")))
	if err != nil {
		t.Fatalf("Space on the file input: %v", err)
	}
	pic := writeFile(t, "keyboard.png", testutil.EncodePNG(t, photo(320, 240, 0)))
	if _, err := chromedp.Call(tb.ctx, dom.SetFileInputFiles, dom.SetFileInputFilesParams{Files: []string{pic}, BackendNodeID: chooser.BackendNodeID}); err != nil {
		t.Fatal(err)
	}
	tb.waitJS(`document.getElementById("preview").src.startsWith("blob:")`)

	// Tab reaches Remove photo; Enter removes and focus returns to the picker.
	tb.do(chromedp.KeyEvent(kb.Tab))
	if a := active(); a != "remove" {
		t.Fatalf("Tab after choosing a photo reached %q, want Remove photo", a)
	}
	tb.do(chromedp.KeyEvent(kb.Enter), chromedp.WaitNotVisible(chromedp.ID("remove")))
	if a, src := active(), eval[string](tb, `document.getElementById("preview").getAttribute("src")`); a != "file" || src != placeholder {
		t.Errorf("after Enter on Remove photo: focus %q, preview %q", a, src)
	}

	// Type the text and publish with Enter.
	tb.do(chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)), chromedp.KeyEvent("typed at the keyboard"))
	tb.load(chromedp.KeyEvent(kb.Enter))
	if posts := tb.posts(); len(posts) != 1 || posts[0].Text != "typed at the keyboard" {
		t.Errorf("posts after publishing from the keyboard: %+v", posts)
	}
}

// Pages of 20: the first photos load eagerly, the rest lazily, each with
// its stored size; Older posts and Newest posts move between pages.
func TestPagination(t *testing.T) {
	t.Parallel()
	m := startMesh(t)
	pic := testutil.EncodePNG(t, photo(120, 90, 0))
	for i := range 22 {
		publish(t, m, "post number "+strconv.Itoa(i+1), pic)
	}
	tb := newTab(t, m, desktop)
	tb.open("/", http.StatusOK)
	posts := tb.posts()
	if len(posts) != 20 || posts[0].Text != "post number 22" || posts[19].Text != "post number 3" {
		t.Fatalf("first page: %d posts, from %q", len(posts), posts[0].Text)
	}
	for i, p := range posts {
		wantLoading := "lazy"
		if i < 2 {
			wantLoading = ""
		}
		if p.Width != "120" || p.Height != "90" || p.Loading != wantLoading {
			t.Errorf("post %d: width=%q height=%q loading=%q, want 120, 90, %q", i, p.Width, p.Height, p.Loading, wantLoading)
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
	older := tb.posts()
	if len(older) != 2 || older[0].Text != "post number 2" || older[1].Text != "post number 1" {
		t.Fatalf("second page: %+v", older)
	}
	if eval[bool](tb, `document.querySelector(".pager .older") !== null`) {
		t.Error("the last page links to older posts")
	}
	tb.load(chromedp.Click(chromedp.CSS(".pager .newest")))
	if posts := tb.posts(); len(posts) != 20 || posts[0].Text != "post number 22" {
		t.Errorf("Newest posts: %d posts from %q", len(posts), posts[0].Text)
	}
}

func TestEmptyFeed(t *testing.T) {
	t.Parallel()
	m := startMesh(t)
	tb := newTab(t, m, desktop)
	tb.open("/", http.StatusOK)
	tb.do(chromedp.WaitVisible(chromedp.CSS("main .empty")))
	got := eval[struct {
		Empty        string
		Posts, Pager int
	}](tb, `({Empty: document.querySelector("main .empty").textContent, Posts: document.querySelectorAll(".post").length, Pager: document.querySelectorAll(".pager").length})`)
	if got.Empty != "No posts yet. Be the first to publish." || got.Posts != 0 || got.Pager != 0 {
		t.Errorf("empty feed: %+v", got)
	}
}

// The console watcher of every test does see CSP violations: an inline
// script and an inline style added to the page are refused and reported.
func TestCSPViolationsAreReported(t *testing.T) {
	t.Parallel()
	m := startMesh(t)
	tb := newTab(t, m, desktop)
	tb.open("/", http.StatusOK)
	tb.expectConsole("Content Security Policy directive 'script-src 'self''")
	tb.expectConsole("Content Security Policy directive 'style-src 'self''")
	tb.do(chromedp.Evaluate[chromedp.Void](`(() => {
		const s = document.createElement("script");
		s.textContent = "window.inlineRan = true";
		document.body.appendChild(s);
		document.body.setAttribute("style", "background: red");
	})()`))
	tb.waitJS(`true`)
	if eval[bool](tb, `window.inlineRan === true`) {
		t.Error("an inline script ran")
	}
	var script, style bool
	for _, l := range tb.consoleLines() {
		script = script || strings.Contains(l, "script-src")
		style = style || strings.Contains(l, "style-src")
	}
	if !script || !style {
		t.Errorf("CSP violations not seen on the console (script %v, style %v): %q", script, style, tb.consoleLines())
	}
}

// Every kind of edge response the browser loads carries the security
// headers (the tab checks each response it saw when the test ends).
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	m := startMesh(t)
	publish(t, m, "with a photo", testutil.EncodePNG(t, photo(40, 30, 1)))
	id := storedPosts(t, m)[0].Image.ID
	tb := newTab(t, m, desktop)
	// Chromium shows an image opened as a page in a document of its own,
	// styled inline; the edge's CSP refuses that style (the image shows all
	// the same, unstyled). Expected for that URL only.
	tb.expectConsole("Applying inline style violates the following Content Security Policy directive 'style-src 'self''", "("+m.URL+"/storage/"+id.String()+")")
	for _, c := range []struct {
		path   string
		status int64
	}{
		{"/", 200}, {"/extagram.php", 200}, {"/static/style.css", 200}, {"/static/app.js", 200},
		{"/static/preview.svg", 200}, {"/static/favicon.svg", 200}, {"/storage/" + id.String(), 200},
		{"/api/v1/posts", 200}, {"/healthz", 200}, {"/nope", 404}, {"/storage/not-an-id", 400},
	} {
		if c.status >= 400 {
			tb.expectConsole("the server responded with a status of " + strconv.Itoa(int(c.status)))
		}
		tb.open(c.path, c.status)
	}
	tb.mu.Lock()
	n := len(tb.responses)
	tb.mu.Unlock()
	if n < 11 {
		t.Errorf("only %d responses seen", n)
	}
}
