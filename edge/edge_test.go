package edge

import (
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"github.com/extagram/extagram/internal/apierr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
		host    string
		port    int
		reqHost string
		want    string
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
	// Without --public-host: the certificate's first name.
	cert, err := loadOrCreateCert("", "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got := certHost(cert); got != "localhost" {
		t.Errorf("certHost of the self-signed certificate = %q, want localhost", got)
	}
}
