// Package e2e tests the whole mesh over real TCP on 127.0.0.1: the HTTPS
// edge, two feed replicas, upload and blob, against the MySQL store and the
// embedded store.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/internal/uploads"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
)

// uploadLimit is the shared meshes' MaxUploadBytes.
const uploadLimit = 256 << 10

// meshCase is a test that shares a mesh: the cases of one mesh run one
// after another, and each leaves it as it found it but for the posts it
// added.
type meshCase struct {
	name string
	run  func(t *testing.T, m *testmesh.Mesh)
}

func runCases(t *testing.T, m *testmesh.Mesh, cases ...meshCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, m) })
	}
}

// TestMesh runs the cases on one mesh per store: those that depend on the
// store on both, the others once, on the embedded store. The MySQL store
// is reached through a proxy that the outage cases cut.
func TestMesh(t *testing.T) {
	perStore := []meshCase{
		{"photo post", photoPost}, {"pagination", feedPagination}, {"post page", postPage},
		{"gRPC contracts", grpcContracts}, {"storage routes", storageRoutes},
		{"uploads folder unwritable", uploadsFolderUnwritable}, {"concurrent uploads", concurrentUploads},
	}
	// A 64 KiB image cache keeps images of up to 8 KiB; every read of a
	// larger one reaches the blob service.
	opts := testmesh.Options{MaxUploadBytes: uploadLimit, ImageCacheBytes: 64 << 10}
	t.Run("mysql", func(t *testing.T) {
		through, direct, proxy := proxiedMySQL(t)
		opts.Store = through
		m := testmesh.Start(t, opts)
		runCases(t, m, perStore...)
		runCases(t, m, outageCases(direct, proxy)...)
	})
	t.Run("embedded", func(t *testing.T) {
		opts.Store = storetest.Embedded(t)
		m := testmesh.Start(t, opts)
		runCases(t, m, perStore...)
		runCases(t, m, meshCase{"hostile uploads", hostileUploads}, meshCase{"huge bodies", hugeBodyNotRead},
			meshCase{"storage paths", storagePaths}, meshCase{"privacy", privacyMetadata},
			meshCase{"idempotent uploads", uploadIdempotent}, meshCase{"health and reflection", healthAndReflection},
			meshCase{"feed spread over replicas", feedSpreadOverReplicas}, meshCase{"newest page watched", newestPageWatched},
			meshCase{"edge headers and limits", edgeHeadersAndLimits})
	})
}

// send makes a request with headers given as name, value pairs; the path
// is sent exactly as written.
func send(t testing.TB, m *testmesh.Mesh, method, path string, body []byte, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, m.URL+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = path
	for i := 0; i < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := m.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, string(b)
}

func get(t testing.TB, m *testmesh.Mesh, path string, header ...string) (*http.Response, string) {
	t.Helper()
	return send(t, m, http.MethodGet, path, nil, header...)
}

func post(t testing.TB, m *testmesh.Mesh, body []byte, contentType string, header ...string) (*http.Response, string) {
	t.Helper()
	return send(t, m, http.MethodPost, "/upload.php", body, append([]string{"Content-Type", contentType}, header...)...)
}

func uploadPhoto(t testing.TB, m *testmesh.Mesh, text string, f *testutil.File) {
	t.Helper()
	body, ct := testutil.Form(t, [][2]string{{"post", text}}, f)
	resp, page := post(t, m, body, ct)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("upload %q: status %d, Location %q, want 303 to /; body:\n%s", text, resp.StatusCode, resp.Header.Get("Location"), page)
	}
}

// pngFile is a photo sent as a PNG.
func pngFile(name string, data []byte) *testutil.File { return testutil.Photo(name, "image/png", data) }

type apiPost struct {
	ID, Text string
	Image    *struct {
		ID, ContentType, SizeBytes string
		Width, Height              int
	}
}

// newest returns the posts on the API's newest page.
func newest(t testing.TB, m *testmesh.Mesh) []apiPost {
	t.Helper()
	resp, body := get(t, m, "/api/v1/posts")
	var l struct{ Posts []apiPost }
	if err := json.Unmarshal([]byte(body), &l); resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("GET /api/v1/posts: %d %v %s", resp.StatusCode, err, body)
	}
	return l.Posts
}

var postRE = regexp.MustCompile(`(?s)<div class="post">\s*<p dir="auto">(.*?)</p>`)

// pagePosts returns the texts of the posts on a feed page, in order.
func pagePosts(page string) []string {
	var out []string
	for _, m := range postRE.FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}

// olderLink is the link of a feed page to the next, older, page ("" if none).
func olderLink(page string) string {
	i := strings.Index(page, `href="/?page=`)
	if i < 0 {
		return ""
	}
	rest := page[i+len(`href="`):]
	return html.UnescapeString(rest[:strings.IndexByte(rest, '"')])
}

// snapshot is what the database and the uploads folder hold.
type snapshot string

func snap(t testing.TB, m *testmesh.Mesh) snapshot {
	t.Helper()
	return snapshot(strings.Join(append([]string{"posts=" + strconv.Itoa(len(allPosts(t, m.Store)))}, folder(t, m)...), " "))
}

// allPosts lists every post in the store, newest first, a page at a time.
func allPosts(t testing.TB, st store.Store) []store.Post {
	t.Helper()
	var all []store.Post
	var before int64
	for {
		ps, err := st.ListPosts(t.Context(), store.ListOptions{Before: before, Limit: store.MaxListLimit})
		if err != nil {
			t.Fatal(err)
		}
		if all = append(all, ps...); len(ps) < store.MaxListLimit {
			return all
		}
		before = ps[len(ps)-1].Key
	}
}

// folder lists the uploads folder, sorted by name.
func folder(t testing.TB, m *testmesh.Mesh) []string {
	t.Helper()
	entries, err := os.ReadDir(m.UploadsDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func noTempFiles(t *testing.T, m *testmesh.Mesh) {
	t.Helper()
	for _, name := range folder(t, m) {
		if uploads.IsTemp(name) {
			t.Errorf("temp file left: %s", name)
		}
	}
}

func uploadsFile(m *testmesh.Mesh, id string) string { return filepath.Join(m.UploadsDir, id) }

func mustID(t testing.TB, s string) contract.ID {
	t.Helper()
	id, err := contract.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// noisePNG is a PNG that compresses badly (about 4 bytes a pixel) and is
// unique to seed.
func noisePNG(t testing.TB, w, h int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{uint8(r.Uint32()), uint8(r.Uint32()), uint8(r.Uint32()), 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// counter sums a gRPC server counter (grpc_server_handled_total, ...) for
// a method, over the given services' /metrics URLs.
func counter(t testing.TB, metric, method string, urls ...string) int {
	t.Helper()
	n := 0.0
	for _, u := range urls {
		n += testutil.Metric(t, u, metric, `grpc_method="`+method+`"`)
	}
	return int(n)
}

func header(text string, f *testutil.File) *uploadv1.UploadRequest {
	h := &uploadv1.UploadHeader{Text: text}
	if f != nil {
		h.Photo = &uploadv1.PhotoInfo{FileName: f.Name, ContentType: f.ContentType}
	}
	return &uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Header{Header: h}}
}

func chunk(b []byte) *uploadv1.UploadRequest {
	return &uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Chunk{Chunk: b}}
}

// stream sends msgs on an Upload stream (up to the first refused) and
// returns the answer.
func stream(ctx context.Context, up uploadv1.UploadServiceClient, msgs ...*uploadv1.UploadRequest) (*uploadv1.UploadResponse, error) {
	s, err := up.Upload(ctx)
	if err != nil {
		return nil, err
	}
	for _, msg := range msgs {
		if s.Send(msg) != nil {
			break
		}
	}
	return s.CloseAndRecv()
}

// upload sends a post over gRPC, its photo (if f is not nil) in chunks of
// 1000 bytes.
func upload(ctx context.Context, up uploadv1.UploadServiceClient, text string, f *testutil.File) (*uploadv1.UploadResponse, error) {
	msgs := []*uploadv1.UploadRequest{header(text, f)}
	if f != nil {
		for data := f.Data; len(data) > 0; data = data[min(1000, len(data)):] {
			msgs = append(msgs, chunk(data[:min(1000, len(data))]))
		}
	}
	return stream(ctx, up, msgs...)
}
