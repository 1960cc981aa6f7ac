package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
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

func upload(ctx context.Context, c uploadv1.UploadServiceClient, text string, photo []byte, chunk int) (*uploadv1.UploadResponse, error) {
	s, err := c.Upload(ctx)
	if err != nil {
		return nil, err
	}
	hdr := &uploadv1.UploadHeader{Text: text}
	if photo != nil {
		hdr.Photo = &uploadv1.PhotoInfo{FileName: "p.png", ContentType: "image/png"}
	}
	if err := s.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Header{Header: hdr}}); err != nil {
		return s.CloseAndRecv()
	}
	for len(photo) > 0 {
		n := min(chunk, len(photo))
		if err := s.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Chunk{Chunk: photo[:n]}}); err != nil {
			return s.CloseAndRecv()
		}
		photo = photo[n:]
	}
	return s.CloseAndRecv()
}

func TestGRPCContracts(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		m := testmesh.Start(t, testmesh.Options{Store: st, MaxUploadBytes: 1 << 20})
		ctx := t.Context()
		feed := feedv1.NewFeedServiceClient(m.Conn(t, m.FeedAddrs[0]))
		up := uploadv1.NewUploadServiceClient(m.Conn(t, m.UploadAddr))
		blob := blobv1.NewBlobServiceClient(m.Conn(t, m.BlobAddr))

		photo := testutil.PNG(t, 300, 200)
		created, err := upload(ctx, up, "  via gRPC  ", photo, 1000)
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

		// GetBlob: metadata first, then the bytes. (Ranges: blobsvc's tests.)
		read := func(req *blobv1.GetBlobRequest) (*blobv1.BlobMetadata, []byte, error) {
			s, err := blob.GetBlob(ctx, req)
			if err != nil {
				return nil, nil, err
			}
			first, err := s.Recv()
			if err != nil {
				return nil, nil, err
			}
			var data []byte
			for {
				msg, err := s.Recv()
				if err == io.EOF {
					return first.GetMetadata(), data, nil
				}
				if err != nil {
					return nil, nil, err
				}
				data = append(data, msg.GetChunk()...)
			}
		}
		meta, data, err := read(&blobv1.GetBlobRequest{Id: p.GetImage().GetId()})
		if err != nil || !bytes.Equal(data, photo) || meta.GetSizeBytes() != int64(len(photo)) || len(meta.GetSha256()) != 32 {
			t.Fatalf("GetBlob: meta %v, %d bytes, %v", meta, len(data), err)
		}
		md, err := blob.GetBlobMetadata(ctx, &blobv1.GetBlobMetadataRequest{Id: p.GetImage().GetId()})
		if err != nil || !bytes.Equal(md.GetMetadata().GetSha256(), meta.GetSha256()) {
			t.Fatalf("GetBlobMetadata = %v, %v", md, err)
		}

		unknown := contract.NewID().String()
		for _, c := range []struct {
			name string
			call func() error
			want codes.Code
		}{
			{"ListPosts negative page_size", func() error {
				_, err := feed.ListPosts(ctx, &feedv1.ListPostsRequest{PageSize: -1})
				return err
			}, codes.InvalidArgument},
			{"ListPosts page_size 101", func() error {
				_, err := feed.ListPosts(ctx, &feedv1.ListPostsRequest{PageSize: 101})
				return err
			}, codes.InvalidArgument},
			{"ListPosts forged token", func() error {
				_, err := feed.ListPosts(ctx, &feedv1.ListPostsRequest{PageToken: "AQ"})
				return err
			}, codes.InvalidArgument},
			{"GetPost malformed id", func() error {
				_, err := feed.GetPost(ctx, &feedv1.GetPostRequest{Id: "../../etc/passwd"})
				return err
			}, codes.InvalidArgument},
			{"GetPost unknown id", func() error {
				_, err := feed.GetPost(ctx, &feedv1.GetPostRequest{Id: unknown})
				return err
			}, codes.NotFound},
			{"GetBlob malformed id", func() error {
				_, _, err := read(&blobv1.GetBlobRequest{Id: "abc"})
				return err
			}, codes.InvalidArgument},
			{"GetBlob unknown id", func() error {
				_, _, err := read(&blobv1.GetBlobRequest{Id: unknown})
				return err
			}, codes.NotFound},
			{"GetBlobMetadata unknown id", func() error {
				_, err := blob.GetBlobMetadata(ctx, &blobv1.GetBlobMetadataRequest{Id: unknown})
				return err
			}, codes.NotFound},
			{"Upload without header", func() error {
				s, err := up.Upload(ctx)
				if err != nil {
					return err
				}
				_ = s.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Chunk{Chunk: []byte("x")}})
				_, err = s.CloseAndRecv()
				return err
			}, codes.InvalidArgument},
			{"Upload empty stream", func() error {
				s, err := up.Upload(ctx)
				if err != nil {
					return err
				}
				_, err = s.CloseAndRecv()
				return err
			}, codes.InvalidArgument},
			{"Upload chunk without photo", func() error {
				s, err := up.Upload(ctx)
				if err != nil {
					return err
				}
				_ = s.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Header{Header: &uploadv1.UploadHeader{Text: "x"}}})
				_ = s.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Chunk{Chunk: []byte("x")}})
				_, err = s.CloseAndRecv()
				return err
			}, codes.InvalidArgument},
			{"Upload over the size limit", func() error {
				_, err := upload(ctx, up, "x", bytes.Repeat([]byte{1}, 1<<20+1), 64<<10)
				return err
			}, codes.ResourceExhausted},
		} {
			t.Run(c.name, func(t *testing.T) {
				if got := status.Code(c.call()); got != c.want {
					t.Fatalf("code %v, want %v", got, c.want)
				}
			})
		}

		// Health and reflection on every service.
		for addr, svc := range map[string]string{
			m.FeedAddrs[0]: "extagram.feed.v1.FeedService", m.FeedAddrs[1]: "extagram.feed.v1.FeedService",
			m.UploadAddr: "extagram.upload.v1.UploadService", m.BlobAddr: "extagram.blob.v1.BlobService",
		} {
			cc := m.Conn(t, addr)
			for _, name := range []string{"", svc} {
				resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: name})
				if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					t.Errorf("%s health %q: %v %v", addr, name, resp, err)
				}
			}
			rs, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_ = rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: ""}})
			r, err := rs.Recv()
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range r.GetListServicesResponse().GetService() {
				names = append(names, s.GetName())
			}
			all := strings.Join(names, " ")
			for _, want := range []string{svc, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
				if !strings.Contains(all, want) {
					t.Errorf("%s reflection lists %q, missing %s", addr, all, want)
				}
			}
		}
	})
}

// counter sums a gRPC server counter (grpc_server_handled_total,
// grpc_server_started_total, ...) for a method, from a /metrics URL.
func counter(t testing.TB, url, metric, method string) int {
	t.Helper()
	return int(testutil.Metric(t, url, metric, `grpc_method="`+method+`"`))
}

// TestFeedSpreadOverReplicas: the calls the edge makes per request (here
// GetPost, behind /api/v1/posts/{id}) are spread over both replicas.
func TestFeedSpreadOverReplicas(t *testing.T) {
	m := testmesh.Start(t, testmesh.Options{Store: storeEmbedded(t)})
	uploadPhoto(t, m, "spread", nil)
	id := listAPI(t, m, "").Posts[0].ID
	const loads = 200
	for range loads {
		if resp, _ := get(t, m, "/api/v1/posts/"+id); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/v1/posts/%s: %d", id, resp.StatusCode)
		}
	}
	a, b := counter(t, m.Metrics["feed-1"], "grpc_server_handled_total", "GetPost"), counter(t, m.Metrics["feed-2"], "grpc_server_handled_total", "GetPost")
	t.Logf("GetPost served: feed-1 %d, feed-2 %d", a, b)
	if a+b < loads || a < loads/4 || b < loads/4 {
		t.Fatalf("feed-1 served %d and feed-2 %d of %d loads: want both in rotation", a, b, loads)
	}
}

// TestNewestPageWatched: the edge keeps the newest page from WatchFeed.
// Views of it make no call while the watch speaks; an upload through the
// edge shows on the page its author is sent to at once; a post made
// elsewhere (another edge; here straight into the store) reaches the page
// within the watch's interval. Older pages and the JSON API come from the
// same cache.
func TestNewestPageWatched(t *testing.T) {
	m := testmesh.Start(t, testmesh.Options{Store: storeEmbedded(t)})
	calls := func() int {
		return counter(t, m.Metrics["feed-1"], "grpc_server_handled_total", "ListPosts") +
			counter(t, m.Metrics["feed-2"], "grpc_server_handled_total", "ListPosts")
	}
	for i := range 25 {
		uploadPhoto(t, m, fmt.Sprintf("watched %02d", i), nil)
		// The page the upload redirects to shows the post at once.
		if _, page := get(t, m, "/"); !strings.Contains(page, fmt.Sprintf("watched %02d", i)) {
			t.Fatalf("the page after uploading post %d does not show it", i)
		}
	}
	// Once the watch has pushed the page with the last post, views make no
	// call.
	testutil.Eventually(t, 30*time.Second, "views served without a call", func() bool {
		before := calls()
		for range 20 {
			get(t, m, "/")
		}
		return calls() == before
	})
	before := calls()
	var olderLink string
	for range 50 {
		_, page := get(t, m, "/")
		if !strings.Contains(page, "watched 24") {
			t.Fatal("the newest page lost its newest post")
		}
		i := strings.Index(page, `href="/?page=`)
		rest := page[i+len(`href="`):]
		olderLink = html.UnescapeString(rest[:strings.IndexByte(rest, '"')])
		listAPI(t, m, "")
	}
	for range 20 {
		if _, page := get(t, m, olderLink); !strings.Contains(page, "watched 04") {
			t.Fatalf("the older page does not show the older posts")
		}
	}
	if n := calls() - before; n > 1 {
		t.Fatalf("100 views of the newest page and 20 of an older one made %d ListPosts calls; want at most one (the older page's)", n)
	}

	// A post from elsewhere reaches the page within the watch interval.
	start := time.Now()
	if _, err := m.Store.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: "from another edge"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "a post made elsewhere on the newest page", func() bool {
		_, page := get(t, m, "/")
		return strings.Contains(page, "from another edge")
	})
	t.Logf("a post made elsewhere reached the page in %v", time.Since(start).Round(time.Millisecond))
}

// TestStorageRoutes checks /storage/{id} for an image the edge's cache
// keeps and for one too large for it (streamed from the blob service):
// GET, HEAD, conditional and range requests (bad paths: TestStoragePaths);
// then that the cached
// image was read from the blob service once, and that a damaged file of
// the streamed one is repaired from the database copy.
func TestStorageRoutes(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		// A 64 KiB cache keeps images of up to 8 KiB.
		m := testmesh.Start(t, testmesh.Options{Store: st, ImageCacheBytes: 64 << 10})
		small, large := testutil.JPEG(t, 48, 48), testutil.JPEG(t, 400, 300)
		if len(small) < 200 || len(small) > 8<<10 || len(large) <= 8<<10 {
			t.Fatalf("test images of %d and %d bytes do not straddle the 8 KiB cache limit", len(small), len(large))
		}
		uploadPhoto(t, m, "cached", testutil.Photo("s.jpg", "image/jpeg", small))
		uploadPhoto(t, m, "streamed", testutil.Photo("l.jpg", "image/jpeg", large))
		posts := listAPI(t, m, "").Posts
		cached, streamed := posts[1].Image.ID, posts[0].Image.ID
		for id, want := range map[string]struct {
			data []byte
			typ  string
		}{cached: {small, "image/jpeg"}, streamed: {large, "image/jpeg"}} {
			storageRequests(t, m, id, want.data, want.typ)
		}
		if n := counter(t, m.Metrics["blob"], "grpc_server_handled_total", "GetBlob"); n < 3 {
			t.Fatalf("GetBlob served %d calls; the streamed image alone needs several", n)
		}
		before := counter(t, m.Metrics["blob"], "grpc_server_handled_total", "GetBlob") +
			counter(t, m.Metrics["blob"], "grpc_server_handled_total", "GetBlobMetadata")
		for range 5 {
			storageRequests(t, m, cached, small, "image/jpeg")
		}
		after := counter(t, m.Metrics["blob"], "grpc_server_handled_total", "GetBlob") +
			counter(t, m.Metrics["blob"], "grpc_server_handled_total", "GetBlobMetadata")
		if after != before {
			t.Fatalf("the cached image still reached the blob service: %d calls for 5 more rounds", after-before)
		}

		// The streamed image's file deleted, then corrupted, then
		// truncated: the database copy is served and the file restored.
		path := uploadsFile(m, streamed)
		for _, c := range []struct {
			name   string
			damage func() error
		}{
			{"deleted", func() error { return os.Remove(path) }},
			{"corrupted", func() error { return os.WriteFile(path, append([]byte("junk"), large...), 0o640) }},
			{"truncated", func() error { return os.WriteFile(path, large[:10], 0o640) }},
		} {
			if err := c.damage(); err != nil {
				t.Fatal(err)
			}
			resp, body := get(t, m, "/storage/"+streamed)
			if resp.StatusCode != 200 || body != string(large) {
				t.Fatalf("%s file: %d, %d bytes; want the stored bytes", c.name, resp.StatusCode, len(body))
			}
			if disk, err := os.ReadFile(path); err != nil || !bytes.Equal(disk, large) {
				t.Fatalf("%s file not restored: %v", c.name, err)
			}
		}
	})
}

// storageRequests checks GET, HEAD, conditional and range requests of one
// image.
func storageRequests(t *testing.T, m *testmesh.Mesh, id string, stored []byte, contentType string) {
	t.Helper()
	url := "/storage/" + id
	resp, body := get(t, m, url)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != contentType || body != string(stored) {
		t.Fatalf("GET %s: %d %s, %d bytes", url, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("GET %s: Cache-Control %q, X-Content-Type-Options %q", url, cc, resp.Header.Get("X-Content-Type-Options"))
	}
	etag := resp.Header.Get("ETag")
	if sum := sha256.Sum256(stored); etag != `"`+hex.EncodeToString(sum[:])+`"` {
		t.Fatalf("ETag %s is not the SHA-256", etag)
	}

	req, _ := http.NewRequest(http.MethodHead, m.URL+url, nil)
	resp, body = do(t, m, req)
	if resp.StatusCode != 200 || body != "" || resp.Header.Get("Content-Length") != strconv.Itoa(len(stored)) || resp.Header.Get("ETag") != etag {
		t.Fatalf("HEAD: %d, %d body bytes, length %q", resp.StatusCode, len(body), resp.Header.Get("Content-Length"))
	}
	req, _ = http.NewRequest(http.MethodGet, m.URL+url, nil)
	req.Header.Set("If-None-Match", etag)
	if resp, body = do(t, m, req); resp.StatusCode != http.StatusNotModified || body != "" {
		t.Fatalf("If-None-Match: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodGet, m.URL+url, nil)
	req.Header.Set("Range", "bytes=100-199")
	if resp, body = do(t, m, req); resp.StatusCode != http.StatusPartialContent || body != string(stored[100:200]) ||
		resp.Header.Get("Content-Range") != "bytes 100-199/"+strconv.Itoa(len(stored)) {
		t.Fatalf("Range: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Range"), len(body))
	}
	req.Header.Set("Range", "bytes=-10")
	if resp, body = do(t, m, req); resp.StatusCode != http.StatusPartialContent || body != string(stored[len(stored)-10:]) {
		t.Fatalf("suffix Range: %d, %d bytes", resp.StatusCode, len(body))
	}
	req.Header.Set("Range", "bytes=999999-")
	if resp, _ = do(t, m, req); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("Range past the end: %d", resp.StatusCode)
	}
}

func TestEdgeHeadersAndRedirect(t *testing.T) {
	m := testmesh.Start(t, testmesh.Options{Store: storeEmbedded(t)})
	if resp, _ := get(t, m, "/readyz"); resp.StatusCode != 200 {
		t.Errorf("/readyz: %d", resp.StatusCode)
	}
	if resp, _ := get(t, m, "/api/v1/posts/"+contract.NewID().String()); resp.StatusCode != 404 {
		t.Errorf("API unknown post: %d", resp.StatusCode)
	}
	if resp, _ := get(t, m, "/api/v1/posts/bad"); resp.StatusCode != 400 {
		t.Errorf("API bad id: %d", resp.StatusCode)
	}
	if resp, _ := get(t, m, "/api/v1/posts?pageSize=500"); resp.StatusCode != 400 {
		t.Errorf("API page size 500: %d", resp.StatusCode)
	}

	// Plain HTTP is redirected to the name in the certificate, whatever
	// Host the request names.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(m.URL, "https://"))
	want := "https://localhost:" + port + "/extagram.php?x=1"
	for _, host := range []string{"", "evil.example"} {
		req, _ := http.NewRequest(http.MethodGet, m.HTTPURL+"/extagram.php?x=1", nil)
		req.Host = host
		resp, err := m.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
			t.Fatalf("HTTP with Host %q: %d to %q, want 308 to %q", host, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}

	// A cross-site form post is refused; a scripted client without browser
	// headers is not.
	body, ct := testutil.Form(t, [][2]string{{"post", "csrf"}}, nil)
	req, _ := http.NewRequest(http.MethodPost, m.URL+"/upload.php", bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	if resp, _ := do(t, m, req); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site post: %d, want 403", resp.StatusCode)
	}
	if s := snap(t, m); s.posts != 0 {
		t.Fatalf("cross-site post stored something")
	}
}
