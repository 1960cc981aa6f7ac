package edge

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/extagram/extagram/edge/web"
	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
)

// handleUpload serves POST /upload.php, the original form (multipart
// fields "post" and "photo"), streaming the photo into UploadService
// without holding it. Success is 303 to the feed; failure is the feed page
// with the message, the typed text kept, and 400, 408, 413, 415, 429 or
// 503.
func (e *Edge) handleUpload(w http.ResponseWriter, r *http.Request) {
	if e.lim != nil {
		if ok, wait := e.lim.allow(clientAddr(r), time.Now()); !ok {
			retryAfter(w, wait)
			e.uploadFailed(w, r, "", &uploadError{code: http.StatusTooManyRequests,
				msg: fmt.Sprintf("Too many posts from your address. Please wait %s and try again.", wait.Round(time.Second))})
			return
		}
	}
	post, text, err := e.upload(r)
	if err != nil {
		var ue *uploadError
		if !errors.As(err, &ue) {
			ue = &uploadError{code: HTTPStatus(err), msg: userMessage(err)}
		}
		// Stop reading: the rest of a refused body is not wanted, and the
		// connection must not be reused with unread bytes on it.
		if ue.code == http.StatusRequestEntityTooLarge {
			w.Header().Set("Connection", "close")
		}
		e.uploadFailed(w, r, text, ue)
		return
	}
	// The page the author is sent to must show the post.
	e.feed.posted(post.GetId())
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// upload reads the form and creates the post. It also returns the typed
// text, for the page shown when the upload fails.
func (e *Edge) upload(r *http.Request) (*feedv1.Post, string, error) {
	mr, err := multipartReader(r)
	if err != nil {
		return nil, "", err
	}
	form, err := readUploadForm(mr, e.opts.MaxUploadBytes)
	if err != nil {
		return nil, form.text, err
	}
	post, err := e.backends.createPost(r.Context(), form.text, form.photo)
	return post, form.text, err
}

func (e *Edge) uploadFailed(w http.ResponseWriter, r *http.Request, text string, ue *uploadError) {
	e.logger.InfoContext(r.Context(), "upload refused", "status", ue.code, "reason", ue.msg, "request_id", requestID(r.Context()))
	page := web.Feed{Now: time.Now(), Error: ue.msg, Text: text}
	// Best effort: the page shows the newest posts under the message.
	if p, err := e.feed.page(r.Context(), ""); err == nil {
		fillPosts(&page, p.resp)
	}
	e.render(w, r, ue.code, page)
}
