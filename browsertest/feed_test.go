package browsertest

import (
	"context"
	"fmt"
	"net/http"
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
	"github.com/extagram/extagram/internal/testmesh"
)

// placeholder is the camera image the form shows when no photo is chosen.
var placeholder = web.AssetURL("preview.svg")

// TestForm: the upload form, step by step in one tab on one mesh. Each step
// counts the posts it makes from those already there.
func TestForm(t *testing.T) {
	t.Parallel()
	m := startMesh(t)
	tb := newTab(t, desktop)
	for _, s := range []struct {
		name string
		f    func(t *testing.T, tb *tab, m *testmesh.Mesh, before int)
	}{
		{"double click publishes once", doubleClickPublishesOnce},
		{"photo picker", photoPicker},
		{"keyboard", keyboard},
		// Last: it ends on a page that previews a restored file, whose
		// blob: URL Chromium may fail to load (and log) if another page
		// replaced it.
		{"publish with photo", publishWithPhoto},
	} {
		tb.step(t, s.name, func(t *testing.T) {
			before := len(storedPosts(t, m))
			tb.open(m.URL+"/", http.StatusOK)
			s.f(t, tb, m, before)
		})
	}
}

// The main path: type, choose a photo, see it previewed, publish once, see
// the post first with its photo.
func publishWithPhoto(t *testing.T, tb *tab, m *testmesh.Mesh, before int) {
	publish(t, m, "an older post", nil)
	tb.load(chromedp.Reload())

	text := `Sunset <b>over</b> the "hills" & more`
	tb.do(
		chromedp.SendKeys(chromedp.ID("post"), text),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{pngFile(t, "sunset.png", 640, 480, 1)}),
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
	if len(posts) != before+2 {
		t.Fatalf("%d posts on the page, want %d: %+v", len(posts), before+2, posts)
	}
	p := posts[0]
	if p.Text != text || p.Alt != text {
		t.Errorf("first post text %q alt %q, want %q", p.Text, p.Alt, text)
	}
	if !strings.HasPrefix(p.Src, "/storage/") || p.Natural != 640 {
		t.Errorf("first post image %q, naturalWidth %d, want a /storage/ image 640 wide", p.Src, p.Natural)
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
	// Back to the page the post was sent from, loaded anew (the feed is
	// no-store) or from the back/forward cache: Chromium gives the file
	// input its file back, app.js previews it again, and Publish works.
	tb.back()
	back := eval[struct{ Disabled, Blob bool }](tb, `({Disabled: document.getElementById("publish").disabled,
		Blob: document.getElementById("file").files.length === 1 && document.getElementById("preview").src.startsWith("blob:")})`)
	if back.Disabled || !back.Blob {
		t.Errorf("after going back: %+v, want Publish enabled and the restored file previewed", back)
	}
	stored := storedPosts(t, m)
	if len(stored) != before+2 || stored[0].Image == nil || stored[0].Image.Width != 640 || stored[0].Image.Height != 480 {
		t.Errorf("store holds %d posts, first %+v; want %d, the first with a 640x480 image", len(stored), stored[0], before+2)
	}
}

// A double click on Publish sends the form once. Chromium itself drops a
// second submission that comes before the first request has left, so the
// test holds the answer to the first POST (the server has made the post) and
// sends the second click while the page is still there, as happens when a
// person double-clicks on a slow connection.
func doubleClickPublishesOnce(t *testing.T, tb *tab, m *testmesh.Mesh, before int) {
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
	if n := len(storedPosts(t, m)); n != before+1 {
		t.Errorf("%d posts stored after a double click, want %d", n, before+1)
	}
	if p := tb.posts(); len(p) != before+1 || p[0].Text != "one click, one post" {
		t.Errorf("%d posts on the page after a double click, want %d: %+v", len(p), before+1, p)
	}
}

// The form works from the keyboard alone, with a visible focus on the
// picture that stands for the file input.
func keyboard(t *testing.T, tb *tab, m *testmesh.Mesh, before int) {
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
	pic := pngFile(t, "keyboard.png", 320, 240, 0)
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
	if posts := tb.posts(); len(posts) != before+1 || posts[0].Text != "typed at the keyboard" {
		t.Errorf("posts after publishing from the keyboard: %+v", posts)
	}
}

// What app.js does with the picker: preview a chosen photo (freeing the
// previous one's URL), take it back on a cancelled choice or Remove photo,
// say so for a file the browser cannot show; then a text-only post after
// Remove, and a refused file: the message above the form, the typed text
// kept, nothing stored, then a photo makes the post.
func photoPicker(t *testing.T, tb *tab, m *testmesh.Mesh, before int) {
	tb.do(chromedp.WaitNotVisible(chromedp.ID("remove")))
	a, b := pngFile(t, "a.png", 300, 200, 2), pngFile(t, "b.png", 200, 150, 3)
	notes := writeFile(t, "notes.png", []byte("these are my notes, not a picture\n"))
	type picker struct {
		Preview, Alt, Note, Active string
		Files                      int
		Remove, NoteShown          bool
	}
	state := func() picker {
		return eval[picker](tb, `(() => { const g = (id) => document.getElementById(id); return {Preview: g("preview").getAttribute("src"),
			Alt: g("preview").alt, Note: g("photo-note").textContent, NoteShown: !g("photo-note").hidden,
			Remove: !g("remove").hidden, Active: document.activeElement.id, Files: g("file").files.length}; })()`)
	}
	choose := func(f string) picker {
		tb.do(chromedp.SetUploadFiles(chromedp.ID("file"), []string{f}))
		if f != notes {
			tb.waitJS(`document.getElementById("preview").src.startsWith("blob:")`)
		}
		return state()
	}
	// A freed blob: URL no longer loads.
	revoked := func(url string) bool {
		tb.expectConsole("net::ERR_FILE_NOT_FOUND", url)
		return eval[bool](tb, fmt.Sprintf(`new Promise((ok) => { const i = new Image(); i.onload = () => ok(false); i.onerror = () => ok(true); i.src = %q; })`, url))
	}
	check := func(what string, got picker, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("%s: %+v", what, got)
		}
	}

	first := choose(a)
	check("a photo chosen", first, strings.Contains(first.Alt, "a.png") && first.Remove && first.Files == 1)
	second := choose(b)
	check("another photo chosen", second, strings.Contains(second.Alt, "b.png") && second.Preview != first.Preview && revoked(first.Preview) && !revoked(second.Preview))
	// A browser that clears the input when the picker is cancelled.
	tb.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("file").value = ""; document.getElementById("file").dispatchEvent(new Event("change"))`))
	s := state()
	check("choice cancelled", s, s.Preview == placeholder && s.Alt == "Choose a photo" && !s.Remove && revoked(second.Preview))
	chosen := choose(a)
	tb.do(chromedp.Click(chromedp.ID("remove")), chromedp.WaitNotVisible(chromedp.ID("remove")))
	s = state()
	check("Remove photo", s, s.Preview == placeholder && s.Alt == "Choose a photo" && s.Files == 0 && s.Active == "file" && revoked(chosen.Preview))

	// A file that is no image: the placeholder stays with a note, and the
	// file is still chosen (the server decides). Another choice, or Remove
	// photo, clears the note.
	choose(notes)
	tb.do(chromedp.WaitVisible(chromedp.ID("photo-note")))
	s = state()
	check("no image chosen", s, s.Preview == placeholder && strings.Contains(s.Alt, "notes.png") && strings.Contains(s.Note, "notes.png") && s.Remove && s.Files == 1)
	s = choose(a)
	check("a photo after no image", s, !s.NoteShown && s.Note == "")
	choose(notes)
	tb.do(chromedp.WaitVisible(chromedp.ID("photo-note")), chromedp.Click(chromedp.ID("remove")), chromedp.WaitNotVisible(chromedp.ID("photo-note")))

	// A page restored from the back/forward cache with Publish disabled by
	// its submit can publish again. Chromium keeps no no-store page there,
	// so the test sends the events: submits that do not send the form.
	bf := eval[struct {
		First, Second, StillBusy, Again bool
		Busy                            string
	}](tb, `(() => {
		const f = document.getElementById("upload"), p = document.getElementById("publish");
		const submit = () => f.dispatchEvent(new SubmitEvent("submit", {cancelable: true}));
		const first = submit() && p.disabled, busy = p.getAttribute("aria-busy"), second = submit();
		dispatchEvent(new PageTransitionEvent("pageshow", {persisted: true}));
		const stillBusy = p.disabled || p.hasAttribute("aria-busy"), again = submit();
		dispatchEvent(new PageTransitionEvent("pageshow", {persisted: true}));
		return {First: first, Busy: busy, Second: second, StillBusy: stillBusy, Again: again};
	})()`)
	if !bf.First || bf.Busy != "true" || bf.Second || bf.StillBusy || !bf.Again {
		t.Errorf("submit, submit, pageshow from the cache, submit: %+v; want the first through and Publish busy, the second stopped, then Publish enabled", bf)
	}

	tb.do(chromedp.SendKeys(chromedp.ID("post"), "text only after all"))
	tb.load(chromedp.Click(chromedp.ID("publish")))
	if posts := tb.posts(); len(posts) != before+1 || posts[0].Text != "text only after all" || posts[0].Src != "" {
		t.Errorf("posts %+v, want one text-only post", posts)
	}

	text := "my draft, typed with care"
	tb.do(chromedp.SendKeys(chromedp.ID("post"), text), chromedp.SetUploadFiles(chromedp.ID("file"), []string{notes}),
		chromedp.WaitVisible(chromedp.ID("photo-note")))
	// Chromium logs every document that answers 4xx as a failed resource.
	tb.expectConsole("the server responded with a status of 415")
	if resp := tb.load(chromedp.Click(chromedp.ID("publish"))); resp.Status != http.StatusUnsupportedMediaType {
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
	if !strings.Contains(got.Error, "JPEG, PNG, GIF or WebP") || got.Text != text {
		t.Errorf("error message %q, typed text %q; want the files that work named and %q kept", got.Error, got.Text, text)
	}
	if got.Role != "alert" || got.Invalid != "true" || got.Described != "upload-error" {
		t.Errorf("error role %q, input aria-invalid %q aria-describedby %q", got.Role, got.Invalid, got.Described)
	}
	if got.ErrorBottom > got.FormTop {
		t.Errorf("error (bottom %.0f) is not above the form (top %.0f)", got.ErrorBottom, got.FormTop)
	}
	if n := len(storedPosts(t, m)); n != before+1 {
		t.Errorf("%d posts stored after a refused upload, want the %d before", n, before+1)
	}
	// Fixing the mistake: choose a real photo and publish the kept text.
	choose(b)
	if resp := tb.load(chromedp.Click(chromedp.ID("publish"))); resp.Status != http.StatusOK {
		t.Fatalf("second try: %d", resp.Status)
	}
	if posts := tb.posts(); len(posts) != before+2 || posts[0].Text != text || posts[0].Src == "" {
		t.Errorf("after the second try: %+v", posts)
	}
}
