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

var (
	styleAttr     = regexp.MustCompile(`(?i)\sstyle\s*=`)
	handlerAttr   = regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`)
	scriptElement = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`)
)

// TestRender: each page holds the strings of want in that order, none of
// notWant, and count[s] times s; every page works under the CSP (no inline
// style, script or event handler, one external script).
func TestRender(t *testing.T) {
	t.Parallel()
	const emptyMsg = "No posts yet. Be the first to publish."
	const older = `<a class="older" href="/?page=abc_DEF-123" rel="next">Older posts</a>`
	const newest = `<a class="newest" href="/">Newest posts</a>`
	posts := sampleFeeds()["posts"]
	// A zone other than UTC: datetime must still be in UTC.
	posts.Posts[0].CreatedAt = posts.Posts[0].CreatedAt.In(time.FixedZone("CET", 3600))
	photo := Post{Text: "p", Image: &Image{URL: "/storage/x", Width: 10, Height: 10}}
	const eager = `<img src="/storage/x" alt="p" width="10" height="10" decoding="async">`
	for _, c := range []struct {
		name          string
		feed          Feed
		want, notWant []string
		count         map[string]int
	}{
		{"posts", posts, []string{
			`<p dir="auto">&lt;script&gt;alert(1)&lt;/script&gt;</p>`,
			`<img src="/storage/AAAAAAAAAAAAAAAAAAAAAA" alt="&lt;script&gt;alert(1)&lt;/script&gt;" width="1080" height="1350" decoding="async">`,
			`<time datetime="2026-11-27T11:59:30Z" title="27 Nov 2026 11:59 UTC">just now</time>`,
			`<time datetime="2026-11-27T11:55:00Z" title="27 Nov 2026 11:55 UTC">5 minutes ago</time>`,
			`<img src="/storage/BBBBBBBBBBBBBBBBBBBBBB" alt="quotes &#34; and &#39; and &amp; ampersand" width="640" height="480" loading="lazy" decoding="async">`,
			`<time datetime="2026-11-27T10:00:00Z" title="27 Nov 2026 10:00 UTC">2 hours ago</time>`,
			`<img src="/storage/CCCCCCCCCCCCCCCCCCCCCC" alt="fourth" width="300" height="300" loading="lazy" decoding="async">`,
			`<time datetime="2026-11-24T12:00:00Z" title="24 Nov 2026 12:00 UTC">3 days ago</time>`,
			`<img src="/storage/5f3a1b2c4d5e6" alt="legacy row, no time, no size" loading="lazy" decoding="async">`,
		}, []string{"<script>alert(1)</script>", emptyMsg},
			// The post with no time has no <time>.
			map[string]int{`<div class="post">`: 5, `<img src="/storage/`: 4, "<time ": 4}},
		{"empty", sampleFeeds()["empty"], []string{
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
		}, []string{`role="alert"`, "<nav"}, nil},
		// The error is above the form.
		{"error", sampleFeeds()["error"], []string{
			`<p class="error" id="upload-error" role="alert">The photo is not a JPEG, PNG, GIF or WebP image.</p>`,
			"<form ",
			`value="my &#34;&lt;b&gt;draft&lt;/b&gt;&#34;" aria-invalid="true" aria-describedby="upload-error">`,
		}, []string{"<b>draft"}, nil},
		{"first page", Feed{OlderURL: "/?page=abc_DEF-123"}, []string{"<nav", older}, []string{newest}, nil},
		{"middle page", Feed{OlderURL: "/?page=abc_DEF-123", NewestURL: "/"}, []string{"<nav", newest, older}, nil, nil},
		{"last page", Feed{NewestURL: "/"}, []string{"<nav", newest}, []string{older}, nil},
		{"only page", Feed{}, nil, []string{"<nav", older, newest}, nil},
		{"pager link sanitized", Feed{OlderURL: `javascript:alert(1)`}, nil, []string{"javascript:"}, nil},
		// The first two posts' photos load eagerly, the rest lazily.
		{"lazy from the third post", Feed{Posts: []Post{photo, photo, photo}}, []string{eager, eager,
			`<img src="/storage/x" alt="p" width="10" height="10" loading="lazy" decoding="async">`}, nil, nil},
		{"zero Now uses the clock", Feed{Posts: []Post{{Text: "x", CreatedAt: time.Now().Add(-3 * time.Minute)}}},
			[]string{">3 minutes ago</time>"}, nil, nil},
		// Each post's text sets its own direction (style.css isolates it:
		// TestAssets).
		{"bidi text", Feed{Now: testNow, Posts: []Post{{ID: "a", Text: "\u2067مرحبا\u2069 then latin", CreatedAt: testNow}}},
			[]string{"<p dir=\"auto\">\u2067مرحبا\u2069 then latin</p>"}, nil, nil},
	} {
		page := render(t, c.feed)
		rest := page
		for _, w := range c.want {
			_, after, ok := strings.Cut(rest, w)
			if !ok {
				t.Errorf("%s page lacks %q (in this order)", c.name, w)
				continue
			}
			rest = after
		}
		for _, w := range c.notWant {
			if strings.Contains(page, w) {
				t.Errorf("%s page has %q", c.name, w)
			}
		}
		for s, n := range c.count {
			if got := strings.Count(page, s); got != n {
				t.Errorf("%s page: %d of %q, want %d", c.name, got, s, n)
			}
		}
		if styleAttr.MatchString(page) || strings.Contains(strings.ToLower(page), "<style") {
			t.Errorf("%s: inline style in page", c.name)
		}
		if m := handlerAttr.FindString(page); m != "" {
			t.Errorf("%s: inline event handler: %s", c.name, m)
		}
		scripts := scriptElement.FindAllStringSubmatch(page, -1)
		if len(scripts) != 1 || strings.TrimSpace(scripts[0][2]) != "" || !strings.Contains(scripts[0][1], `src="/static/`) {
			t.Errorf("%s: scripts %q, want one external script", c.name, scripts)
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
