package edge

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/extagram/extagram/edge/web"
	blobv1 "github.com/extagram/extagram/gen/extagram/blob/v1"
	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/uploadsvc"
)

const (
	// pageSize is the number of posts on a feed page, as in the design.
	pageSize = 20
	// formOverhead is what a form may add to the photo: the text field,
	// part headers and boundaries.
	formOverhead = 64 << 10
	// maxFormParts bounds the parts of an upload form (it has two).
	maxFormParts = 8
	// maxTextBytes bounds the text field before it is checked in
	// characters: 2,200 characters of at most 4 bytes, plus white space.
	maxTextBytes = 4*store.MaxTextLen + 1024
	// chunkSize is the size of the upload stream's messages.
	chunkSize = 64 << 10
)

// handleFeed renders a page of the feed; ?page=TOKEN selects an older page.
func (e *Edge) handleFeed(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("page")
	page := web.Feed{Now: time.Now()}
	code := http.StatusOK
	resp, err := e.listPosts(r.Context(), token)
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

func (e *Edge) listPosts(ctx context.Context, token string) (*feedv1.ListPostsResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, feedTimeout)
	defer cancel()
	return e.feed.ListPosts(ctx, &feedv1.ListPostsRequest{PageSize: pageSize, PageToken: token})
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

// uploadError is a failed upload as the user sees it.
type uploadError struct {
	code int
	msg  string
}

func (u *uploadError) Error() string { return u.msg }

func badForm(code int, format string, args ...any) *uploadError {
	return &uploadError{code: code, msg: fmt.Sprintf(format, args...)}
}

// handleUpload reads the original form (multipart fields "post" and
// "photo") and streams it into UploadService without holding the photo in
// memory. Success is 303 to the feed; failure is the feed page with the
// message, the typed text kept, and 400, 413, 415, 429 or 503.
func (e *Edge) handleUpload(w http.ResponseWriter, r *http.Request) {
	if e.lim != nil {
		if ok, wait := e.lim.allow(clientAddr(r), time.Now()); !ok {
			retryAfter(w, wait)
			e.uploadFailed(w, r, "", &uploadError{code: http.StatusTooManyRequests,
				msg: fmt.Sprintf("Too many posts from your address. Please wait %s and try again.", wait.Round(time.Second))})
			return
		}
	}
	text, err := e.streamUpload(r)
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
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (e *Edge) uploadFailed(w http.ResponseWriter, r *http.Request, text string, ue *uploadError) {
	e.logger.InfoContext(r.Context(), "upload refused", "status", ue.code, "reason", ue.msg, "request_id", requestID(r.Context()))
	page := web.Feed{Now: time.Now(), Error: ue.msg, Text: text}
	// Best effort: the page shows the newest posts under the message.
	if resp, err := e.listPosts(r.Context(), ""); err == nil {
		fillPosts(&page, resp)
	}
	e.render(w, r, ue.code, page)
}

// streamUpload returns the typed text (for the error page) and an error.
func (e *Edge) streamUpload(r *http.Request) (string, error) {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "multipart/form-data" {
		return "", badForm(http.StatusUnsupportedMediaType, "The form must be sent as multipart/form-data (fields \"post\" and \"photo\").")
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return "", badForm(http.StatusBadRequest, "The form could not be read: %v.", err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), uploadTimeout)
	defer cancel()

	var (
		text     string
		haveText bool
		// A photo that arrives before the text waits here (bounded by the
		// size limit); in browser forms the text comes first and the photo
		// is streamed straight through.
		early     *bytes.Buffer
		earlyInfo *uploadv1.PhotoInfo
		stream    uploadv1.UploadService_UploadClient
		sent      bool
	)
	open := func(photo *uploadv1.PhotoInfo) error {
		var err error
		stream, err = e.upload.Upload(ctx)
		if err != nil {
			return err
		}
		return stream.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Header{
			Header: &uploadv1.UploadHeader{Text: text, Photo: photo}}})
	}
	for parts := 0; ; parts++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return text, formReadError(err, e.opts.MaxUploadBytes)
		}
		if parts >= maxFormParts {
			return text, badForm(http.StatusBadRequest, "The form has too many fields; it needs only \"post\" and \"photo\".")
		}
		name := part.FormName()
		if name == "" {
			return text, badForm(http.StatusBadRequest, "The form has a part without a field name (a missing or unreadable Content-Disposition); it needs only \"post\" and \"photo\".")
		}
		if !cleanName(name) {
			return text, badForm(http.StatusBadRequest, "A field name in the form contains a NUL or control character or is not valid UTF-8; the form needs only \"post\" and \"photo\".")
		}
		switch name {
		case "post":
			if haveText {
				return text, badForm(http.StatusBadRequest, "The form has more than one \"post\" field.")
			}
			b, err := io.ReadAll(io.LimitReader(part, maxTextBytes+1))
			if err != nil {
				return text, formReadError(err, e.opts.MaxUploadBytes)
			}
			if len(b) > maxTextBytes {
				return "", badForm(http.StatusBadRequest, "The text is too long; the limit is %d characters.", store.MaxTextLen)
			}
			if !utf8.Valid(b) {
				return "", badForm(http.StatusBadRequest, "The text is not valid UTF-8.")
			}
			text, haveText = string(b), true
		case "photo":
			if sent || early != nil {
				return text, badForm(http.StatusBadRequest, "The form has more than one \"photo\" field.")
			}
			// A NUL cuts a name short in C code ("shell.php\x00.jpg"):
			// refused, though the name is never used as a path.
			if strings.ContainsRune(part.FileName(), 0) {
				return text, badForm(http.StatusBadRequest, "The file name contains a NUL character; rename the file and try again.")
			}
			info := &uploadv1.PhotoInfo{
				FileName:    cleanClaim(part.FileName(), 255),
				ContentType: cleanClaim(part.Header.Get("Content-Type"), 100),
			}
			first := make([]byte, chunkSize)
			n, err := io.ReadFull(part, first)
			if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
				return text, formReadError(err, e.opts.MaxUploadBytes)
			}
			first = first[:n]
			if n == 0 && part.FileName() == "" {
				// A form whose file input was left empty.
				continue
			}
			if !haveText {
				early, earlyInfo = bytes.NewBuffer(first), info
				if _, err := io.Copy(early, io.LimitReader(part, e.opts.MaxUploadBytes+1-int64(n))); err != nil {
					return text, formReadError(err, e.opts.MaxUploadBytes)
				}
				if int64(early.Len()) > e.opts.MaxUploadBytes {
					return text, tooLarge(e.opts.MaxUploadBytes)
				}
				continue
			}
			if err := open(info); err != nil {
				return text, finish(stream, err)
			}
			if err := sendChunks(stream, io.MultiReader(bytes.NewReader(first), part), e.opts.MaxUploadBytes); err != nil {
				return text, finish(stream, err)
			}
			sent = true
		default:
			// Unknown fields are read and ignored, within the body limit.
			if _, err := io.Copy(io.Discard, part); err != nil {
				return text, formReadError(err, e.opts.MaxUploadBytes)
			}
		}
	}
	if !haveText {
		return "", badForm(http.StatusBadRequest, "Write something: the text is required.")
	}
	if stream == nil {
		if err := open(earlyInfo); err != nil {
			return text, finish(stream, err)
		}
		if early != nil {
			if err := sendChunks(stream, early, e.opts.MaxUploadBytes); err != nil {
				return text, finish(stream, err)
			}
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return text, err
	}
	return text, nil
}

// sendChunks streams r into the upload. More than limit bytes is refused
// here already, so an oversized photo is never read past the limit.
func sendChunks(stream uploadv1.UploadService_UploadClient, r io.Reader, limit int64) error {
	buf := make([]byte, chunkSize)
	var total int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			total += int64(n)
			if total > limit {
				return tooLarge(limit)
			}
			if serr := stream.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Chunk{Chunk: buf[:n]}}); serr != nil {
				return serr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return formReadError(err, limit)
		}
	}
}

// finish turns a failed send into the service's own answer: when the
// service has already refused the upload, Send reports only io.EOF and the
// reason comes with CloseAndRecv.
func finish(stream uploadv1.UploadService_UploadClient, err error) error {
	var ue *uploadError
	if errors.As(err, &ue) || stream == nil {
		return err
	}
	if errors.Is(err, io.EOF) {
		if _, rerr := stream.CloseAndRecv(); rerr != nil {
			return rerr
		}
	}
	return err
}

func tooLarge(limit int64) *uploadError {
	return badForm(http.StatusRequestEntityTooLarge, "The photo is larger than the %s limit.", uploadsvc.FormatBytes(limit))
}

func formReadError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return badForm(http.StatusRequestEntityTooLarge, "The form is larger than the limit: the photo may be at most %s.", uploadsvc.FormatBytes(limit))
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return badForm(http.StatusRequestTimeout, "The upload took too long.")
	}
	// The part headers are parsed strictly: a NUL or another control
	// character in a field or file name ends here.
	var pe textproto.ProtocolError
	if errors.As(err, &pe) {
		return badForm(http.StatusBadRequest, "The form could not be read: the headers of one of its parts are malformed (for example a NUL or control character in a field or file name).")
	}
	return badForm(http.StatusBadRequest, "The form could not be read: %v.", err)
}

// cleanName reports whether a form field name is valid UTF-8 without
// control characters.
func cleanName(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// cleanClaim makes what a client says of its file safe to carry and log:
// valid UTF-8, no control characters, bounded length. It is never used as
// a path.
func cleanClaim(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	return s
}

// handleStorage serves /storage/{id}: GET and HEAD, ETag (the SHA-256),
// conditional and range requests, immutable caching.
func (e *Edge) handleStorage(w http.ResponseWriter, r *http.Request) {
	id, err := store.ParseID(r.PathValue("id"))
	if err != nil {
		http.Error(w, "bad image id: ids are 22 characters of A-Z, a-z, 0-9, '-' and '_'", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), blobTimeout)
	defer cancel()
	br := &blobReader{ctx: ctx, client: e.blob, id: id.String()}
	defer br.close()

	var meta *blobv1.BlobMetadata
	// A plain GET takes the metadata from the stream's first message: one
	// call. HEAD, conditional and range requests ask for it alone first.
	if r.Method == http.MethodGet && r.Header.Get("Range") == "" && r.Header.Get("If-None-Match") == "" && r.Header.Get("If-Modified-Since") == "" {
		meta, err = br.openAt(0)
	} else {
		var resp *blobv1.GetBlobMetadataResponse
		resp, err = e.blob.GetBlobMetadata(ctx, &blobv1.GetBlobMetadataRequest{Id: id.String()})
		meta = resp.GetMetadata()
	}
	if err != nil {
		code := HTTPStatus(err)
		if code == http.StatusServiceUnavailable {
			retryAfter(w, 2*time.Second)
		}
		msg := userMessage(err)
		if code == http.StatusNotFound {
			msg = "no image has this id"
		}
		http.Error(w, msg, code)
		return
	}
	br.size = meta.GetSizeBytes()
	h := w.Header()
	h.Set("Content-Type", meta.GetContentType())
	h.Set("ETag", `"`+hex.EncodeToString(meta.GetSha256())+`"`)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", meta.GetCreateTime().AsTime(), br)
	if br.err != nil {
		e.logger.WarnContext(r.Context(), "image stream failed mid-response", "image", id.String(), "err", br.err, "request_id", requestID(r.Context()))
	}
}

// blobReader is an io.ReadSeeker over BlobService.GetBlob for
// http.ServeContent: a seek only moves the position; a read opens a stream
// at the position when none is open there.
type blobReader struct {
	ctx    context.Context
	client blobv1.BlobServiceClient
	id     string
	size   int64
	pos    int64

	stream    blobv1.BlobService_GetBlobClient
	cancel    context.CancelFunc
	streamPos int64
	buf       []byte
	err       error
}

func (b *blobReader) openAt(off int64) (*blobv1.BlobMetadata, error) {
	b.close()
	ctx, cancel := context.WithCancel(b.ctx)
	stream, err := b.client.GetBlob(ctx, &blobv1.GetBlobRequest{Id: b.id, ReadOffset: off})
	if err != nil {
		cancel()
		return nil, err
	}
	first, err := stream.Recv()
	if err != nil {
		cancel()
		return nil, err
	}
	meta := first.GetMetadata()
	if meta == nil {
		cancel()
		return nil, errors.New("blob stream did not start with metadata")
	}
	b.stream, b.cancel, b.streamPos, b.buf = stream, cancel, off, nil
	return meta, nil
}

func (b *blobReader) close() {
	if b.cancel != nil {
		b.cancel()
		b.cancel, b.stream = nil, nil
	}
}

func (b *blobReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += b.pos
	case io.SeekEnd:
		offset += b.size
	default:
		return b.pos, errors.New("blobReader: bad whence")
	}
	if offset < 0 {
		return b.pos, errors.New("blobReader: negative position")
	}
	b.pos = offset
	return offset, nil
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.pos >= b.size {
		return 0, io.EOF
	}
	if b.stream == nil || b.streamPos != b.pos {
		meta, err := b.openAt(b.pos)
		if err != nil {
			b.err = err
			return 0, err
		}
		if meta.GetSizeBytes() != b.size {
			b.err = errors.New("image changed while being served")
			return 0, b.err
		}
	}
	for len(b.buf) == 0 {
		msg, err := b.stream.Recv()
		if err == io.EOF {
			b.err = io.ErrUnexpectedEOF
			return 0, b.err
		}
		if err != nil {
			b.err = err
			return 0, err
		}
		b.buf = msg.GetChunk()
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	b.pos += int64(n)
	b.streamPos += int64(n)
	return n, nil
}
