// Package web is the browser-facing part of the edge that needs no backend: the
// feed page template and the static assets (the seed's S6), both embedded in the
// binary. The page keeps the original PHP app's markup, paths and field names
// (form to /upload.php with fields "post" and "photo", div.post cards,
// /static/style.css and /static/preview.svg) and works under CSP with no inline
// script or style.
package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"time"
)

// CSP is the Content-Security-Policy the page works under; the edge sends it on
// every response. blob: in img-src is for the photo preview
// (URL.createObjectURL) shown before upload.
const CSP = "default-src 'none'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Feed is one page of the feed as the edge hands it to RenderFeed.
type Feed struct {
	Posts     []Post // already ordered, newest first
	OlderURL  string // link to the next (older) page, "" when there is none; e.g. "/?page=TOKEN"
	NewestURL string // link back to the newest posts, "" when this is the first page
	Error     string // message of a failed upload, shown above the form ("" for none)
	Text      string // the text the user typed, kept in the input after an error
	// UploadToken is the upload form's one-time token, sent back with the
	// form as its idempotency key: a retry of the same post is then stored
	// once. "" leaves the field out.
	UploadToken string
	Now         time.Time // for relative times ("5 minutes ago"); zero means time.Now()
}

// Post is one post of the feed.
type Post struct {
	ID        string
	Text      string
	CreatedAt time.Time // zero when unknown (rows imported from the original app): no time shown
	Image     *Image    // nil for a text-only post
}

// Image is the photo of a post.
type Image struct {
	URL           string // "/storage/ID"
	Width, Height int    // stored dimensions; 0 when unknown (then no width/height attributes)
}

// eagerImages is how many posts at the top of the page get their image loaded
// eagerly: they are above the fold, where loading="lazy" only delays the
// largest paint.
const eagerImages = 2

//go:embed templates/feed.html
var templateFS embed.FS

var feedTemplate = template.Must(template.New("feed.html").Funcs(template.FuncMap{"asset": AssetURL}).ParseFS(templateFS, "templates/feed.html"))

type pageView struct {
	Feed
	Items []postView
}

type postView struct {
	Text     string
	Image    *Image
	Lazy     bool
	Datetime string // RFC 3339 in UTC, for <time datetime>; "" when unknown
	Title    string // absolute time, shown on hover
	Ago      string // relative time
}

// RenderFeed writes the whole feed page. The page is rendered into a buffer
// first so that a template error never leaves half a page on w.
func RenderFeed(w io.Writer, f Feed) error {
	now := f.Now
	if now.IsZero() {
		now = time.Now()
	}
	v := pageView{Feed: f, Items: make([]postView, len(f.Posts))}
	for i, p := range f.Posts {
		pv := postView{Text: p.Text, Image: p.Image, Lazy: i >= eagerImages}
		if !p.CreatedAt.IsZero() {
			t := p.CreatedAt.UTC()
			pv.Datetime = t.Format(time.RFC3339)
			pv.Title = t.Format("2 Jan 2006 15:04 UTC")
			pv.Ago, _ = relativeTime(now, p.CreatedAt)
		}
		v.Items[i] = pv
	}
	var buf bytes.Buffer
	buf.Grow(4096 + 512*len(f.Posts))
	if err := feedTemplate.Execute(&buf, v); err != nil {
		return fmt.Errorf("web: render feed: %w", err)
	}
	if _, err := buf.WriteTo(w); err != nil {
		return fmt.Errorf("web: write feed: %w", err)
	}
	return nil
}

// LabelsUntil returns when the page rendered for f would first read
// differently: the moment the relative time of one of its posts moves on
// ("just now" becomes "1 minute ago"). Until then a rendering of f can be
// served as it is.
func LabelsUntil(f Feed) time.Time {
	now := f.Now
	if now.IsZero() {
		now = time.Now()
	}
	until := now.Add(24 * time.Hour)
	for _, p := range f.Posts {
		if p.CreatedAt.IsZero() {
			continue
		}
		if _, u := relativeTime(now, p.CreatedAt); u.Before(until) {
			until = u
		}
	}
	return until
}

// relativeTime says how long before now t was, the way a feed reader expects:
// "just now", "5 minutes ago", "2 hours ago", "yesterday", "3 days ago", then
// the date ("27 Nov 2026", in UTC since the server does not know the reader's
// zone), and until when it says so. Times in the future (clock skew between
// hosts) are "just now".
func relativeTime(now, t time.Time) (label string, until time.Time) {
	d := now.Sub(t)
	// next is the end of the current whole number of units.
	next := func(unit time.Duration) time.Time { return t.Add((d/unit + 1) * unit) }
	switch {
	case d < time.Minute:
		return "just now", t.Add(time.Minute)
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute"), next(time.Minute)
	case d < 24*time.Hour:
		return plural(int(d/time.Hour), "hour"), next(time.Hour)
	case d < 48*time.Hour:
		return "yesterday", t.Add(48 * time.Hour)
	case d < 7*24*time.Hour:
		return plural(int(d/(24*time.Hour)), "day"), next(24 * time.Hour)
	default:
		return t.UTC().Format("2 Jan 2006"), now.Add(100 * 365 * 24 * time.Hour)
	}
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit + " ago"
	}
	return fmt.Sprintf("%d %ss ago", n, unit)
}
