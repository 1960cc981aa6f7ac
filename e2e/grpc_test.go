package e2e

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	blobv1 "github.com/extagram/extagram/gen/extagram/blob/v1"
	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

// grpcContracts: a post made through UploadService reads back through
// FeedService and BlobService (ranges: blobsvc's tests); bad or unknown ids
// and arguments get their codes (UploadService's: hostileUploads). Health
// and reflection.
func grpcContracts(t *testing.T, m *testmesh.Mesh) {
	ctx := t.Context()
	feed := feedv1.NewFeedServiceClient(m.Conn(t, m.FeedAddrs[0]))
	up := uploadv1.NewUploadServiceClient(m.Conn(t, m.UploadAddr))
	blob := blobv1.NewBlobServiceClient(m.Conn(t, m.BlobAddr))
	// The bytes GetBlob streams are checked through the edge (photoPost, storageRoutes).
	getBlob := func(id string) error {
		s, err := blob.GetBlob(ctx, &blobv1.GetBlobRequest{Id: id})
		if err == nil {
			_, err = s.Recv()
		}
		return err
	}
	photo := testutil.PNG(t, 300, 200)
	created, err := upload(ctx, up, "  via gRPC  ", pngFile("p.png", photo))
	if err != nil {
		t.Fatalf("Upload: %v", err)
	}
	p := created.GetPost()
	if p.GetText() != "via gRPC" || p.GetImage().GetWidth() != 300 || p.GetImage().GetHeight() != 200 || p.GetImage().GetContentType() != "image/png" {
		t.Fatalf("Upload returned %v", p)
	}
	got, err := feed.GetPost(ctx, &feedv1.GetPostRequest{Id: p.GetId()})
	if err != nil || got.GetPost().GetText() != "via gRPC" || !got.GetPost().GetCreateTime().AsTime().Equal(p.GetCreateTime().AsTime()) {
		t.Fatalf("GetPost = %v, %v", got, err)
	}
	md, err := blob.GetBlobMetadata(ctx, &blobv1.GetBlobMetadataRequest{Id: p.GetImage().GetId()})
	if sum := sha256.Sum256(photo); err != nil || md.GetMetadata().GetSizeBytes() != int64(len(photo)) || !bytes.Equal(md.GetMetadata().GetSha256(), sum[:]) {
		t.Fatalf("GetBlobMetadata: %v, %v", md, err)
	}
	if err := getBlob(p.GetImage().GetId()); err != nil {
		t.Fatalf("GetBlob: %v", err)
	}
	unknown := contract.NewID().String()
	for _, c := range []struct {
		name string
		err  error
		want codes.Code
	}{
		{"ListPosts negative page_size", errOf(feed.ListPosts(ctx, &feedv1.ListPostsRequest{PageSize: -1})), codes.InvalidArgument},
		{"ListPosts page_size 101", errOf(feed.ListPosts(ctx, &feedv1.ListPostsRequest{PageSize: 101})), codes.InvalidArgument},
		{"ListPosts forged token", errOf(feed.ListPosts(ctx, &feedv1.ListPostsRequest{PageToken: "AQ"})), codes.InvalidArgument},
		{"GetPost malformed id", errOf(feed.GetPost(ctx, &feedv1.GetPostRequest{Id: "../../etc/passwd"})), codes.InvalidArgument},
		{"GetPost unknown id", errOf(feed.GetPost(ctx, &feedv1.GetPostRequest{Id: unknown})), codes.NotFound},
		{"GetBlob malformed id", getBlob("abc"), codes.InvalidArgument},
		{"GetBlob unknown id", getBlob(unknown), codes.NotFound},
		{"GetBlobMetadata unknown id", errOf(blob.GetBlobMetadata(ctx, &blobv1.GetBlobMetadataRequest{Id: unknown})), codes.NotFound},
	} {
		if got := status.Code(c.err); got != c.want {
			t.Errorf("%s: code %v, want %v", c.name, got, c.want)
		}
	}
	// Every server is healthy, as is its service, listed by reflection.
	for addr, svc := range map[string]string{
		m.FeedAddrs[0]: "extagram.feed.v1.FeedService", m.FeedAddrs[1]: "extagram.feed.v1.FeedService",
		m.UploadAddr: "extagram.upload.v1.UploadService", m.BlobAddr: "extagram.blob.v1.BlobService",
	} {
		for _, name := range []string{"", svc} {
			if s := health(t, m, addr, name); s != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("%s health %q: %v", addr, name, s)
			}
		}
		rs, err := reflectionpb.NewServerReflectionClient(m.Conn(t, addr)).ServerReflectionInfo(t.Context())
		must(t, err)
		_ = rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
		r, err := rs.Recv()
		must(t, err)
		for _, want := range []string{svc, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
			if !slices.ContainsFunc(r.GetListServicesResponse().GetService(), func(s *reflectionpb.ServiceResponse) bool { return s.GetName() == want }) {
				t.Errorf("%s reflection lists %v, missing %s", addr, r.GetListServicesResponse(), want)
			}
		}
	}
}

// feedReplicas: views of the newest page (kept from WatchFeed), older pages
// and the API make no call; an upload shows at once on the page its author
// is sent to, a post made elsewhere within the watch's interval. (How the
// edge spreads calls over the replicas: hatest TestFailover/share.)
func feedReplicas(t *testing.T, m *testmesh.Mesh) {
	calls := func() int {
		return counter(t, "grpc_server_handled_total", "ListPosts", m.Metrics["feed-1"], m.Metrics["feed-2"])
	}
	for i := range 25 {
		uploadPhoto(t, m, fmt.Sprintf("watched %02d", i), nil)
		if _, page := get(t, m, "/"); !strings.Contains(page, fmt.Sprintf("watched %02d", i)) {
			t.Fatalf("the page after uploading post %d does not show it", i)
		}
	}
	testutil.Eventually(t, 30*time.Second, "views served without a call", func() bool {
		before := calls()
		for range 20 {
			get(t, m, "/")
		}
		return calls() == before
	})
	before := calls()
	var older string
	for range 50 {
		_, page := get(t, m, "/")
		if !strings.Contains(page, "watched 24") {
			t.Fatal("the newest page lost its newest post")
		}
		older = olderLink(page)
		newest(t, m)
	}
	for range 20 {
		if _, page := get(t, m, older); !strings.Contains(page, "watched 04") {
			t.Fatalf("the older page does not show the older posts")
		}
	}
	if n := calls() - before; n > 1 {
		t.Fatalf("100 views of the newest page and 20 of an older one made %d ListPosts calls; want at most one (the older page's)", n)
	}
	start := time.Now()
	_, err := m.Store.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: "from another edge"})
	must(t, err)
	testutil.Eventually(t, 30*time.Second, "a post made elsewhere on the newest page", func() bool {
		_, page := get(t, m, "/")
		return strings.Contains(page, "from another edge")
	})
	t.Logf("a post made elsewhere reached the page in %v", time.Since(start).Round(time.Millisecond))
}

// storageRoutes: requests of an image the edge caches (read from blob once)
// and of one too large for it, whose damaged file is repaired from the
// database copy; bad paths.
func storageRoutes(t *testing.T, m *testmesh.Mesh) {
	small, large := testutil.JPEG(t, 48, 48), testutil.JPEG(t, 400, 300)
	if len(small) < 200 || len(small) > 8<<10 || len(large) <= 8<<10 {
		t.Fatalf("test images of %d and %d bytes do not straddle the 8 KiB cache limit", len(small), len(large))
	}
	blobCalls := func(method string) int { return counter(t, "grpc_server_handled_total", method, m.Metrics["blob"]) }
	start := blobCalls("GetBlob")
	uploadPhoto(t, m, "cached", testutil.Photo("s.jpg", "image/jpeg", small))
	uploadPhoto(t, m, "streamed", testutil.Photo("l.jpg", "image/jpeg", large))
	posts := newest(t, m)
	cached, streamed := posts[1].Image.ID, posts[0].Image.ID
	storageRequests(t, m, cached, small)
	storageRequests(t, m, streamed, large)
	if n := blobCalls("GetBlob") - start; n < 3 {
		t.Fatalf("GetBlob served %d calls; the streamed image alone needs several", n)
	}
	before := blobCalls("GetBlob") + blobCalls("GetBlobMetadata")
	for range 5 {
		storageRequests(t, m, cached, small)
	}
	if n := blobCalls("GetBlob") + blobCalls("GetBlobMetadata") - before; n != 0 {
		t.Fatalf("the cached image still reached the blob service: %d calls for 5 more rounds", n)
	}
	// Its file damaged, the streamed image is served from the database and the file restored.
	path := filepath.Join(m.UploadsDir, streamed)
	for name, damage := range map[string]func() error{
		"deleted":   func() error { return os.Remove(path) },
		"corrupted": func() error { return os.WriteFile(path, append([]byte("junk"), large...), 0o640) },
		"truncated": func() error { return os.WriteFile(path, large[:10], 0o640) },
	} {
		must(t, damage())
		if resp, body := get(t, m, "/storage/"+streamed); resp.StatusCode != 200 || body != string(large) || !bytes.Equal(onDisk(m, streamed), large) {
			t.Fatalf("%s file: %d, %d bytes; want the stored bytes, and the file restored", name, resp.StatusCode, len(body))
		}
	}
	// No other path to /storage/ serves a file, not even one beside the uploads folder.
	real, secret := cached, contract.NewID().String()
	must(t, os.WriteFile(filepath.Join(filepath.Dir(m.UploadsDir), secret), []byte("SECRET-OUTSIDE-UPLOADS"), 0o600))
	paths := []string{"/storage"}
	for _, p := range []string{
		"..", "../" + secret, "..%2f" + secret, "%2e%2e%2f" + secret, "%2e%2e/" + secret, ".%2e/" + secret,
		"%2E%2E%5C" + secret, real + "%00", "%00" + real[1:], real[:21] + "%00", real[:21], real + "A", real + "=",
		real + "/", real[:21] + "+", real[:21] + "/", real[:21] + ".", strings.Repeat("%41", 22),
		strings.Repeat("A", 1000), strings.Repeat("é", 11), "",
	} {
		paths = append(paths, "/storage/"+p)
	}
	for _, p := range paths {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			resp, body := send(t, m, method, p, nil)
			if resp.StatusCode != 400 && resp.StatusCode != 404 && resp.StatusCode != 405 {
				t.Errorf("%s %s: %d, want 400 or 404", method, p, resp.StatusCode)
			}
			if strings.Contains(body, "SECRET") || strings.HasPrefix(resp.Header.Get("Content-Type"), "image/") {
				t.Errorf("%s %s served a file", method, p)
			}
		}
	}
	if resp, _ := get(t, m, "/storage/"+contract.NewID().String()); resp.StatusCode != 404 {
		t.Errorf("unknown id: %d, want 404", resp.StatusCode)
	}
}

// storageRequests checks GET, HEAD, conditional and range requests of a JPEG.
func storageRequests(t *testing.T, m *testmesh.Mesh, id string, stored []byte) {
	t.Helper()
	sum, n := sha256.Sum256(stored), strconv.Itoa(len(stored))
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	for _, c := range []struct {
		method string
		header []string
		status int
		body   string
		want   map[string]string // headers
	}{
		{"GET", nil, 200, string(stored), map[string]string{"Content-Type": "image/jpeg", "ETag": etag,
			"Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"}},
		{"HEAD", nil, 200, "", map[string]string{"Content-Length": n, "ETag": etag}},
		{"GET", []string{"If-None-Match", etag}, http.StatusNotModified, "", nil},
		{"GET", []string{"Range", "bytes=100-199"}, http.StatusPartialContent, string(stored[100:200]), map[string]string{"Content-Range": "bytes 100-199/" + n}},
		{"GET", []string{"Range", "bytes=-10"}, http.StatusPartialContent, string(stored[len(stored)-10:]), nil},
		{"GET", []string{"Range", "bytes=999999-"}, http.StatusRequestedRangeNotSatisfiable, "", nil},
	} {
		resp, body := send(t, m, c.method, "/storage/"+id, nil, c.header...)
		if resp.StatusCode != c.status || body != c.body && c.status != http.StatusRequestedRangeNotSatisfiable {
			t.Fatalf("%s %s %q: %d, %d bytes; want %d, %d bytes", c.method, id, c.header, resp.StatusCode, len(body), c.status, len(c.body))
		}
		for k, v := range c.want {
			if got := resp.Header.Get(k); got != v {
				t.Fatalf("%s %s %q: %s %q, want %q", c.method, id, c.header, k, got, v)
			}
		}
	}
}

// edgeHeadersAndLimits: API answers for bad ids and sizes, the plain HTTP
// redirect, CSRF protection and the bound on request headers.
func edgeHeadersAndLimits(t *testing.T, m *testmesh.Mesh) {
	for path, want := range map[string]int{"/api/v1/posts/" + contract.NewID().String(): 404, "/api/v1/posts/bad": 400, "/api/v1/posts?pageSize=500": 400} {
		if resp, _ := get(t, m, path); resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	// Plain HTTP is redirected to the certificate's name and the edge's
	// port (other Hosts: TestRedirectHandler).
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(m.URL, "https://"))
	resp, err := m.Client.Get(m.HTTPURL + "/extagram.php?x=1")
	must(t, err)
	resp.Body.Close()
	if want := "https://localhost:" + port + "/extagram.php?x=1"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("plain HTTP: %d to %q, want 308 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	// A cross-site form post is refused (scripts without browser headers are not: TestRateLimits).
	before := snap(t, m)
	if resp, _ := post(t, m, newForm(t, "csrf", nil), "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site post: %d, want 403", resp.StatusCode)
	}
	before.unchanged(t, m)
	// HTTP/2 clients keep to the header size the edge advertises; over HTTP/1.1 it refuses.
	h1 := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the mesh's self-signed certificate
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
	}}
	defer h1.CloseIdleConnections()
	big := func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, m.URL+"/upload.php", strings.NewReader("x"))
		req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
		return req
	}
	if resp, err := h1.Do(big()); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB of headers over HTTP/1.1: %v %v, want 431", resp, err)
	} else {
		resp.Body.Close()
	}
	if _, err := m.Client.Do(big()); err == nil {
		t.Errorf("64 KiB of headers over HTTP/2: sent")
	}
}
