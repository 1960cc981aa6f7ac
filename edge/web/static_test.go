package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
)

func serve(method, target string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	Static().ServeHTTP(rec, req)
	return rec
}

var wantAssets = map[string]string{
	"/static/style.css":   "text/css; charset=utf-8",
	"/static/app.js":      "text/javascript; charset=utf-8",
	"/static/preview.svg": "image/svg+xml",
	"/static/favicon.svg": "image/svg+xml",
}

func TestStaticAssets(t *testing.T) {
	t.Parallel()
	distinct := map[*asset]bool{}
	for _, a := range assets() {
		distinct[a] = true
	}
	if len(distinct) != len(wantAssets) {
		t.Errorf("%d embedded assets, want %d", len(distinct), len(wantAssets))
	}
	etags := map[string]bool{}
	for path, ctype := range wantAssets {
		t.Run(path, func(t *testing.T) {
			rec := serve(http.MethodGet, path, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s: %d", path, rec.Code)
			}
			h := rec.Header()
			if got := h.Get("Content-Type"); got != ctype {
				t.Errorf("Content-Type %q, want %q", got, ctype)
			}
			if got := h.Get("Cache-Control"); got != "public, max-age=3600" {
				t.Errorf("Cache-Control %q", got)
			}
			if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", got)
			}
			etag := h.Get("ETag")
			if !regexp.MustCompile(`^"[A-Za-z0-9_-]{22}"$`).MatchString(etag) {
				t.Errorf("ETag %q is not a strong quoted hash", etag)
			}
			etags[etag] = true
			if rec.Body.Len() == 0 {
				t.Error("empty body")
			}
			if got := h.Get("Content-Length"); got == "" {
				t.Error("no Content-Length")
			}

			// Revalidation with the ETag: 304, no body.
			rec2 := serve(http.MethodGet, path, http.Header{"If-None-Match": {etag}})
			if rec2.Code != http.StatusNotModified {
				t.Errorf("If-None-Match: %d, want 304", rec2.Code)
			}
			if rec2.Body.Len() != 0 {
				t.Error("304 with a body")
			}
			if rec2.Header().Get("ETag") != etag {
				t.Error("304 without the ETag")
			}
			// A stale ETag gets the full asset.
			if rec3 := serve(http.MethodGet, path, http.Header{"If-None-Match": {`"stale"`}}); rec3.Code != http.StatusOK {
				t.Errorf("stale If-None-Match: %d, want 200", rec3.Code)
			}

			// HEAD: the same headers, no body.
			head := serve(http.MethodHead, path, nil)
			if head.Code != http.StatusOK || head.Body.Len() != 0 {
				t.Errorf("HEAD: %d with %d body bytes", head.Code, head.Body.Len())
			}
			for _, k := range []string{"Content-Type", "ETag", "Content-Length", "Cache-Control"} {
				if head.Header().Get(k) != h.Get(k) {
					t.Errorf("HEAD %s %q, GET has %q", k, head.Header().Get(k), h.Get(k))
				}
			}
		})
	}
	if len(etags) != len(wantAssets) {
		t.Errorf("ETags are not distinct: %v", etags)
	}
}

func TestStaticNotFound(t *testing.T) {
	t.Parallel()
	for _, target := range []string{
		"/static/",
		"/static/nope.css",
		"/static/STYLE.CSS",
		"/static/style.css/",
		"/static/../web.go",
		"/static/%2e%2e/x",
		"/static/%2e%2e/web.go",
		"/static/..%2fweb.go",
		"/static/./style.css",
		"/static//style.css",
		"/static/static/style.css",
		"/style.css",
		"/static",
		"/storage/style.css",
	} {
		rec := serve(http.MethodGet, target, nil)
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", target, rec.Code)
		}
		if strings.Contains(rec.Body.String(), "package web") {
			t.Errorf("GET %s leaked source", target)
		}
	}
}

func TestStaticMethods(t *testing.T) {
	t.Parallel()
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		rec := serve(m, "/static/style.css", nil)
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d, want 405", m, rec.Code)
		}
		if got := rec.Header().Get("Allow"); got != "GET, HEAD" {
			t.Errorf("%s: Allow %q", m, got)
		}
	}
}

func TestStaticRange(t *testing.T) {
	t.Parallel()
	rec := serve(http.MethodGet, "/static/style.css", http.Header{"Range": {"bytes=0-9"}})
	if rec.Code != http.StatusPartialContent || rec.Body.Len() != 10 {
		t.Errorf("range: %d with %d bytes", rec.Code, rec.Body.Len())
	}
}

// Every /static/ URL the page refers to must be served.
func TestPageAssetsExist(t *testing.T) {
	t.Parallel()
	page := render(t, sampleFeeds()["posts"])
	refs := regexp.MustCompile(`(?:src|href)="(/static/[^"]*)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 4 {
		t.Fatalf("only %d /static/ references in the page", len(refs))
	}
	for _, r := range refs {
		if rec := serve(http.MethodGet, r[1], nil); rec.Code != http.StatusOK {
			t.Errorf("page refers to %s, which answers %d", r[1], rec.Code)
		}
	}
}

// The SVGs are images, never documents with code in them.
func TestSVGsHaveNoScript(t *testing.T) {
	t.Parallel()
	for name, a := range assets() {
		if !strings.HasSuffix(name, ".svg") {
			continue
		}
		s := strings.ToLower(string(a.body))
		for _, bad := range []string{"<script", "javascript:", "<foreignobject", "href="} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
		if regexp.MustCompile(`\son[a-z]+\s*=`).MatchString(s) {
			t.Errorf("%s has an event handler attribute", name)
		}
	}
	preview := string(assets()["preview.svg"].body)
	for _, want := range []string{`width="300"`, `height="300"`, `fill="#cecece"`} {
		if !strings.Contains(preview, want) {
			t.Errorf("preview.svg lacks %s", want)
		}
	}
}

// TestStaticFingerprints: the page links assets by fingerprinted names,
// served like the plain ones but cached for good.
func TestStaticFingerprints(t *testing.T) {
	t.Parallel()
	for plain := range wantAssets {
		name := strings.TrimPrefix(plain, "/static/")
		url := AssetURL(name)
		if !regexp.MustCompile(`^/static/[a-z]+\.[0-9a-f]{12}\.(css|js|svg)$`).MatchString(url) {
			t.Fatalf("AssetURL(%q) = %q", name, url)
		}
		a, b := serve(http.MethodGet, plain, nil), serve(http.MethodGet, url, nil)
		if b.Code != http.StatusOK || a.Body.String() != b.Body.String() || a.Header().Get("ETag") != b.Header().Get("ETag") {
			t.Errorf("%s and %s differ: %d", plain, url, b.Code)
		}
		if got := b.Header().Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control %q", url, got)
		}
	}
	// A fingerprint that is not the current one is not served.
	if rec := serve(http.MethodGet, "/static/style.000000000000.css", nil); rec.Code != http.StatusNotFound {
		t.Errorf("a stale fingerprint: %d, want 404", rec.Code)
	}
}

// TestStaticEncodings: brotli or gzip as the client accepts them, each with
// its own ETag, Vary: Accept-Encoding, and the same bytes once decoded.
func TestStaticEncodings(t *testing.T) {
	t.Parallel()
	css := assets()["style.css"].body
	for _, c := range []struct{ accept, want string }{
		{"", ""},
		{"gzip", "gzip"},
		{"gzip, deflate, br", "br"},
		{"br;q=0, gzip", "gzip"},
		{"BR", "br"},
		{"*", "br"},
		{"gzip;q=0, br;q=0", ""},
		{"identity", ""},
		{"deflate", ""},
	} {
		h := http.Header{}
		if c.accept != "" {
			h.Set("Accept-Encoding", c.accept)
		}
		rec := serve(http.MethodGet, "/static/style.css", h)
		if got := rec.Header().Get("Content-Encoding"); got != c.want {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, want %q", c.accept, got, c.want)
			continue
		}
		if rec.Header().Get("Vary") != "Accept-Encoding" {
			t.Errorf("Accept-Encoding %q: Vary %q", c.accept, rec.Header().Get("Vary"))
		}
		var body []byte
		var err error
		switch c.want {
		case "gzip":
			var zr *gzip.Reader
			if zr, err = gzip.NewReader(rec.Body); err == nil {
				body, err = io.ReadAll(zr)
			}
		case "br":
			body, err = io.ReadAll(brotli.NewReader(rec.Body))
		default:
			body = rec.Body.Bytes()
		}
		if err != nil || !bytes.Equal(body, css) {
			t.Errorf("Accept-Encoding %q: decoded %d bytes (%v), want the %d of style.css", c.accept, len(body), err, len(css))
		}
		if c.want != "" && (rec.Body.Len() >= len(css) || !strings.HasSuffix(rec.Header().Get("ETag"), `-`+map[string]string{"gzip": "gz", "br": "br"}[c.want]+`"`)) {
			t.Errorf("Accept-Encoding %q: %d bytes, ETag %s", c.accept, rec.Body.Len(), rec.Header().Get("ETag"))
		}
	}
	// Revalidating a compressed copy by its ETag.
	br := serve(http.MethodGet, "/static/style.css", http.Header{"Accept-Encoding": {"br"}})
	if rec := serve(http.MethodGet, "/static/style.css", http.Header{"Accept-Encoding": {"br"}, "If-None-Match": {br.Header().Get("ETag")}}); rec.Code != http.StatusNotModified {
		t.Errorf("If-None-Match of the brotli copy: %d, want 304", rec.Code)
	}
}
