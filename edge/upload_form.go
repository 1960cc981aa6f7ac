package edge

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
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
			e.uploadFailed(w, r, uploadForm{}, &uploadError{code: http.StatusTooManyRequests,
				msg: fmt.Sprintf("Too many posts from your address. Please wait %s and try again.", wait.Round(time.Second))})
			return
		}
	}
	release, err := e.uploads.acquire(clientAddr(r))
	if err != nil {
		var ue *uploadError
		errors.As(err, &ue)
		retryAfter(w, time.Second)
		e.uploadFailed(w, r, uploadForm{}, ue)
		return
	}
	defer release()
	body := &progressBody{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: e.opts.UploadIdle}
	r.Body = body
	post, form, err := e.upload(r)
	defer form.close()
	if err != nil {
		var ue *uploadError
		switch {
		case body.stalled:
			ue = errStalled
		case !errors.As(err, &ue):
			ue = &uploadError{code: HTTPStatus(err), msg: userMessage(err)}
		}
		// Stop reading: the rest of a refused body is not wanted, and the
		// connection must not be reused with unread bytes on it.
		if ue.code == http.StatusRequestEntityTooLarge {
			w.Header().Set("Connection", "close")
		}
		e.uploadFailed(w, r, form, ue)
		return
	}
	// The page the author is sent to must show the post.
	e.feed.posted(post.GetId())
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// uploadSlots caps the uploads in flight at the edge, from one address
// and in all: a client that opens uploads and stalls them holds a few, not
// the edge.
type uploadSlots struct {
	mu        sync.Mutex
	perClient int
	total     int
	inFlight  int
	by        map[string]int
}

func newUploadSlots(total, perClient int) *uploadSlots {
	return &uploadSlots{total: total, perClient: perClient, by: map[string]int{}}
}

// acquire takes a slot for an upload from client, or says why not (429
// for the client's own cap, 503 when the edge is full); release gives it
// back.
func (u *uploadSlots) acquire(client string) (release func(), err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.by[client] >= u.perClient:
		return nil, &uploadError{code: http.StatusTooManyRequests, msg: fmt.Sprintf("Your address has %d uploads in progress already; wait for them to finish.", u.perClient)}
	case u.inFlight >= u.total:
		return nil, &uploadError{code: http.StatusServiceUnavailable, msg: "Extagram is receiving too many uploads right now. Please try again in a moment."}
	}
	u.by[client]++
	u.inFlight++
	var once sync.Once
	return func() {
		once.Do(func() {
			u.mu.Lock()
			defer u.mu.Unlock()
			u.inFlight--
			if u.by[client]--; u.by[client] == 0 {
				delete(u.by, client)
			}
		})
	}, nil
}

// upload reads the form and creates the post. It also returns the form as
// read, for the page shown when the upload fails.
func (e *Edge) upload(r *http.Request) (*feedv1.Post, uploadForm, error) {
	mr, err := multipartReader(r)
	if err != nil {
		return nil, uploadForm{}, err
	}
	form, err := readUploadForm(mr, e.opts.MaxUploadBytes)
	if err != nil {
		return nil, form, err
	}
	key, err := uploadKey(r, form.key)
	if err != nil {
		return nil, form, err
	}
	post, err := e.backends.createPost(r.Context(), form.text, key, form.photo)
	return post, form, err
}

// uploadKey is the idempotency key the upload service gets: the
// Idempotency-Key header of an API client, scoped to its address (keys of
// different clients must not meet), else the one-time token of the page
// the form was on, which is random and scoped by itself; "" for none.
func uploadKey(r *http.Request, formKey string) (string, error) {
	if h := r.Header.Get("Idempotency-Key"); h != "" {
		// A structured-field string, "...", or a bare token.
		k := h
		if len(k) >= 2 && k[0] == '"' && k[len(k)-1] == '"' {
			k = k[1 : len(k)-1]
		}
		if !validKey(k) || strings.ContainsAny(k, `"\`) {
			return "", badForm(http.StatusBadRequest, "The Idempotency-Key header is not 1 to %d printable ASCII characters.", maxKeyBytes)
		}
		return "header/" + clientAddr(r) + "/" + k, nil
	}
	if formKey != "" {
		return "form/" + formKey, nil
	}
	return "", nil
}

// uploadFailed answers a refused upload with the feed page, the message
// and the typed text. The form keeps the token it was sent with: the same
// post sent again is the same upload, stored once even if the first try
// was stored after all (an answer lost in an outage).
func (e *Edge) uploadFailed(w http.ResponseWriter, r *http.Request, form uploadForm, ue *uploadError) {
	e.logger.InfoContext(r.Context(), "upload refused", "status", ue.code, "reason", ue.msg)
	token := form.key
	if token == "" {
		token = newUploadToken()
	}
	page := web.Feed{Now: time.Now(), Error: ue.msg, Text: form.text, UploadToken: token}
	// Best effort: the page shows the newest posts under the message.
	if p, err := e.feed.page(r.Context(), ""); err == nil {
		fillPosts(&page, p.resp)
	}
	e.render(w, r, ue.code, page)
}
