package edge

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	blobv1 "github.com/extagram/extagram/gen/extagram/blob/v1"
	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"github.com/extagram/extagram/internal/apierr"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestHTTPStatusTable(t *testing.T) {
	unsupported := apierr.Upload(codes.InvalidArgument, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_UNSUPPORTED_TYPE, "not an image")
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, 200},
		{status.Error(codes.InvalidArgument, "x"), 400},
		{unsupported, 415},
		{apierr.Upload(codes.FailedPrecondition, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_KEY_REUSED, "key reused"), 422},
		{status.Error(codes.NotFound, "x"), 404},
		{status.Error(codes.ResourceExhausted, "x"), 413},
		{status.Error(codes.OutOfRange, "x"), 416},
		{status.Error(codes.Unavailable, "x"), 503},
		{status.Error(codes.DeadlineExceeded, "x"), 503},
		{status.Error(codes.Internal, "x"), 500},
		{status.Error(codes.DataLoss, "x"), 500},
	} {
		if got := HTTPStatus(c.err); got != c.want {
			t.Errorf("HTTPStatus(%v) = %d, want %d", c.err, got, c.want)
		}
	}
	// Server errors never show their details to users.
	if msg := userMessage(status.Error(codes.Internal, "sql: secret detail")); msg == "" || strings.Contains(msg, "secret") {
		t.Errorf("userMessage leaks: %q", msg)
	}
}

func TestSelfSignedCertificateIsKept(t *testing.T) {
	dir := t.TempDir()
	a, err := loadOrCreateCert("", "", dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadOrCreateCert("", "", dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Certificate[0]) != string(b.Certificate[0]) {
		t.Fatal("a second start made a new certificate instead of reusing the first")
	}
	leaf, err := x509.ParseCertificate(a.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if _, err := loadOrCreateCert("only-cert.pem", "", dir); err == nil {
		t.Error("--tls-cert without --tls-key accepted")
	}
	// Without --public-host the redirect names the certificate's first name.
	if got := certHost(a); got != "localhost" {
		t.Errorf("certHost of the self-signed certificate = %q, want localhost", got)
	}
}

func TestRateLimiter(t *testing.T) {
	l := newRateLimiter(2, time.Minute)
	now := time.Now()
	for i := range 2 {
		if ok, _ := l.allow("a", now); !ok {
			t.Fatalf("upload %d refused within the burst", i+1)
		}
	}
	ok, wait := l.allow("a", now)
	if ok || wait <= 0 || wait > 30*time.Second {
		t.Fatalf("third upload: ok=%v wait=%v; want refused with a wait of at most 30s", ok, wait)
	}
	if ok, _ := l.allow("b", now); !ok {
		t.Fatal("another client was limited")
	}
	if ok, _ := l.allow("a", now.Add(31*time.Second)); !ok {
		t.Fatal("a token did not come back")
	}
}

// TestRedirectHandler: the redirect names the site's own host and port,
// never the Host a request sent.
func TestRedirectHandler(t *testing.T) {
	for _, c := range []struct {
		host          string
		port          int
		reqHost, want string
	}{
		{"example.org", 443, "example.org", "https://example.org/p?q=1"},
		{"example.org", 8443, "example.org:8080", "https://example.org:8443/p?q=1"},
		{"example.org", 443, "evil.example", "https://example.org/p?q=1"},
		{"example.org", 443, "", "https://example.org/p?q=1"},
		{"::1", 443, "[::1]:80", "https://[::1]/p?q=1"},
		{"127.0.0.1", 8443, "attacker.test:80", "https://127.0.0.1:8443/p?q=1"},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://x/p?q=1", nil)
		r.Host = c.reqHost
		w := httptest.NewRecorder()
		redirectHandler(c.host, c.port).ServeHTTP(w, r)
		if w.Code != http.StatusPermanentRedirect || w.Header().Get("Location") != c.want {
			t.Errorf("Host %q: %d %q, want 308 %q", c.reqHost, w.Code, w.Header().Get("Location"), c.want)
		}
	}
}

// The API's marshaler writes a page's JSON again only for the very
// response it marshalled last; another response, even an equal one, is
// marshalled anew, and other messages pass through.
func TestAPIMarshalerKeepsTheLastPage(t *testing.T) {
	m := &apiMarshaler{JSONPb: &runtime.JSONPb{}}
	a := &feedv1.ListPostsResponse{Posts: []*feedv1.Post{{Id: "a", Text: "first"}}}
	b := &feedv1.ListPostsResponse{Posts: []*feedv1.Post{{Id: "b", Text: "second"}}}
	marshal := func(v any) []byte {
		t.Helper()
		body, err := m.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	first := marshal(a)
	if !strings.Contains(string(first), `"first"`) {
		t.Fatalf("JSON of a: %s", first)
	}
	if again := marshal(a); &again[0] != &first[0] {
		t.Error("the same response was marshalled again")
	}
	if got := marshal(b); !strings.Contains(string(got), `"second"`) || strings.Contains(string(got), `"first"`) {
		t.Errorf("JSON of b: %s", got)
	}
	if got := marshal(a); string(got) != string(first) || &got[0] == &first[0] {
		t.Errorf("a after b: %s (reused: %v)", got, &got[0] == &first[0])
	}
	if got := marshal(&feedv1.Post{Id: "c"}); string(got) != `{"id":"c"}` {
		t.Errorf("a post: %s", got)
	}
}

func TestOutliersEjectAndForgive(t *testing.T) {
	o := newOutliers()
	now := time.Now()
	lost := status.Error(codes.Canceled, "lost to a hedge")
	for i := range ejectAfter - 1 {
		o.record("a", lost, now)
		if o.ejected("a", now) {
			t.Fatalf("ejected after %d failures, want %d", i+1, ejectAfter)
		}
	}
	o.record("a", lost, now)
	if !o.ejected("a", now) || o.ejected("a", now.Add(ejectBase)) {
		t.Fatalf("want ejected for %v after %d failures", ejectBase, ejectAfter)
	}
	if o.ejected("b", now) {
		t.Fatal("another replica ejected")
	}
	// Still failing after the ejection: ejected again, for longer, up to
	// ejectMax.
	at := now.Add(ejectBase)
	for _, want := range []time.Duration{2 * ejectBase, ejectMax, ejectMax} {
		for range ejectAfter {
			o.record("a", status.Error(codes.Unavailable, "refused"), at)
		}
		if !o.ejected("a", at.Add(want-time.Millisecond)) || o.ejected("a", at.Add(want)) {
			t.Fatalf("want a second ejection of %v", want)
		}
		at = at.Add(want)
	}
	// One answer, even an error answer, clears the record.
	o.record("a", status.Error(codes.NotFound, "no such post"), at)
	for range ejectAfter - 1 {
		o.record("a", lost, at)
	}
	if o.ejected("a", at) {
		t.Fatal("an answered call did not clear the failures")
	}
	o.record("a", nil, at)
	if len(o.by) != 0 {
		t.Fatalf("records left after successes: %v", o.by)
	}
}

// formOf builds a multipart reader over parts given as name=value pairs
// (a "photo" part gets a file name).
func formOf(t *testing.T, parts ...[2]string) *multipart.Reader {
	t.Helper()
	var b strings.Builder
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		var w io.Writer
		var err error
		if p[0] == "photo" {
			w, err = mw.CreateFormFile("photo", "a.png")
		} else {
			w, err = mw.CreateFormField(p[0])
		}
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(w, p[1])
	}
	_ = mw.Close()
	return multipart.NewReader(strings.NewReader(b.String()), mw.Boundary())
}

// TestFormKey: the idempotency_key field is read with the form, before the
// photo when the photo is streamed on, anywhere when it is held.
func TestFormKey(t *testing.T) {
	key := strings.Repeat("k", maxKeyBytes)
	for _, c := range []struct {
		name   string
		parts  [][2]string
		key    string
		status int // 0: accepted
	}{
		{"key, text, photo", [][2]string{{keyField, key}, {"post", "x"}, {"photo", "png"}}, key, 0},
		{"text, key, photo", [][2]string{{"post", "x"}, {keyField, "abc"}, {"photo", "png"}}, "abc", 0},
		{"photo held, text, key", [][2]string{{"photo", "png"}, {"post", "x"}, {keyField, "abc"}}, "abc", 0},
		{"text only, key last", [][2]string{{"post", "x"}, {keyField, "abc"}}, "abc", 0},
		{"no key", [][2]string{{"post", "x"}}, "", 0},
		{"key after a streamed photo", [][2]string{{"post", "x"}, {"photo", "png"}, {keyField, "abc"}}, "", http.StatusBadRequest},
		{"two keys", [][2]string{{keyField, "a"}, {keyField, "b"}, {"post", "x"}}, "", http.StatusBadRequest},
		{"key too long", [][2]string{{keyField, key + "k"}, {"post", "x"}}, "", http.StatusBadRequest},
		{"empty key", [][2]string{{keyField, ""}, {"post", "x"}}, "", http.StatusBadRequest},
		{"key with a space", [][2]string{{keyField, "a b"}, {"post", "x"}}, "", http.StatusBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			form, err := readUploadForm(formOf(t, c.parts...), 1<<20)
			if err == nil && form.photo != nil {
				// The photo's end is where the rest of the form is read.
				_, err = io.ReadAll(form.photo.body)
			}
			var ue *uploadError
			switch {
			case c.status == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case c.status != 0 && (!errors.As(err, &ue) || ue.code != c.status):
				t.Fatalf("error %v, want status %d", err, c.status)
			case c.status == 0 && form.key != c.key:
				t.Fatalf("key %q, want %q", form.key, c.key)
			}
		})
	}
}

// TestUploadKeyScope: an API client's Idempotency-Key is scoped to its
// address; the form's token is used as it is; the header wins.
func TestUploadKeyScope(t *testing.T) {
	req := func(header string) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "https://extagram.test/upload.php", nil)
		r.RemoteAddr = "192.0.2.7:5555"
		if header != "" {
			r.Header.Set("Idempotency-Key", header)
		}
		return r
	}
	for _, c := range []struct {
		header, form, want string
		bad                bool
	}{
		{"", "", "", false},
		{"", "tok", "form/tok", false},
		{`"8e03978e-40d5"`, "", "header/192.0.2.7/8e03978e-40d5", false},
		{"bare-token", "tok", "header/192.0.2.7/bare-token", false},
		{`"has"quote"`, "", "", true},
		{strings.Repeat("k", maxKeyBytes+1), "", "", true},
	} {
		got, err := uploadKey(req(c.header), c.form)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("header %q, form %q: %q, %v; want %q (error %v)", c.header, c.form, got, err, c.want, c.bad)
		}
	}
}

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

func TestLimitRanges(t *testing.T) {
	many := make([]string, 300)
	for i := range many {
		many[i] = fmt.Sprintf("%d-%d", 2*i, 2*i)
	}
	for _, c := range []struct {
		name, header string
		max          int
		keep         bool       // the header stays
		single       *byteRange // the one range returned
	}{
		{"none", "", 8, false, nil},
		{"one", "bytes=100-199", 8, true, &byteRange{100, 100}},
		{"open end", "bytes=900-", 8, true, &byteRange{900, 100}},
		{"suffix", "bytes=-10", 8, true, &byteRange{990, 10}},
		{"end past the size", "bytes=990-5000", 8, true, &byteRange{990, 10}},
		{"two in order", "bytes=0-9,20-29", 8, true, nil},
		{"eight", "bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14", 8, true, nil},
		{"nine", "bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16", 8, false, nil},
		{"three hundred", "bytes=" + strings.Join(many, ","), 8, false, nil},
		{"overlapping", "bytes=0-99,50-149", 8, false, nil},
		{"out of order", "bytes=500-599,0-99", 8, false, nil},
		{"the same range twice", "bytes=0-99,0-99", 8, false, nil},
		{"two when one is allowed", "bytes=0-9,20-29", 1, false, nil},
		{"malformed, left for ServeContent", "bytes=abc", 8, true, nil},
		{"past the end, left for ServeContent", "bytes=5000-", 8, true, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "/storage/x", nil)
			if c.header != "" {
				r.Header.Set("Range", c.header)
			}
			got := limitRanges(r, 1000, c.max)
			if kept := r.Header.Get("Range") != ""; kept != (c.keep && c.header != "") {
				t.Errorf("Range kept: %v, want %v", kept, c.keep)
			}
			if (got == nil) != (c.single == nil) || got != nil && *got != *c.single {
				t.Errorf("single range %v, want %v", got, c.single)
			}
		})
	}
}
