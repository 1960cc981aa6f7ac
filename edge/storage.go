package edge

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"time"

	blobv1 "github.com/extagram/extagram/gen/extagram/blob/v1"
	"github.com/extagram/extagram/internal/contract"
)

// writeProgress is how long one write of an image response may take: a
// client that stops reading (an HTTP/2 stream whose window stays shut) is
// cut off, instead of holding its handler and what the handler holds for
// the whole WriteTimeout.
const writeProgress = 10 * time.Second

// handleStorage serves GET and HEAD /storage/{id}: the image's bytes with
// their true type, the SHA-256 as ETag, conditional and range requests and
// immutable caching. Hot images come from the edge's cache; an image too
// large for it is streamed from the blob service, one read per request.
func (e *Edge) handleStorage(w http.ResponseWriter, r *http.Request) {
	id, err := contract.ParseID(r.PathValue("id"))
	if err != nil {
		http.Error(w, "bad image id: "+contract.IDForm, http.StatusBadRequest)
		return
	}
	var img *cachedImage
	var meta *blobv1.BlobMetadata
	if e.images != nil {
		var nc errNotCached
		switch img, err = e.images.get(r.Context(), e.backends, id.String()); {
		case err == nil:
			if img.serve(w, r) {
				return
			}
		case errors.As(err, &nc):
			meta = nc.meta
		default:
			storageError(w, err)
			return
		}
	}
	w = progressWriter{w, http.NewResponseController(w)}
	if img != nil {
		limitRanges(r, int64(len(img.data)), maxRanges)
		img.setHeaders(w.Header())
		http.ServeContent(w, r, "", img.modTime, bytes.NewReader(img.data))
		return
	}
	e.streamImage(w, r, id.String(), meta)
}

// streamImage serves an image through one GetBlob stream, for images the
// cache does not keep: the whole image, or the one range asked for (more
// ranges get the whole image). meta, when known, saves asking for it.
func (e *Edge) streamImage(w http.ResponseWriter, r *http.Request, id string, meta *blobv1.BlobMetadata) {
	br := &blobReader{r: r, backends: e.backends, id: id}
	defer br.close()
	var err error
	switch {
	case meta != nil:
	case r.Method == http.MethodGet && r.Header.Get("Range") == "" && r.Header.Get("If-None-Match") == "" && r.Header.Get("If-Modified-Since") == "":
		// A plain GET takes the metadata from the stream's first message:
		// one call.
		meta, err = br.openAt(0)
	default:
		// HEAD, conditional and range requests ask for it alone first.
		meta, err = e.backends.blobMetadata(r.Context(), id)
	}
	if err != nil {
		storageError(w, err)
		return
	}
	br.size = meta.GetSizeBytes()
	if rg := limitRanges(r, br.size, 1); rg != nil && r.Header.Get("If-Range") == "" {
		// ServeContent will read exactly this range: ask for its bytes
		// only.
		br.end = rg.start + rg.length
	}
	newCachedImage(meta, nil).setHeaders(w.Header())
	http.ServeContent(w, r, "", meta.GetCreateTime().AsTime(), br)
	if br.err != nil && r.Context().Err() == nil {
		e.logger.WarnContext(r.Context(), "image stream failed mid-response", "image", id, "err", br.err)
	}
}

// progressWriter gives each write writeProgress to complete.
type progressWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (p progressWriter) Write(b []byte) (int, error) {
	_ = p.rc.SetWriteDeadline(time.Now().Add(writeProgress))
	return p.ResponseWriter.Write(b)
}

func (p progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// storageError answers a failed image request.
func storageError(w http.ResponseWriter, err error) {
	code := HTTPStatus(err)
	if code == http.StatusServiceUnavailable {
		retryAfter(w, 2*time.Second)
	}
	msg := userMessage(err)
	if code == http.StatusNotFound {
		msg = "no image has this id"
	}
	http.Error(w, msg, code)
}

// blobReader is an io.ReadSeeker over an image's GetBlob streams, for
// http.ServeContent: a seek only moves the position; a read opens a stream
// at the position when none is open there.
type blobReader struct {
	r        *http.Request
	backends *backends
	id       string
	size     int64
	pos      int64
	// end, when set, is where the bytes wanted end: a stream asks for no
	// more.
	end int64

	stream    *blobStream
	streamPos int64
	buf       []byte
	err       error
}

func (b *blobReader) openAt(off int64) (*blobv1.BlobMetadata, error) {
	b.close()
	var limit int64
	if b.end > off {
		limit = b.end - off
	}
	meta, stream, err := b.backends.openBlob(b.r.Context(), b.id, off, limit)
	if err != nil {
		return nil, err
	}
	b.stream, b.streamPos, b.buf = stream, off, nil
	return meta, nil
}

func (b *blobReader) close() {
	if b.stream != nil {
		b.stream.close()
		b.stream = nil
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
		chunk, err := b.stream.next()
		if err == io.EOF {
			b.err = io.ErrUnexpectedEOF
			return 0, b.err
		}
		if err != nil {
			b.err = err
			return 0, err
		}
		b.buf = chunk
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	b.pos += int64(n)
	b.streamPos += int64(n)
	return n, nil
}
