package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"math/bits"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/andybalholm/brotli"
)

//go:embed static
var staticFS embed.FS

// asset is one embedded file, in every encoding a client may ask for.
type asset struct {
	name        string // e.g. "style.css"
	fingerprint string // e.g. "style.1a2b3c4d5e6f.css": its URL never changes content
	contentType []string
	body        []byte // as embedded (identity.body)
	identity    representation
	gzip, br    *representation // nil when compressing does not pay
}

// representation is an asset's bytes in one encoding, with the header
// values that go with them, made once.
type representation struct {
	body     []byte
	encoding []string // Content-Encoding; nil for identity
	etag     []string
	length   []string
}

func newRepresentation(body []byte, etag, encoding string) representation {
	r := representation{body: body, etag: []string{etag}, length: []string{strconv.Itoa(len(body))}}
	if encoding != "" {
		r.encoding = []string{encoding}
	}
	return r
}

// contentTypes is explicit rather than from mime.TypeByExtension, whose answer
// depends on the host's mime tables.
var contentTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
}

// assets maps a name under /static/ to its asset, by plain name (the
// original site's URLs, such as /static/style.css) and by fingerprinted
// name (what the page links to). Requests are answered only for these
// exact names, so no request path ever reaches a file system. They are
// loaded and compressed on first use, so that the roles that serve no
// page (every one but the edge) never pay for it.
var assets = sync.OnceValue(loadAssets)

func loadAssets() map[string]*asset {
	m := make(map[string]*asset)
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			panic("web: static asset with no known content type: " + p)
		}
		body, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		sum := sha256.Sum256(body)
		tag := base64.RawURLEncoding.EncodeToString(sum[:16])
		ext := path.Ext(name)
		a := &asset{
			name:        name,
			fingerprint: strings.TrimSuffix(name, ext) + "." + hex.EncodeToString(sum[:6]) + ext,
			contentType: []string{ct},
			body:        body,
			identity:    newRepresentation(body, `"`+tag+`"`, ""),
		}
		// Compressed once here, at start-up, with the best settings: every
		// request then only picks one.
		if gz := gzipBytes(body); len(gz) < len(body) {
			r := newRepresentation(gz, `"`+tag+`-gz"`, "gzip")
			a.gzip = &r
		}
		if br := brotliBytes(body); len(br) < len(body) {
			r := newRepresentation(br, `"`+tag+`-br"`, "br")
			a.br = &r
		}
		m[a.name], m[a.fingerprint] = a, a
		return nil
	})
	if err != nil {
		panic("web: load static assets: " + err.Error())
	}
	return m
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

func brotliBytes(b []byte) []byte {
	var buf bytes.Buffer
	// The window need not be larger than the file: brotli's default one
	// costs 35 MB of memory to compress a 4 KB file.
	w := brotli.NewWriterOptions(&buf, brotli.WriterOptions{Quality: brotli.BestCompression, LGWin: max(10, bits.Len(uint(len(b))))})
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

// AssetURL returns the URL the page links an asset by: its fingerprinted
// name, which can be cached for good.
func AssetURL(name string) string {
	a, ok := assets()[name]
	if !ok || a.name != name {
		panic("web: no static asset " + name)
	}
	return "/static/" + a.fingerprint
}

var (
	immutable    = []string{"public, max-age=31536000, immutable"}
	revalidate   = []string{"public, max-age=3600"}
	nosniff      = []string{"nosniff"}
	varyEncoding = []string{"Accept-Encoding"}
)

// Static serves the embedded assets for requests whose path starts with
// /static/ (it strips the prefix itself): GET and HEAD only, brotli or
// gzip when the client accepts them, strong ETags (one per encoding),
// conditional and range requests through http.ServeContent. Fingerprinted
// names are cached for good; the original site's plain names for an hour.
func Static() http.Handler {
	return http.HandlerFunc(serveStatic)
}

func serveStatic(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["X-Content-Type-Options"] = nosniff
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/static/")
	a, found := assets()[name]
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	rep := &a.identity
	if a.gzip != nil || a.br != nil {
		h["Vary"] = varyEncoding
		if ae := r.Header["Accept-Encoding"]; len(ae) > 0 {
			switch {
			case a.br != nil && accepts(ae, "br"):
				rep = a.br
			case a.gzip != nil && accepts(ae, "gzip"):
				rep = a.gzip
			}
		}
	}
	h["Content-Type"] = a.contentType
	h["Etag"] = rep.etag
	if rep.encoding != nil {
		h["Content-Encoding"] = rep.encoding
	}
	if name == a.fingerprint {
		h["Cache-Control"] = immutable
	} else {
		h["Cache-Control"] = revalidate
	}
	rh := r.Header
	if rh["Range"] != nil || rh["If-None-Match"] != nil || rh["If-Modified-Since"] != nil || rh["If-Match"] != nil || rh["If-Unmodified-Since"] != nil {
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(rep.body))
		return
	}
	// A plain GET or HEAD, nearly all of them: no need for ServeContent's
	// checks.
	h["Content-Length"] = rep.length
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(rep.body)
	}
}

// accepts reports whether an Accept-Encoding header accepts coding: it
// names it (or "*") without q=0.
func accepts(header []string, coding string) bool {
	for _, line := range header {
		for part := range strings.SplitSeq(line, ",") {
			c, params, _ := strings.Cut(part, ";")
			c = strings.TrimSpace(c)
			if !strings.EqualFold(c, coding) && c != "*" {
				continue
			}
			q := 1.0
			for p := range strings.SplitSeq(params, ";") {
				if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "q") {
					if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
						q = f
					}
				}
			}
			if q > 0 {
				return true
			}
		}
	}
	return false
}
