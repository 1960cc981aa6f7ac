package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testproxy"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
	"github.com/go-sql-driver/mysql"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// proxiedMySQL opens a store on a new MySQL database through a proxy the
// test can cut, and a second store on the same database that goes
// straight to the server, for checking what was stored.
func proxiedMySQL(t *testing.T) (through store.Store, direct store.Store, proxy *testproxy.Proxy) {
	t.Helper()
	dsn := storetest.MySQLDSN(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy = testproxy.Start(t, cfg.Addr)
	cfg.Addr = proxy.Addr()
	open := func(dsn string) store.Store {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st, err := store.Open(ctx, store.Config{MySQLDSN: dsn, Logger: storetest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	return open(cfg.FormatDSN()), open(dsn), proxy
}

// outageCases cut the link between the services and MySQL (the store
// direct is not cut).
func outageCases(direct store.Store, proxy *testproxy.Proxy) []meshCase {
	with := func(f func(*testing.T, *testmesh.Mesh, store.Store, *testproxy.Proxy)) func(*testing.T, *testmesh.Mesh) {
		return func(t *testing.T, m *testmesh.Mesh) { f(t, m, direct, proxy) }
	}
	return []meshCase{
		{"upload while the database is unreachable", with(uploadWhileDatabaseUnreachable)},
		{"blobs served with the database down", with(databaseDownBlobsStillServed)},
		{"database stopped during uploads", with(stopDatabaseDuringUploads)},
	}
}

// restore restores the link to MySQL and waits until the mesh is ready.
func restore(t *testing.T, m *testmesh.Mesh, proxy *testproxy.Proxy) {
	t.Helper()
	if err := proxy.Restore(); err != nil {
		t.Fatal(err)
	}
	m.WaitReady(t)
}

// uploadWhileDatabaseUnreachable cuts the link to MySQL, before an upload
// and in the middle of one: 503 with a message and Retry-After, nothing in
// the database, nothing on disk. Once the link is back, uploads work again.
func uploadWhileDatabaseUnreachable(t *testing.T, m *testmesh.Mesh, direct store.Store, proxy *testproxy.Proxy) {
	posts, files := len(allPosts(t, direct)), strings.Join(folder(t, m), " ")
	photo := noisePNG(t, 200, 200, 1) // 120 KB: streamed in two chunks
	check := func(t *testing.T, resp *http.Response, page string) {
		t.Helper()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("status %d, Retry-After %q, want 503 with one; page:\n%.2000s", resp.StatusCode, resp.Header.Get("Retry-After"), page)
		}
		if !strings.Contains(page, "unavailable right now") || !strings.Contains(page, `role="alert"`) {
			t.Errorf("no message in the page:\n%.2000s", page)
		}
		if got := strings.Join(folder(t, m), " "); got != files {
			t.Errorf("uploads folder changed: %q, want %q", got, files)
		}
		if n := len(allPosts(t, direct)); n != posts {
			t.Errorf("%d posts stored, want %d", n, posts)
		}
	}

	t.Run("cut before the upload", func(t *testing.T) {
		proxy.Cut()
		body, ct := testutil.Form(t, [][2]string{{"post", "during the outage"}}, pngFile("b.png", photo))
		resp, page := post(t, m, body, ct)
		check(t, resp, page)
		restore(t, m, proxy)
	})
	t.Run("cut in the middle of the upload", func(t *testing.T) {
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		type answer struct {
			resp *http.Response
			page []byte
			err  error
		}
		answers := make(chan answer, 1)
		go func() {
			resp, err := m.Client.Post(m.URL+"/upload.php", mw.FormDataContentType(), pr)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers <- answer{resp, b, err}
		}()
		started := func() int { return counter(t, "grpc_server_started_total", "Upload", m.Metrics["upload"]) }
		before := started()
		_ = mw.WriteField("post", "cut mid-upload")
		fw, _ := mw.CreateFormFile("photo", "c.png")
		// More than the edge's first 64 KiB chunk, so the stream opens.
		half := len(photo) * 3 / 4
		if _, err := fw.Write(photo[:half]); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 30*time.Second, "upload stream started", func() bool { return started() > before })
		proxy.Cut()
		_, _ = fw.Write(photo[half:])
		_ = mw.Close()
		_ = pw.Close()
		a := <-answers
		if a.err != nil {
			t.Fatal(a.err)
		}
		check(t, a.resp, string(a.page))
		restore(t, m, proxy)
	})
	uploadPhoto(t, m, "after the outage", pngFile("d.png", photo))
	if n := len(allPosts(t, direct)); n != posts+1 {
		t.Fatalf("%d posts after the outage, want %d", n, posts+1)
	}
	noTempFiles(t, m)
}

// databaseDownBlobsStillServed cuts the link to MySQL: images whose file
// is on disk are still served, byte for byte with the same headers; an
// image whose file is missing answers 503 until the database is back, then
// it is served and its file rewritten.
func databaseDownBlobsStillServed(t *testing.T, m *testmesh.Mesh, _ store.Store, proxy *testproxy.Proxy) {
	onDisk := noisePNG(t, 60, 60, 2) // too large for the edge's cache: every read reaches the blob service
	uploadPhoto(t, m, "on disk", pngFile("a.png", onDisk))
	gone := testutil.PNG(t, 30, 20)
	uploadPhoto(t, m, "file gone", pngFile("b.png", gone))
	posts := newest(t, m)
	goneID, diskID := posts[0].Image.ID, posts[1].Image.ID
	if err := os.Remove(uploadsFile(m, goneID)); err != nil {
		t.Fatal(err)
	}
	resp, _ := get(t, m, "/storage/"+diskID)
	etag := resp.Header.Get("ETag")

	proxy.Cut()
	health := func(addr, service string) healthpb.HealthCheckResponse_ServingStatus {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		r, err := healthpb.NewHealthClient(m.Conn(t, addr)).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return healthpb.HealthCheckResponse_UNKNOWN
		}
		return r.GetStatus()
	}
	testutil.Eventually(t, 30*time.Second, "upload NOT_SERVING", func() bool {
		return health(m.UploadAddr, "extagram.upload.v1.UploadService") == healthpb.HealthCheckResponse_NOT_SERVING
	})
	if s := health(m.BlobAddr, "extagram.blob.v1.BlobService"); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("blob health with the database down: %v, want SERVING (it can serve files)", s)
	}
	for range 3 { // several times: every blob call goes without the database
		resp, body := get(t, m, "/storage/"+diskID)
		if resp.StatusCode != 200 || body != string(onDisk) || resp.Header.Get("Content-Type") != "image/png" || resp.Header.Get("ETag") != etag {
			t.Fatalf("file on disk with the database down: %d, %d bytes, %q, ETag %q (want %q)",
				resp.StatusCode, len(body), resp.Header.Get("Content-Type"), resp.Header.Get("ETag"), etag)
		}
	}
	if resp, body := get(t, m, "/storage/"+diskID, "Range", "bytes=10-19"); resp.StatusCode != http.StatusPartialContent || body != string(onDisk[10:20]) {
		t.Fatalf("range with the database down: %d", resp.StatusCode)
	}
	if resp, _ := get(t, m, "/storage/"+goneID); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("missing file with the database down: %d, want 503 with Retry-After", resp.StatusCode)
	}
	if resp, page := get(t, m, "/"); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "unavailable") {
		t.Fatalf("feed with the database down: %d", resp.StatusCode)
	}

	restore(t, m, proxy)
	testutil.Eventually(t, 30*time.Second, "missing image served again", func() bool {
		resp, body := get(t, m, "/storage/"+goneID)
		return resp.StatusCode == 200 && body == string(gone)
	})
	if disk, err := os.ReadFile(uploadsFile(m, goneID)); err != nil || !bytes.Equal(disk, gone) {
		t.Fatalf("file not rewritten after the outage: %v", err)
	}
}

// uploadsFolderUnwritable: when files cannot be written the post is still
// saved (the database is the record) and its image is served from the
// database copy; once the folder is back the file is rewritten.
func uploadsFolderUnwritable(t *testing.T, m *testmesh.Mesh) {
	first := testutil.PNG(t, 12, 12)
	uploadPhoto(t, m, "before", pngFile("a.png", first))
	firstID := newest(t, m)[0].Image.ID

	// Tests run as root, and root writes into a folder whatever its mode.
	// No one can create a file inside a regular file (ENOTDIR): the folder
	// is moved away and a regular file takes its name.
	away := m.UploadsDir + ".away"
	if err := os.Rename(m.UploadsDir, away); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.UploadsDir, []byte("not a folder"), 0o600); err != nil {
		t.Fatal(err)
	}
	photo := noisePNG(t, 64, 64, 3) // too large for the edge's cache: every read reaches the blob service
	uploadPhoto(t, m, "folder unwritable", pngFile("b.png", photo))
	img := newest(t, m)[0].Image
	if _, dbCopy, err := m.Store.ImageData(t.Context(), mustID(t, img.ID)); err != nil || !bytes.Equal(dbCopy, photo) {
		t.Fatalf("post saved without its image: %v", err)
	}
	for id, want := range map[string][]byte{img.ID: photo, firstID: first} {
		if resp, body := get(t, m, "/storage/"+id); resp.StatusCode != 200 || body != string(want) {
			t.Fatalf("/storage/%s with the folder unwritable: %d, %d bytes", id, resp.StatusCode, len(body))
		}
	}
	// The folder is back: the next read rewrites the missing file.
	if err := os.Remove(m.UploadsDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(away, m.UploadsDir); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, m, "/storage/"+img.ID); resp.StatusCode != 200 {
		t.Fatalf("after the folder came back: %d", resp.StatusCode)
	}
	if disk, err := os.ReadFile(uploadsFile(m, img.ID)); err != nil || !bytes.Equal(disk, photo) {
		t.Fatalf("file not rewritten: %v", err)
	}
	noTempFiles(t, m)
}

// stopDatabaseDuringUploads runs concurrent uploads and cuts the link to
// MySQL part-way through, then restores it. Every answer is 303 or 503,
// and every post answered 303 is complete: its row, its image row with the
// uploaded bytes, and its file on disk or restorable from the database.
// Then every upload answered 503 is sent again, as its user would, with
// the form's token: each is answered 303, and no post exists twice, not
// even one whose first try was committed while its answer was lost.
func stopDatabaseDuringUploads(t *testing.T, m *testmesh.Mesh, direct store.Store, proxy *testproxy.Proxy) {
	const (
		total   = 80
		workers = 8
		cutAt   = 20 // answers before the cut
		backAt  = 50 // answers before the link is restored
	)
	photos := make([][]byte, total)
	for i := range photos {
		photos[i] = noisePNG(t, 48, 48, uint64(i))
	}
	// Upload i's form carries the one-time token its page gave it.
	form := func(i int) ([]byte, string) {
		return testutil.Form(t, [][2]string{{"idempotency_key", fmt.Sprintf("outage-token-%03d", i)},
			{"post", fmt.Sprintf("outage upload %03d", i)}}, pngFile("p.png", photos[i]))
	}
	codesSeen := make([]int, total)
	var answered atomic.Int64
	var cutOnce, restoreOnce sync.Once
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				body, ct := form(i)
				resp, err := m.Client.Post(m.URL+"/upload.php", ct, bytes.NewReader(body))
				if err != nil {
					t.Errorf("upload %d: %v", i, err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codesSeen[i] = resp.StatusCode
				switch answered.Add(1) {
				case cutAt:
					cutOnce.Do(proxy.Cut)
				case backAt:
					restoreOnce.Do(func() {
						if err := proxy.Restore(); err != nil {
							t.Error(err)
						}
					})
				}
			}
		})
	}
	for i := range total {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	restore(t, m, proxy)

	var ok, unavailable int
	for i, c := range codesSeen {
		switch c {
		case http.StatusSeeOther:
			ok++
		case http.StatusServiceUnavailable:
			unavailable++
		default:
			t.Errorf("upload %d answered %d, want 303 or 503", i, c)
		}
	}
	t.Logf("%d uploads: %d answered 303, %d answered 503", total, ok, unavailable)
	if ok == 0 || unavailable == 0 {
		t.Fatalf("want both successes and refusals around the outage, got %d and %d", ok, unavailable)
	}

	stored := map[string]store.Post{}
	for _, p := range allPosts(t, direct) {
		stored[p.Text] = p
	}
	for i, c := range codesSeen {
		p, found := stored[fmt.Sprintf("outage upload %03d", i)]
		switch {
		case !found && c == http.StatusSeeOther:
			t.Errorf("upload %d answered 303 but is not in the database", i)
			continue
		case !found:
			continue
		case c != http.StatusSeeOther:
			// The answer to the commit was lost in the cut: the post
			// must be whole too.
			t.Logf("upload %d answered 503 but was committed: checking it is whole", i)
		}
		if p.Image == nil {
			t.Errorf("upload %d: post without its image", i)
			continue
		}
		img, data, err := direct.ImageData(t.Context(), p.Image.ID)
		if err != nil || !bytes.Equal(data, photos[i]) || img.SHA256 != sha256.Sum256(photos[i]) {
			t.Errorf("upload %d: image row incomplete or wrong: %v", i, err)
			continue
		}
		if disk, err := os.ReadFile(uploadsFile(m, p.Image.ID.String())); err != nil || !bytes.Equal(disk, photos[i]) {
			// Not on disk: the blob service restores it from the database.
			if resp, body := get(t, m, "/storage/"+p.Image.ID.String()); resp.StatusCode != 200 || body != string(photos[i]) {
				t.Errorf("upload %d: file missing and not restorable: %d", i, resp.StatusCode)
			}
		}
	}

	// The users whose upload answered 503 send it again, with the same
	// token: every one is stored once.
	for i, c := range codesSeen {
		if c != http.StatusSeeOther {
			body, ct := form(i)
			if resp, page := post(t, m, body, ct); resp.StatusCode != http.StatusSeeOther {
				t.Errorf("upload %d sent again: %d\n%s", i, resp.StatusCode, page)
			}
		}
	}
	times := map[string]int{}
	for _, p := range allPosts(t, direct) {
		times[p.Text]++
	}
	for i := range total {
		if n := times[fmt.Sprintf("outage upload %03d", i)]; n != 1 {
			t.Errorf("upload %d is stored %d times after the retries, want once", i, n)
		}
	}
	noTempFiles(t, m)
}
