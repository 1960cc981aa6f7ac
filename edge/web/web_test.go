package web

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, time.November, 27, 12, 0, 0, 0, time.UTC)

// sampleFeeds are the pages the tests render: with posts, empty, after a
// failed upload. The vnu test validates the same ones.
func sampleFeeds() map[string]Feed {
	posts := []Post{
		{ID: "a", Text: "<script>alert(1)</script>", CreatedAt: testNow.Add(-30 * time.Second),
			Image: &Image{URL: "/storage/AAAAAAAAAAAAAAAAAAAAAA", Width: 1080, Height: 1350}},
		{ID: "b", Text: "text only, with a long word " + strings.Repeat("x", 300), CreatedAt: testNow.Add(-5 * time.Minute)},
		{ID: "c", Text: `quotes " and ' and & ampersand`, CreatedAt: testNow.Add(-2 * time.Hour),
			Image: &Image{URL: "/storage/BBBBBBBBBBBBBBBBBBBBBB", Width: 640, Height: 480}},
		{ID: "d", Text: "fourth", CreatedAt: testNow.Add(-72 * time.Hour),
			Image: &Image{URL: "/storage/CCCCCCCCCCCCCCCCCCCCCC", Width: 300, Height: 300}},
		{ID: "e", Text: "legacy row, no time, no size", Image: &Image{URL: "/storage/5f3a1b2c4d5e6"}},
	}
	return map[string]Feed{
		"posts": {Posts: posts, OlderURL: "/?page=abc_DEF-123", NewestURL: "/", Now: testNow},
		"empty": {Now: testNow},
		"error": {Posts: posts[:2], Error: "The photo is not a JPEG, PNG, GIF or WebP image.",
			Text: `my "<b>draft</b>"`, Now: testNow},
		// The page of one post (GET /posts/{id}), and of an unknown one.
		"post":           {Posts: posts[:1], NewestURL: "/", Now: testNow},
		"post-not-found": {Error: "No post has this link. It may have been mistyped.", NewestURL: "/", Now: testNow},
	}
}

func render(t *testing.T, f Feed) string {
	t.Helper()
	var buf bytes.Buffer
	if err := RenderFeed(&buf, f); err != nil {
		t.Fatalf("RenderFeed: %v", err)
	}
	return buf.String()
}

var imgTag = regexp.MustCompile(`<img [^>]*src="/storage/[^>]*>`)

// TestRenderContains: each sample page holds what it must (escaped text,
// the head, the form, the empty feed's message, the error's alert and the
// typed text) and nothing it must not.
func TestRenderContains(t *testing.T) {
	t.Parallel()
	const emptyMsg = "No posts yet. Be the first to publish."
	const alert = `<p class="error" id="upload-error" role="alert">The photo is not a JPEG, PNG, GIF or WebP image.</p>`
	for _, c := range []struct {
		feed          string
		want, notWant []string
	}{
		{"posts", []string{
			`<p dir="auto">&lt;script&gt;alert(1)&lt;/script&gt;</p>`,
			`alt="&lt;script&gt;alert(1)&lt;/script&gt;"`,
			`alt="quotes &#34; and &#39; and &amp; ampersand"`,
		}, []string{"<script>alert(1)</script>", emptyMsg}},
		{"empty", []string{
			"<!doctype html>\n<html lang=\"en\">",
			`<meta charset="utf-8">`,
			`<meta name="viewport" content="width=device-width, initial-scale=1">`,
			`<title>Extagram</title>`,
			`<link rel="icon" href="` + AssetURL("favicon.svg") + `" type="image/svg+xml">`,
			`<link rel="stylesheet" href="` + AssetURL("style.css") + `">`,
			`<script src="` + AssetURL("app.js") + `" defer></script>`,
			`<h1 class="site-name">`,
			`<form id="upload" class="upload" method="POST" enctype="multipart/form-data" action="/upload.php">`,
			`<label for="post" class="visually-hidden">`,
			`<input id="post" type="text" name="post" placeholder="Write something..." required maxlength="2200" autocomplete="off">`,
			`<input id="file" class="visually-hidden" type="file" name="photo" accept="image/jpeg,image/png,image/gif,image/webp">`,
			`<label for="file" class="picker"><img id="preview" src="` + AssetURL("preview.svg") + `" alt="Choose a photo" width="300" height="300"></label>`,
			`<button type="button" id="remove" class="remove" hidden>Remove photo</button>`,
			`<button type="submit" id="publish" class="publish">Publish</button>`,
			emptyMsg,
		}, []string{`role="alert"`}},
		{"error", []string{alert, `value="my &#34;&lt;b&gt;draft&lt;/b&gt;&#34;" aria-invalid="true" aria-describedby="upload-error">`}, []string{"<b>draft"}},
	} {
		page := render(t, sampleFeeds()[c.feed])
		for _, w := range c.want {
			if !strings.Contains(page, w) {
				t.Errorf("%s page lacks %q", c.feed, w)
			}
		}
		for _, w := range c.notWant {
			if strings.Contains(page, w) {
				t.Errorf("%s page has %q", c.feed, w)
			}
		}
		switch c.feed {
		case "posts":
			if n := strings.Count(page, `<div class="post">`); n != 5 {
				t.Errorf("%d div.post, want 5", n)
			}
		case "error":
			if i, j := strings.Index(page, alert), strings.Index(page, "<form "); j < i {
				t.Error("the error is not above the form")
			}
		}
	}
}

func TestRenderPagerLinks(t *testing.T) {
	t.Parallel()
	const older = `<a class="older" href="/?page=abc_DEF-123" rel="next">Older posts</a>`
	const newest = `<a class="newest" href="/">Newest posts</a>`
	tests := []struct {
		name             string
		f                Feed
		wantOld, wantNew bool
		wantNav          bool
	}{
		{"first page", Feed{OlderURL: "/?page=abc_DEF-123"}, true, false, true},
		{"middle page", Feed{OlderURL: "/?page=abc_DEF-123", NewestURL: "/"}, true, true, true},
		{"last page", Feed{NewestURL: "/"}, false, true, true},
		{"only page", Feed{}, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			page := render(t, tt.f)
			if got := strings.Contains(page, older); got != tt.wantOld {
				t.Errorf("older link shown = %v, want %v", got, tt.wantOld)
			}
			if got := strings.Contains(page, newest); got != tt.wantNew {
				t.Errorf("newest link shown = %v, want %v", got, tt.wantNew)
			}
			if got := strings.Contains(page, "<nav"); got != tt.wantNav {
				t.Errorf("nav shown = %v, want %v", got, tt.wantNav)
			}
		})
	}
}

func TestRenderPagerLinkIsSanitized(t *testing.T) {
	t.Parallel()
	page := render(t, Feed{OlderURL: `javascript:alert(1)`})
	if strings.Contains(page, "javascript:") {
		t.Error("a javascript: URL reached an href")
	}
}

func TestRenderImages(t *testing.T) {
	t.Parallel()
	page := render(t, sampleFeeds()["posts"])
	imgs := imgTag.FindAllString(page, -1)
	want := []string{
		`<img src="/storage/AAAAAAAAAAAAAAAAAAAAAA" alt="&lt;script&gt;alert(1)&lt;/script&gt;" width="1080" height="1350" decoding="async">`,
		`<img src="/storage/BBBBBBBBBBBBBBBBBBBBBB" alt="quotes &#34; and &#39; and &amp; ampersand" width="640" height="480" loading="lazy" decoding="async">`,
		`<img src="/storage/CCCCCCCCCCCCCCCCCCCCCC" alt="fourth" width="300" height="300" loading="lazy" decoding="async">`,
		`<img src="/storage/5f3a1b2c4d5e6" alt="legacy row, no time, no size" loading="lazy" decoding="async">`,
	}
	if len(imgs) != len(want) {
		t.Fatalf("%d post images, want %d: %q", len(imgs), len(want), imgs)
	}
	for i := range want {
		if imgs[i] != want[i] {
			t.Errorf("image %d:\n got %s\nwant %s", i, imgs[i], want[i])
		}
	}
}

func TestRenderLazyFromThirdPost(t *testing.T) {
	t.Parallel()
	var posts []Post
	for range 6 {
		posts = append(posts, Post{Text: "p", Image: &Image{URL: "/storage/x", Width: 10, Height: 10}})
	}
	imgs := imgTag.FindAllString(render(t, Feed{Posts: posts}), -1)
	if len(imgs) != 6 {
		t.Fatalf("%d images, want 6", len(imgs))
	}
	for i, img := range imgs {
		if lazy := strings.Contains(img, `loading="lazy"`); lazy != (i >= 2) {
			t.Errorf("image %d lazy = %v, want %v", i+1, lazy, i >= 2)
		}
		if !strings.Contains(img, `decoding="async"`) {
			t.Errorf("image %d lacks decoding=async", i+1)
		}
	}
}

var timeTag = regexp.MustCompile(`<time datetime="([^"]*)" title="([^"]*)">([^<]*)</time>`)

func TestRenderTimes(t *testing.T) {
	t.Parallel()
	f := sampleFeeds()["posts"]
	// A zone other than UTC: datetime must still be in UTC.
	f.Posts[0].CreatedAt = f.Posts[0].CreatedAt.In(time.FixedZone("CET", 3600))
	m := timeTag.FindAllStringSubmatch(render(t, f), -1)
	want := [][3]string{
		{"2026-11-27T11:59:30Z", "27 Nov 2026 11:59 UTC", "just now"},
		{"2026-11-27T11:55:00Z", "27 Nov 2026 11:55 UTC", "5 minutes ago"},
		{"2026-11-27T10:00:00Z", "27 Nov 2026 10:00 UTC", "2 hours ago"},
		{"2026-11-24T12:00:00Z", "24 Nov 2026 12:00 UTC", "3 days ago"},
	}
	if len(m) != len(want) {
		t.Fatalf("%d <time> elements, want %d (the post with no time has none)", len(m), len(want))
	}
	rfc3339UTC := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
	for i, w := range want {
		if !rfc3339UTC.MatchString(m[i][1]) {
			t.Errorf("datetime %q is not RFC 3339 UTC", m[i][1])
		}
		if _, err := time.Parse(time.RFC3339, m[i][1]); err != nil {
			t.Errorf("datetime %q: %v", m[i][1], err)
		}
		if got := [3]string{m[i][1], m[i][2], m[i][3]}; got != w {
			t.Errorf("time %d = %q, want %q", i, got, w)
		}
	}
}

func TestRelativeTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ago  time.Duration
		want string
	}{
		{-time.Hour, "just now"}, // clock skew: a post "from the future"
		{0, "just now"},
		{59 * time.Second, "just now"},
		{time.Minute, "1 minute ago"},
		{5*time.Minute + 59*time.Second, "5 minutes ago"},
		{59 * time.Minute, "59 minutes ago"},
		{time.Hour, "1 hour ago"},
		{2 * time.Hour, "2 hours ago"},
		{23*time.Hour + 59*time.Minute, "23 hours ago"},
		{24 * time.Hour, "yesterday"},
		{47 * time.Hour, "yesterday"},
		{48 * time.Hour, "2 days ago"},
		{3 * 24 * time.Hour, "3 days ago"},
		{7*24*time.Hour - time.Second, "6 days ago"},
		{7 * 24 * time.Hour, "20 Nov 2026"},
		{30 * 24 * time.Hour, "28 Oct 2026"},
		{400 * 24 * time.Hour, "23 Oct 2025"},
	}
	for _, tt := range tests {
		if got, _ := relativeTime(testNow, testNow.Add(-tt.ago)); got != tt.want {
			t.Errorf("relativeTime(now-%v) = %q, want %q", tt.ago, got, tt.want)
		}
	}
	// The date is the UTC one, whatever the zone of the stored time.
	late := time.Date(2026, time.November, 1, 23, 30, 0, 0, time.FixedZone("X", -5*3600))
	if got, _ := relativeTime(testNow, late); got != "2 Nov 2026" {
		t.Errorf("relativeTime of %v = %q, want the UTC date 2 Nov 2026", late, got)
	}
}

func TestRenderZeroNowUsesClock(t *testing.T) {
	t.Parallel()
	page := render(t, Feed{Posts: []Post{{Text: "x", CreatedAt: time.Now().Add(-3 * time.Minute)}}})
	if !strings.Contains(page, ">3 minutes ago</time>") {
		t.Error("zero Feed.Now did not fall back to the clock")
	}
}

var (
	styleAttr     = regexp.MustCompile(`(?i)\sstyle\s*=`)
	handlerAttr   = regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`)
	scriptElement = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`)
)

// The page must work under CSP: no inline style, script or event handler.
func TestRenderNoInlineStyleOrScript(t *testing.T) {
	t.Parallel()
	for name, f := range sampleFeeds() {
		page := render(t, f)
		if styleAttr.MatchString(page) {
			t.Errorf("%s: style attribute in page", name)
		}
		if strings.Contains(strings.ToLower(page), "<style") {
			t.Errorf("%s: <style> element in page", name)
		}
		if m := handlerAttr.FindString(page); m != "" {
			t.Errorf("%s: inline event handler: %s", name, m)
		}
		scripts := scriptElement.FindAllStringSubmatch(page, -1)
		if len(scripts) != 1 {
			t.Errorf("%s: %d <script> elements, want 1", name, len(scripts))
		}
		for _, s := range scripts {
			if strings.TrimSpace(s[2]) != "" || !strings.Contains(s[1], `src="/static/`) {
				t.Errorf("%s: inline script: %s", name, s[0])
			}
		}
	}
}

func TestCSP(t *testing.T) {
	t.Parallel()
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'",
		"frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'", "img-src 'self' blob:"} {
		if !strings.Contains(CSP, want) {
			t.Errorf("CSP lacks %q", want)
		}
	}
	if strings.Contains(CSP, "unsafe") {
		t.Error("CSP allows something unsafe")
	}
}

// TestLabelsUntil: a rendering stays right until LabelsUntil and not a
// nanosecond longer.
func TestLabelsUntil(t *testing.T) {
	for _, ago := range []time.Duration{
		-time.Hour, 0, 30 * time.Second, 59 * time.Second, time.Minute, 90 * time.Second, 59*time.Minute + 59*time.Second,
		time.Hour, 5*time.Hour + time.Minute, 23 * time.Hour, 30 * time.Hour, 47 * time.Hour, 2*24*time.Hour + time.Hour, 6*24*time.Hour + 23*time.Hour,
	} {
		created := testNow.Add(-ago)
		until := LabelsUntil(Feed{Now: testNow, Posts: []Post{{CreatedAt: created}, {CreatedAt: testNow.Add(-400 * 24 * time.Hour)}}})
		if !until.After(testNow) {
			t.Fatalf("%v ago: until %v is not after now", ago, until)
		}
		label, _ := relativeTime(testNow, created)
		if before, _ := relativeTime(until.Add(-time.Nanosecond), created); before != label {
			t.Errorf("%v ago: %q changed to %q before %v", ago, label, before, until)
		}
		if at, _ := relativeTime(until, created); at == label {
			t.Errorf("%v ago: %q still unchanged at %v", ago, label, until)
		}
	}
	// Only dates: nothing changes within a day.
	if until := LabelsUntil(Feed{Now: testNow, Posts: []Post{{CreatedAt: testNow.Add(-400 * 24 * time.Hour)}}}); until.Sub(testNow) < 24*time.Hour {
		t.Errorf("a page of dates is good until %v", until)
	}
}

// TestPostTextIsIsolated: each post's text sets its own direction and is
// isolated from the page around it, so that right-to-left text (or a
// direction control in it) cannot turn the rest of its card around.
func TestPostTextIsIsolated(t *testing.T) {
	t.Parallel()
	page := render(t, Feed{Now: testNow, Posts: []Post{{ID: "a", Text: "\u2067مرحبا\u2069 then latin", CreatedAt: testNow}}})
	if !strings.Contains(page, "<p dir=\"auto\">\u2067مرحبا\u2069 then latin</p>") {
		t.Errorf("the post's text is not in a paragraph of its own direction:\n%s", page)
	}
	if !strings.Contains(string(assets()["style.css"].body), "unicode-bidi: isolate") {
		t.Error("style.css does not isolate post text")
	}
}
