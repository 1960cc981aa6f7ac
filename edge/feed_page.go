package edge

import (
	"bytes"
	"net/http"
	"net/url"
	"time"

	"github.com/extagram/extagram/edge/web"
	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
)

// handleFeed serves GET / and GET /extagram.php: a page of the feed;
// ?page=TOKEN selects an older page.
func (e *Edge) handleFeed(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("page")
	page := web.Feed{Now: time.Now()}
	code := http.StatusOK
	resp, err := e.backends.listPosts(r.Context(), token)
	if err != nil {
		code = HTTPStatus(err)
		page.Error = userMessage(err)
		if code == http.StatusBadRequest {
			page.Error = "That page link is not valid. Here are the newest posts instead."
			page.NewestURL = "/"
		}
	} else {
		fillPosts(&page, resp)
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

// render writes a feed page with status code.
func (e *Edge) render(w http.ResponseWriter, r *http.Request, code int, page web.Feed) {
	var buf bytes.Buffer
	if err := web.RenderFeed(&buf, page); err != nil {
		e.logger.ErrorContext(r.Context(), "render feed", "err", err, "request_id", requestID(r.Context()))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if code == http.StatusServiceUnavailable {
		retryAfter(w, 5*time.Second)
	}
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}
