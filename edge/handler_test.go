package edge_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
)

// fuzzLimit is the photo size limit of the fuzzed edge: small, so that
// over-limit bodies are within the fuzzer's reach.
const fuzzLimit = 16 << 10

// inProcessMesh starts a mesh (over real TCP, on the embedded store) whose
// edge handler the test calls directly, without TLS or a socket in
// between: the fuzzer gets thousands of requests a second.
func inProcessMesh(t testing.TB) *testmesh.Mesh {
	t.Helper()
	return testmesh.Start(t, testmesh.Options{Store: storetest.Embedded(t), MaxUploadBytes: fuzzLimit, FeedReplicas: 1})
}

func postForm(h http.Handler, contentType string, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "https://extagram.test/upload.php", body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// tinyPNG is a 2x2 PNG.
func tinyPNG(t testing.TB) string { return string(testutil.PNG(t, 2, 2)) }

const fuzzBoundary = "fuzzboundary"

func fuzzForm(parts ...string) []byte {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString("--" + fuzzBoundary + "\r\n" + p + "\r\n")
	}
	b.WriteString("--" + fuzzBoundary + "--\r\n")
	return []byte(b.String())
}

const (
	textPart  = "Content-Disposition: form-data; name=\"post\"\r\n\r\nhello"
	photoPart = "Content-Disposition: form-data; name=\"photo\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"
)

// FuzzUploadForm sends fuzzed multipart bodies through the edge's real
// handler (CSRF check, body limit, form parsing, the upload stream) to the
// real upload service. Whatever the body: no panic, no 5xx but 503, and
// when the answer is not 303 nothing is stored, in the database or on disk.
func FuzzUploadForm(f *testing.F) {
	ct := "multipart/form-data; boundary=" + fuzzBoundary
	png := tinyPNG(f)
	f.Add(ct, fuzzForm(textPart))
	f.Add(ct, fuzzForm(textPart, photoPart+png))
	f.Add(ct, fuzzForm(photoPart+png, textPart))
	f.Add(ct, fuzzForm(textPart, photoPart+png[:40]))
	f.Add(ct, fuzzForm(textPart, photoPart))
	f.Add(ct, fuzzForm(textPart, "Content-Disposition: form-data; name=\"photo\"; filename=\"../../x.gif\"\r\n\r\nGIF89a<html><script>alert(1)</script>"))
	f.Add(ct, fuzzForm(textPart, textPart))
	f.Add(ct, fuzzForm("Content-Disposition: form-data; name=\"post\"\r\n\r\n \t "))
	f.Add(ct, fuzzForm(textPart, "Content-Disposition: form-data; name*=UTF-8''ph%00oto\r\n\r\nx"))
	f.Add(ct, fuzzForm(textPart, "Content-Disposition: form-data; name=\"photo\"; filename*=UTF-8''a%00.png\r\n\r\n"+png))
	f.Add(ct, fuzzForm(textPart, photoPart+strings.Repeat("\xff", fuzzLimit+1)))
	f.Add(ct, fuzzForm("Content-Disposition: form-data; name=\"post\"\r\n\r\n"+strings.Repeat("é", 2201)))
	f.Add(ct, fuzzForm(textPart, "\r\n\r\nno headers"))
	f.Add(ct, []byte("--"+fuzzBoundary+"\r\n"+textPart))
	f.Add("multipart/form-data", fuzzForm(textPart))
	f.Add("application/x-www-form-urlencoded", []byte("post=hello"))
	f.Add("multipart/form-data; boundary=\"\"", []byte("----\r\n"))

	m := inProcessMesh(f)
	h := m.Handler
	// The upload path works before fuzzing starts.
	if rec := postForm(h, ct, bytes.NewReader(fuzzForm(textPart, photoPart+png))); rec.Code != http.StatusSeeOther {
		f.Fatalf("a valid upload: %d\n%s", rec.Code, rec.Body)
	}
	state := func(t *testing.T) (int64, int) {
		ps, err := m.Store.ListPosts(context.Background(), store.ListOptions{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(m.UploadsDir)
		if err != nil {
			t.Fatal(err)
		}
		return ps[0].Key, len(entries)
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		keyBefore, filesBefore := state(t)
		rec := postForm(h, contentType, bytes.NewReader(body))
		keyAfter, filesAfter := state(t)
		code := rec.Code
		if code >= 500 && code != http.StatusServiceUnavailable {
			t.Fatalf("answered %d:\n%.2000s", code, rec.Body)
		}
		if code == http.StatusSeeOther {
			if keyAfter == keyBefore {
				t.Fatal("303 but no post stored")
			}
			return
		}
		if keyAfter != keyBefore || filesAfter != filesBefore {
			t.Fatalf("answered %d but stored something (posts %d -> %d, files %d -> %d)", code, keyBefore, keyAfter, filesBefore, filesAfter)
		}
		if code != http.StatusForbidden && !strings.Contains(rec.Body.String(), `role="alert"`) {
			t.Fatalf("answered %d without a message:\n%.2000s", code, rec.Body)
		}
	})
}

// countingBody is an endless request body that counts what was read of it.
type countingBody struct {
	prefix []byte
	n      atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	off := c.n.Load()
	k := 0
	if off < int64(len(c.prefix)) {
		k = copy(p, c.prefix[off:])
	}
	for i := k; i < len(p); i++ {
		p[i] = 0xA5
	}
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// TestHandler: requests straight into the edge's handler of one mesh.
func TestHandler(t *testing.T) {
	m := inProcessMesh(t)
	// HEAD is answered as the GET of the same URL, without a body, as the
	// Allow header of the API's 405 promises.
	t.Run("API HEAD", func(t *testing.T) {
		p, err := m.Store.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: "head"})
		if err != nil {
			t.Fatal(err)
		}
		serve := func(method, path string) *httptest.ResponseRecorder {
			rec := httptest.NewRecorder()
			m.Handler.ServeHTTP(rec, httptest.NewRequest(method, "https://extagram.test"+path, nil))
			return rec
		}
		for _, path := range []string{"/api/v1/posts", "/api/v1/posts/" + p.ID.String()} {
			get, head := serve(http.MethodGet, path), serve(http.MethodHead, path)
			if get.Code != http.StatusOK || head.Code != http.StatusOK {
				t.Fatalf("%s: GET %d, HEAD %d; want 200 for both", path, get.Code, head.Code)
			}
			if head.Header().Get("Content-Type") != get.Header().Get("Content-Type") || head.Body.Len() != 0 {
				t.Errorf("%s: HEAD Content-Type %q with %d body bytes, GET %q", path, head.Header().Get("Content-Type"), head.Body.Len(), get.Header().Get("Content-Type"))
			}
		}
		if get := serve(http.MethodGet, "/api/v1/posts/"+p.ID.String()); !strings.Contains(get.Body.String(), `"head"`) {
			t.Errorf("GET of the post: %s", get.Body)
		}
		if rec := serve(http.MethodHead, "/api/v1/posts/"+contract.NewID().String()); rec.Code != http.StatusNotFound {
			t.Errorf("HEAD of an unknown post: %d, want 404", rec.Code)
		}
		rec := serve(http.MethodPost, "/api/v1/posts")
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("POST: %d, Allow %q; want 405 with GET, HEAD", rec.Code, rec.Header().Get("Allow"))
		}
	})
	// A request whose client went away is counted as 499, not as a 5xx of
	// the site.
	t.Run("client gone is 499", func(t *testing.T) {
		p, err := m.Store.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: "gone"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		req := httptest.NewRequest(http.MethodGet, "https://extagram.test/api/v1/posts/"+p.ID.String(), nil).WithContext(ctx)
		m.Handler.ServeHTTP(httptest.NewRecorder(), req)

		const requests = "extagram_http_requests_total"
		if n := testutil.Metric(t, m.Metrics["edge"], requests, `code="499"`, `handler="api"`, `method="GET"`); n != 1 {
			t.Errorf("%v API GETs counted as 499, want 1", n)
		}
		// (/readyz may have answered 503 while the mesh started.)
		if n := testutil.Metric(t, m.Metrics["edge"], requests, `code="5`) - testutil.Metric(t, m.Metrics["edge"], requests, `code="5`, `handler="health"`); n != 0 {
			t.Errorf("%v 5xx counted outside /readyz", n)
		}
	})
	// Endless bodies: the handler never reads more than the body limit (the
	// photo limit plus the form's allowance), whichever field never ends.
	t.Run("upload stops reading at the limit", func(t *testing.T) {
		const formAllowance = 64 << 10 // edge.formOverhead
		for name, prefix := range map[string]string{
			"photo":         "--b\r\n" + textPart + "\r\n--b\r\n" + photoPart + tinyPNG(t),
			"photo first":   "--b\r\n" + photoPart + tinyPNG(t),
			"text":          "--b\r\nContent-Disposition: form-data; name=\"post\"\r\n\r\n",
			"unknown field": "--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\n",
			"part headers":  "--b\r\nContent-Disposition: form-data; name=\"post\"\r\nX-Long: ",
			"preamble":      "",
		} {
			t.Run(name, func(t *testing.T) {
				body := &countingBody{prefix: []byte(prefix)}
				rec := postForm(m.Handler, "multipart/form-data; boundary=b", body)
				if rec.Code != http.StatusRequestEntityTooLarge && rec.Code != http.StatusBadRequest {
					t.Fatalf("status %d, want 413 or 400:\n%.1000s", rec.Code, rec.Body)
				}
				read := body.n.Load()
				t.Logf("%s: read %d bytes of an endless body, answered %d", name, read, rec.Code)
				// http.MaxBytesReader reads at most one byte past the limit,
				// to tell a body at the limit from one over it.
				if read > fuzzLimit+formAllowance+1 {
					t.Fatalf("read %d bytes; the limit is %d", read, fuzzLimit+formAllowance)
				}
			})
		}
	})
}

// BenchmarkFeedPage serves the newest page of 20 posts through the edge's
// whole handler (middleware, the page cache kept by WatchFeed, the
// response), without TLS or a socket: the edge's own cost per page view.
// The per-view sub-benchmark asks the feed service every time instead, as
// the edge does while its watch is down.
func BenchmarkFeedPage(b *testing.B) {
	for _, c := range []struct {
		name    string
		path    string
		perView bool
		want    string
	}{
		{"watched", "/", false, "post 19,"},
		{"per-view", "/", true, "post 19,"},
		// The JSON API's default page, from the same cache as the page.
		{"api", "/api/v1/posts", false, "post 19,"},
		// A static asset, as a client without Accept-Encoding asks for it.
		{"static", "/static/style.css", false, "{"},
	} {
		b.Run(c.name, func(b *testing.B) {
			st := storetest.Embedded(b)
			for i := range 20 {
				if _, err := st.CreatePost(b.Context(), store.NewPost{ID: contract.NewID(), Text: fmt.Sprintf("post %d, with a line of text as people write them", i)}); err != nil {
					b.Fatal(err)
				}
			}
			m := testmesh.Start(b, testmesh.Options{Store: st, AskFeedPerView: c.perView})
			req := httptest.NewRequest(http.MethodGet, "https://extagram.test"+c.path, nil)
			serve := func() *httptest.ResponseRecorder {
				rec := httptest.NewRecorder()
				m.Handler.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), c.want) {
					b.Fatalf("GET %s: %d", c.path, rec.Code)
				}
				return rec
			}
			// Let the watch deliver the page before measuring.
			for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				serve()
			}
			b.ReportAllocs()
			for b.Loop() {
				serve()
			}
		})
	}
}
