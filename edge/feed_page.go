package edge

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/extagram/extagram/edge/web"
	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
	"github.com/extagram/extagram/internal/contract"
)

// handleFeed serves GET / and GET /extagram.php: a page of the feed;
// ?page=TOKEN selects an older page. Pages come from the feed cache.
func (e *Edge) handleFeed(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("page")
	now := time.Now()
	p, err := e.feed.page(r.Context(), token)
	if err == nil {
		var html *renderedPage
		if html, err = p.body(now); err == nil {
			writePage(w, http.StatusOK, html.before, []byte(newUploadToken()), html.after)
			return
		}
		e.logger.ErrorContext(r.Context(), "render feed", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	page := web.Feed{Now: now, Error: userMessage(err), UploadToken: newUploadToken()}
	code := HTTPStatus(err)
	if code == http.StatusBadRequest {
		page.Error = "That page link is not valid. Here are the newest posts instead."
	}
	if token != "" {
		page.NewestURL = "/"
	}
	e.render(w, r, code, page)
}

func fillPosts(page *web.Feed, resp *feedv1.ListPostsResponse) {
	for _, p := range resp.GetPosts() {
		wp := web.Post{ID: p.GetId(), Text: p.GetText()}
		if p.GetCreateTime() != nil {
			wp.CreatedAt = p.GetCreateTime().AsTime()
		}
		if img := p.GetImage(); img != nil {
			wp.Image = &web.Image{URL: "/storage/" + img.GetId(), Width: int(img.GetWidth()), Height: int(img.GetHeight())}
		}
		page.Posts = append(page.Posts, wp)
	}
	if t := resp.GetNextPageToken(); t != "" {
		page.OlderURL = "/?page=" + url.QueryEscape(t)
	}
}

// render renders and writes a feed page that is not cached: a failure,
// or a refused upload with its message.
func (e *Edge) render(w http.ResponseWriter, r *http.Request, code int, page web.Feed) {
	var buf bytes.Buffer
	if err := web.RenderFeed(&buf, page); err != nil {
		e.logger.ErrorContext(r.Context(), "render feed", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if code == http.StatusServiceUnavailable {
		retryAfter(w, 5*time.Second)
	}
	writePage(w, code, buf.Bytes())
}

// newUploadToken returns a fresh one-time token for a page's upload form:
// 128 random bits, as an id.
func newUploadToken() string { return contract.NewID().String() }

var (
	htmlType = []string{"text/html; charset=utf-8"}
	noStore  = []string{"no-store"}
)

// writePage writes a page of HTML, given in parts, that no cache may keep:
// it holds relative times, its own upload token and, after an upload, the
// user's own text.
func writePage(w http.ResponseWriter, code int, parts ...[]byte) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	h := w.Header()
	h["Content-Type"] = htmlType
	h["Cache-Control"] = noStore
	h["Content-Length"] = []string{strconv.Itoa(n)}
	w.WriteHeader(code)
	for _, p := range parts {
		_, _ = w.Write(p)
	}
}
