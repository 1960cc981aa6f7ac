// Package e2e tests the whole mesh (HTTPS edge, two feed replicas, upload,
// blob) over TCP on 127.0.0.1, on the MySQL and the embedded store.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/internal/uploads"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

const uploadLimit = 256 << 10 // the shared meshes' MaxUploadBytes

// meshCase runs on a shared mesh and leaves it as it was but for its posts.
type meshCase struct {
	name string
	run  func(t *testing.T, m *testmesh.Mesh)
}

// TestMesh runs the cases that depend on the store on a mesh per store, the
// others on the embedded store's. MySQL is behind a proxy the outages cut.
func TestMesh(t *testing.T) {
	perStore := []meshCase{{"photo post", photoPost}, {"pagination", feedPagination}, {"gRPC contracts", grpcContracts},
		{"storage routes", storageRoutes}, {"uploads folder unwritable", uploadsFolderUnwritable},
		{"concurrent uploads", func(t *testing.T, m *testmesh.Mesh) { concurrentUploads(t, m, "concurrent", 200, 200, nil) }}}
	once := []meshCase{{"hostile uploads", hostileUploads}, {"idempotent uploads", uploadIdempotent},
		{"feed replicas", feedReplicas}, {"edge headers and limits", edgeHeadersAndLimits}}
	// The image cache keeps images of up to 8 KiB: reads of larger ones
	// reach the blob service. The cases read the store through direct.
	run := func(t *testing.T, st, direct store.Store, cases ...meshCase) {
		m := testmesh.Start(t, testmesh.Options{Store: st, MaxUploadBytes: uploadLimit, ImageCacheBytes: 64 << 10})
		m.Store = direct
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) { c.run(t, m) })
		}
	}
	t.Run("mysql", func(t *testing.T) {
		dsn := storetest.MySQLDSN(t)
		cfg, proxy := storetest.ThroughProxy(t, dsn)
		open := func(dsn string) store.Store { return storetest.Open(t, store.Config{MySQLDSN: dsn}) }
		run(t, open(cfg.FormatDSN()), open(dsn), append(perStore,
			meshCase{"database down", func(t *testing.T, m *testmesh.Mesh) { databaseDown(t, m, proxy) }},
			meshCase{"cut in the middle of an upload", func(t *testing.T, m *testmesh.Mesh) { cutMidUpload(t, m, proxy) }},
			meshCase{"database stopped during uploads", func(t *testing.T, m *testmesh.Mesh) { stopDatabaseDuringUploads(t, m, proxy) }})...)
	})
	t.Run("embedded", func(t *testing.T) {
		st := storetest.Embedded(t)
		run(t, st, st, append(perStore, once...)...)
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// send makes a request (headers: name, value pairs) of the path as written.
func send(t testing.TB, m *testmesh.Mesh, method, path string, body []byte, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, m.URL+"/", bytes.NewReader(body))
	must(t, err)
	req.URL.Opaque = path
	for i := 0; i < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := m.Client.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp, string(b)
}

func get(t testing.TB, m *testmesh.Mesh, path string, header ...string) (*http.Response, string) {
	t.Helper()
	return send(t, m, http.MethodGet, path, nil, header...)
}

// form is a request body and its Content-Type.
type form struct {
	body []byte
	ct   string
}

// newForm is an upload form: the fields (name, value pairs), text and photo f.
func newForm(t testing.TB, text string, f *testutil.File, fields ...string) form {
	var kv [][2]string
	for i := 0; i < len(fields); i += 2 {
		kv = append(kv, [2]string{fields[i], fields[i+1]})
	}
	body, ct := testutil.Form(t, append(kv, [2]string{"post", text}), f)
	return form{body, ct}
}

func post(t testing.TB, m *testmesh.Mesh, f form, header ...string) (*http.Response, string) {
	t.Helper()
	return send(t, m, http.MethodPost, "/upload.php", f.body, append([]string{"Content-Type", f.ct}, header...)...)
}

func uploadPhoto(t testing.TB, m *testmesh.Mesh, text string, f *testutil.File) {
	t.Helper()
	if resp, page := post(t, m, newForm(t, text, f)); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("upload %q: %d to %q, want 303 to /:\n%s", text, resp.StatusCode, resp.Header.Get("Location"), page)
	}
}

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
func pagePosts(page string) (texts []string) {
	for _, m := range postRE.FindAllStringSubmatch(page, -1) {
		texts = append(texts, m[1])
	}
	return texts
}

// olderLink is a feed page's link to the older posts ("" if none).
func olderLink(page string) string {
	_, rest, ok := strings.Cut(page, `href="/?page=`)
	if !ok {
		return ""
	}
	return html.UnescapeString("/?page=" + rest[:strings.IndexByte(rest, '"')])
}

// snapshot is what the database and the uploads folder hold.
type snapshot string

func snap(t testing.TB, m *testmesh.Mesh) snapshot {
	return snapshot(strings.Join(append([]string{"posts=" + strconv.Itoa(len(allPosts(t, m.Store)))}, folder(t, m)...), " "))
}

func (before snapshot) unchanged(t testing.TB, m *testmesh.Mesh) {
	t.Helper()
	if after := snap(t, m); after != before {
		t.Fatalf("the store or the uploads folder changed:\nbefore %s\nafter  %s", before, after)
	}
}

// allPosts lists every post in the store, newest first.
func allPosts(t testing.TB, st store.Store) (all []store.Post) {
	for before := int64(0); ; {
		ps, err := st.ListPosts(t.Context(), store.ListOptions{Before: before, Limit: store.MaxListLimit})
		must(t, err)
		if all = append(all, ps...); len(ps) < store.MaxListLimit {
			return all
		}
		before = ps[len(ps)-1].Key
	}
}

// byText maps the texts of the stored posts to the posts with that text.
func byText(t testing.TB, m *testmesh.Mesh) map[string][]store.Post {
	posts := map[string][]store.Post{}
	for _, p := range allPosts(t, m.Store) {
		posts[p.Text] = append(posts[p.Text], p)
	}
	return posts
}

// folder lists the uploads folder; it fails the test if a temp file is left.
func folder(t testing.TB, m *testmesh.Mesh) (names []string) {
	entries, err := os.ReadDir(m.UploadsDir)
	must(t, err)
	for _, e := range entries {
		if uploads.IsTemp(e.Name()) {
			t.Errorf("temp file left: %s", e.Name())
		}
		names = append(names, e.Name())
	}
	return names
}

// onDisk is the file of image id in the uploads folder (nil if none).
func onDisk(m *testmesh.Mesh, id string) []byte {
	b, _ := os.ReadFile(filepath.Join(m.UploadsDir, id))
	return b
}

func mustID(t testing.TB, s string) contract.ID {
	id, err := contract.ParseID(s)
	must(t, err)
	return id
}

// counter sums a gRPC server counter of a method over /metrics URLs.
func counter(t testing.TB, metric, method string, urls ...string) (n int) {
	for _, u := range urls {
		n += int(testutil.Metric(t, u, metric, `grpc_method="`+method+`"`))
	}
	return n
}

// health is the status addr's health service gives service ("": the server).
func health(t testing.TB, m *testmesh.Mesh, addr, service string) healthpb.HealthCheckResponse_ServingStatus {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	r, _ := healthpb.NewHealthClient(m.Conn(t, addr)).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	return r.GetStatus()
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

// stream sends msgs on an Upload stream, up to the first refused.
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

// upload sends a post over gRPC, the photo f (if any) in 1000-byte chunks.
func upload(ctx context.Context, up uploadv1.UploadServiceClient, text string, f *testutil.File) (*uploadv1.UploadResponse, error) {
	msgs := []*uploadv1.UploadRequest{header(text, f)}
	if f != nil {
		for data := f.Data; len(data) > 0; data = data[min(1000, len(data)):] {
			msgs = append(msgs, chunk(data[:min(1000, len(data))]))
		}
	}
	return stream(ctx, up, msgs...)
}

// errOf is the error among a call's results.
func errOf(results ...any) error {
	err, _ := results[len(results)-1].(error)
	return err
}
