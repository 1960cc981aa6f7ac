package edge

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	blobv1 "github.com/extagram/extagram/gen/extagram/blob/v1"
)

// A plain GET or HEAD of a cached image is answered without
// http.ServeContent, with the very headers ServeContent sends; ranges and
// conditions are left to ServeContent.
func TestCachedImageServe(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 40_000) // 640,000 bytes: several writes
	img := newCachedImage(&blobv1.BlobMetadata{
		ContentType: "image/png",
		SizeBytes:   int64(len(data)),
		Sha256:      bytes.Repeat([]byte{0xab}, 32),
		CreateTime:  timestamppb.New(time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)),
	}, data)

	want := httptest.NewRecorder()
	img.setHeaders(want.Header())
	http.ServeContent(want, httptest.NewRequest(http.MethodGet, "/storage/x", nil), "", img.modTime, bytes.NewReader(img.data))

	for _, method := range []string{http.MethodGet, http.MethodHead} {
		got := httptest.NewRecorder()
		if !img.serve(got, httptest.NewRequest(method, "/storage/x", nil)) {
			t.Fatalf("%s: not served", method)
		}
		if got.Code != http.StatusOK {
			t.Errorf("%s: status %d", method, got.Code)
		}
		for _, h := range []string{"Content-Type", "Content-Length", "Etag", "Last-Modified", "Accept-Ranges", "Cache-Control", "X-Content-Type-Options"} {
			if g, w := got.Header().Get(h), want.Header().Get(h); g != w || g == "" {
				t.Errorf("%s: %s %q, ServeContent sends %q", method, h, g, w)
			}
		}
		wantBody := data
		if method == http.MethodHead {
			wantBody = nil
		}
		if !bytes.Equal(got.Body.Bytes(), wantBody) {
			t.Errorf("%s: %d bytes of body, want %d", method, got.Body.Len(), len(wantBody))
		}
	}

	for _, h := range []string{"Range", "If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range"} {
		req := httptest.NewRequest(http.MethodGet, "/storage/x", nil)
		req.Header.Set(h, "x")
		rec := httptest.NewRecorder()
		if img.serve(rec, req) || len(rec.Header()) > 0 || rec.Body.Len() > 0 {
			t.Errorf("with %s: served (%d headers, %d bytes), want it left to ServeContent", h, len(rec.Header()), rec.Body.Len())
		}
	}
}
