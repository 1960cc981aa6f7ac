package edge_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/extagram/extagram/internal/testmesh"
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
var tinyPNG = func() []byte {
	img := image.NewNRGBA(image.Rect(0, 0, 2, 2))
	img.Set(1, 1, color.NRGBA{200, 10, 10, 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err)
	}
	return b.Bytes()
}()

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
	f.Add(ct, fuzzForm(textPart))
	f.Add(ct, fuzzForm(textPart, photoPart+string(tinyPNG)))
	f.Add(ct, fuzzForm(photoPart+string(tinyPNG), textPart))
	f.Add(ct, fuzzForm(textPart, photoPart+string(tinyPNG[:40])))
	f.Add(ct, fuzzForm(textPart, photoPart))
	f.Add(ct, fuzzForm(textPart, "Content-Disposition: form-data; name=\"photo\"; filename=\"../../x.gif\"\r\n\r\nGIF89a<html><script>alert(1)</script>"))
	f.Add(ct, fuzzForm(textPart, textPart))
	f.Add(ct, fuzzForm("Content-Disposition: form-data; name=\"post\"\r\n\r\n \t "))
	f.Add(ct, fuzzForm(textPart, "Content-Disposition: form-data; name*=UTF-8''ph%00oto\r\n\r\nx"))
	f.Add(ct, fuzzForm(textPart, "Content-Disposition: form-data; name=\"photo\"; filename*=UTF-8''a%00.png\r\n\r\n"+string(tinyPNG)))
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
	if rec := postForm(h, ct, bytes.NewReader(fuzzForm(textPart, photoPart+string(tinyPNG)))); rec.Code != http.StatusSeeOther {
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

// TestUploadStopsReadingAtLimit sends endless bodies straight into the
// handler and counts what it reads: never more than the body limit (the
// photo limit plus the form's allowance), whichever field never ends.
func TestUploadStopsReadingAtLimit(t *testing.T) {
	h := inProcessMesh(t).Handler
	const formAllowance = 64 << 10 // edge.formOverhead
	for name, prefix := range map[string]string{
		"photo":         "--b\r\n" + textPart + "\r\n--b\r\n" + photoPart + string(tinyPNG),
		"photo first":   "--b\r\n" + photoPart + string(tinyPNG),
		"text":          "--b\r\nContent-Disposition: form-data; name=\"post\"\r\n\r\n",
		"unknown field": "--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\n",
		"part headers":  "--b\r\nContent-Disposition: form-data; name=\"post\"\r\nX-Long: ",
		"preamble":      "",
	} {
		t.Run(name, func(t *testing.T) {
			body := &countingBody{prefix: []byte(prefix)}
			rec := postForm(h, "multipart/form-data; boundary=b", body)
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
}
