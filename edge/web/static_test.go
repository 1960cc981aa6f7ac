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

// TestAssets: each asset under its plain and its fingerprinted name, with
// its headers, revalidation and HEAD; the page's references; the SVGs.
func TestAssets(t *testing.T) {
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
		rec := serve(http.MethodGet, path, nil)
		h := rec.Header()
		etag := h.Get("ETag")
		etags[etag] = true
		if rec.Code != http.StatusOK || h.Get("Content-Type") != ctype || h.Get("Cache-Control") != "public, max-age=3600" ||
			h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Content-Length") == "" || rec.Body.Len() == 0 {
			t.Errorf("GET %s: %d %v with %d bytes, want 200 %s, cached for an hour, nosniff", path, rec.Code, h, rec.Body.Len(), ctype)
		}
		if !regexp.MustCompile(`^"[A-Za-z0-9_-]{22}"$`).MatchString(etag) {
			t.Errorf("%s: ETag %q is not a strong quoted hash", path, etag)
		}
		// Revalidation with the ETag: 304, no body; a stale one gets it all.
		if rec := serve(http.MethodGet, path, http.Header{"If-None-Match": {etag}}); rec.Code != http.StatusNotModified || rec.Body.Len() != 0 || rec.Header().Get("ETag") != etag {
			t.Errorf("%s If-None-Match: %d with %d bytes, ETag %q; want 304, empty, the ETag", path, rec.Code, rec.Body.Len(), rec.Header().Get("ETag"))
		}
		if rec := serve(http.MethodGet, path, http.Header{"If-None-Match": {`"stale"`}}); rec.Code != http.StatusOK {
			t.Errorf("%s stale If-None-Match: %d, want 200", path, rec.Code)
		}
		head := serve(http.MethodHead, path, nil)
		if head.Code != http.StatusOK || head.Body.Len() != 0 {
			t.Errorf("HEAD %s: %d with %d body bytes", path, head.Code, head.Body.Len())
		}
		for _, k := range []string{"Content-Type", "ETag", "Content-Length", "Cache-Control"} {
			if head.Header().Get(k) != h.Get(k) {
				t.Errorf("HEAD %s %s %q, GET has %q", path, k, head.Header().Get(k), h.Get(k))
			}
		}
		// The fingerprinted name: the same asset, cached for good.
		name := strings.TrimPrefix(path, "/static/")
		url := AssetURL(name)
		if !regexp.MustCompile(`^/static/[a-z]+\.[0-9a-f]{12}\.(css|js|svg)$`).MatchString(url) {
			t.Fatalf("AssetURL(%q) = %q", name, url)
		}
		fp := serve(http.MethodGet, url, nil)
		if fp.Code != http.StatusOK || fp.Body.String() != rec.Body.String() || fp.Header().Get("ETag") != etag ||
			fp.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("%s: %d, Cache-Control %q; want %s's bytes, cached for good", url, fp.Code, fp.Header().Get("Cache-Control"), path)
		}
	}
	if len(etags) != len(wantAssets) {
		t.Errorf("ETags are not distinct: %v", etags)
	}

	// Every /static/ URL the page refers to is served.
	refs := regexp.MustCompile(`(?:src|href)="(/static/[^"]*)"`).FindAllStringSubmatch(render(t, sampleFeeds()["posts"]), -1)
	if len(refs) < 4 {
		t.Errorf("only %d /static/ references in the page", len(refs))
	}
	for _, r := range refs {
		if rec := serve(http.MethodGet, r[1], nil); rec.Code != http.StatusOK {
			t.Errorf("page refers to %s, which answers %d", r[1], rec.Code)
		}
	}

	// The SVGs are images, never documents with code in them.
	for _, name := range []string{"preview.svg", "favicon.svg"} {
		s := strings.ToLower(string(assets()[name].body))
		for _, bad := range []string{"<script", "javascript:", "<foreignobject", "href="} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
		if regexp.MustCompile(`\son[a-z]+\s*=`).MatchString(s) {
			t.Errorf("%s has an event handler attribute", name)
		}
	}
	for _, want := range []string{`width="300"`, `height="300"`, `fill="#cecece"`} {
		if !strings.Contains(string(assets()["preview.svg"].body), want) {
			t.Errorf("preview.svg lacks %s", want)
		}
	}
	if !strings.Contains(string(assets()["style.css"].body), "unicode-bidi: isolate") {
		t.Error("style.css does not isolate post text")
	}
}

// TestStaticRequests: what is not an asset is not found (nor leaks the
// source), other methods are refused, ranges served, and style.css comes in
// brotli or gzip as the client accepts them, each with its own ETag, Vary:
// Accept-Encoding, and the same bytes once decoded.
func TestStaticRequests(t *testing.T) {
	t.Parallel()
	for _, target := range strings.Fields(`/static/ /static/nope.css /static/STYLE.CSS /static/style.css/ /static/../web.go
		/static/%2e%2e/x /static/%2e%2e/web.go /static/..%2fweb.go /static/./style.css /static//style.css
		/static/static/style.css /style.css /static /storage/style.css /static/style.000000000000.css`) {
		if rec := serve(http.MethodGet, target, nil); rec.Code != http.StatusNotFound || strings.Contains(rec.Body.String(), "package web") {
			t.Errorf("GET %s: %d, want 404 (and no source)", target, rec.Code)
		}
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		if rec := serve(m, "/static/style.css", nil); rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d, Allow %q; want 405, GET, HEAD", m, rec.Code, rec.Header().Get("Allow"))
		}
	}
	if rec := serve(http.MethodGet, "/static/style.css", http.Header{"Range": {"bytes=0-9"}}); rec.Code != http.StatusPartialContent || rec.Body.Len() != 10 {
		t.Errorf("range: %d with %d bytes", rec.Code, rec.Body.Len())
	}

	css := assets()["style.css"].body
	for accept, want := range map[string]string{
		"": "", "gzip": "gzip", "gzip, deflate, br": "br", "br;q=0, gzip": "gzip", "BR": "br", "*": "br",
		"gzip;q=0, br;q=0": "", "identity": "", "deflate": "",
	} {
		h := http.Header{}
		if accept != "" {
			h.Set("Accept-Encoding", accept)
		}
		rec := serve(http.MethodGet, "/static/style.css", h)
		if got := rec.Header().Get("Content-Encoding"); got != want || rec.Header().Get("Vary") != "Accept-Encoding" {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, Vary %q; want %q, Accept-Encoding", accept, got, rec.Header().Get("Vary"), want)
			continue
		}
		var body []byte
		var err error
		switch want {
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
			t.Errorf("Accept-Encoding %q: decoded %d bytes (%v), want the %d of style.css", accept, len(body), err, len(css))
		}
		if want != "" && (rec.Body.Len() >= len(css) || !strings.HasSuffix(rec.Header().Get("ETag"), `-`+map[string]string{"gzip": "gz", "br": "br"}[want]+`"`)) {
			t.Errorf("Accept-Encoding %q: %d bytes, ETag %s", accept, rec.Body.Len(), rec.Header().Get("ETag"))
		}
	}
	// Revalidating a compressed copy by its ETag.
	br := serve(http.MethodGet, "/static/style.css", http.Header{"Accept-Encoding": {"br"}})
	if rec := serve(http.MethodGet, "/static/style.css", http.Header{"Accept-Encoding": {"br"}, "If-None-Match": {br.Header().Get("ETag")}}); rec.Code != http.StatusNotModified {
		t.Errorf("If-None-Match of the brotli copy: %d, want 304", rec.Code)
	}
}
