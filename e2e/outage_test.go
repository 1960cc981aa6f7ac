package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testproxy"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/internal/uploads"
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
	direct = open(dsn)
	through = open(cfg.FormatDSN())
	return through, direct, proxy
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

// healthOf asks a service's health endpoint for its status.
func healthOf(t *testing.T, m *testmesh.Mesh, addr, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	r, err := healthpb.NewHealthClient(m.Conn(t, addr)).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN
	}
	return r.GetStatus()
}

// waitReady waits until the edge has a ready connection to every service
// again (a service whose database came back reports SERVING within its
// one-second health check).
func waitReady(t *testing.T, m *testmesh.Mesh) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, "/readyz", func() bool {
		resp, err := m.Client.Get(m.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// TestUploadWhileDatabaseUnreachable cuts the link to MySQL, before an
// upload and in the middle of one: 503 with a message and Retry-After,
// nothing in the database, nothing on disk. Once the link is back, uploads
// work again.
func TestUploadWhileDatabaseUnreachable(t *testing.T) {
	through, direct, proxy := proxiedMySQL(t)
	m := testmesh.Start(t, testmesh.Options{Store: through})
	uploadPhoto(t, m, "before the outage", testutil.Photo("a.png", "image/png", testutil.PNG(t, 8, 8)))
	wantFiles := strings.Join(folder(t, m), " ")
	photo := noisePNG(t, 200, 200, 1) // 120 KB: streamed in two chunks
	check := func(t *testing.T, resp *http.Response, page string) {
		t.Helper()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503; page:\n%.2000s", resp.StatusCode, page)
		}
		if resp.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
		if !strings.Contains(page, "unavailable right now") || !strings.Contains(page, `role="alert"`) {
			t.Errorf("no message in the page:\n%.2000s", page)
		}
		if got := strings.Join(folder(t, m), " "); got != wantFiles {
			t.Errorf("uploads folder changed: %q, want %q", got, wantFiles)
		}
		if n := countPosts(t, direct); n != 1 {
			t.Errorf("%d posts stored, want 1", n)
		}
	}

	t.Run("cut before the upload", func(t *testing.T) {
		proxy.Cut()
		body, ct := testutil.Form(t, [][2]string{{"post", "during the outage"}}, testutil.Photo("b.png", "image/png", photo))
		resp, page := post(t, m, body, ct)
		check(t, resp, page)
		if err := proxy.Restore(); err != nil {
			t.Fatal(err)
		}
		waitReady(t, m)
	})

	t.Run("cut in the middle of the upload", func(t *testing.T) {
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		req, _ := http.NewRequest(http.MethodPost, m.URL+"/upload.php", pr)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		type answer struct {
			resp *http.Response
			page string
			err  error
		}
		answers := make(chan answer, 1)
		go func() {
			resp, err := m.Client.Do(req)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers <- answer{resp, string(b), err}
		}()
		before := counter(t, m.Metrics["upload"], "grpc_server_started_total", "Upload")
		_ = mw.WriteField("post", "cut mid-upload")
		fw, _ := mw.CreateFormFile("photo", "c.png")
		// More than the edge's first 64 KiB chunk, so the stream opens.
		half := len(photo) * 3 / 4
		if _, err := fw.Write(photo[:half]); err != nil {
			t.Fatal(err)
		}
		// The edge has opened the upload stream and is sending chunks.
		testutil.Eventually(t, 30*time.Second, "upload stream started", func() bool { return counter(t, m.Metrics["upload"], "grpc_server_started_total", "Upload") > before })
		proxy.Cut()
		_, _ = fw.Write(photo[half:])
		_ = mw.Close()
		_ = pw.Close()
		a := <-answers
		if a.err != nil {
			t.Fatal(a.err)
		}
		check(t, a.resp, a.page)
		if err := proxy.Restore(); err != nil {
			t.Fatal(err)
		}
		waitReady(t, m)
	})

	uploadPhoto(t, m, "after the outage", testutil.Photo("d.png", "image/png", photo))
	if n := countPosts(t, direct); n != 2 {
		t.Fatalf("%d posts after the outage, want 2", n)
	}
	noTempFiles(t, m)
}

// TestDatabaseDownBlobsStillServed cuts the link to MySQL: images whose
// file is on disk are still served, byte for byte with the same headers;
// an image whose file is missing answers 503 until the database is back,
// then it is served and its file rewritten.
func TestDatabaseDownBlobsStillServed(t *testing.T) {
	through, _, proxy := proxiedMySQL(t)
	m := testmesh.Start(t, testmesh.Options{Store: through})
	onDisk := testutil.JPEG(t, 120, 90)
	uploadPhoto(t, m, "on disk", testutil.Photo("a.jpg", "image/jpeg", onDisk))
	gone := testutil.PNG(t, 30, 20)
	uploadPhoto(t, m, "file gone", testutil.Photo("b.png", "image/png", gone))
	posts := listAPI(t, m, "").Posts
	goneID, diskID := posts[0].Image.ID, posts[1].Image.ID
	if err := os.Remove(uploadsFile(m, goneID)); err != nil {
		t.Fatal(err)
	}
	resp, _ := get(t, m, "/storage/"+diskID)
	etag := resp.Header.Get("ETag")

	proxy.Cut()
	// The upload service's health check has seen the outage.
	testutil.Eventually(t, 30*time.Second, "upload NOT_SERVING", func() bool {
		return healthOf(t, m, m.UploadAddr, "extagram.upload.v1.UploadService") == healthpb.HealthCheckResponse_NOT_SERVING
	})
	if s := healthOf(t, m, m.BlobAddr, "extagram.blob.v1.BlobService"); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("blob health with the database down: %v, want SERVING (it can serve files)", s)
	}
	for range 3 { // several times: every blob call goes without the database
		resp, body := get(t, m, "/storage/"+diskID)
		if resp.StatusCode != 200 || body != string(onDisk) || resp.Header.Get("Content-Type") != "image/jpeg" || resp.Header.Get("ETag") != etag {
			t.Fatalf("file on disk with the database down: %d, %d bytes, %q, ETag %q (want %q)",
				resp.StatusCode, len(body), resp.Header.Get("Content-Type"), resp.Header.Get("ETag"), etag)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, m.URL+"/storage/"+diskID, nil)
	req.Header.Set("Range", "bytes=10-19")
	if resp, body := do(t, m, req); resp.StatusCode != http.StatusPartialContent || body != string(onDisk[10:20]) {
		t.Fatalf("range with the database down: %d", resp.StatusCode)
	}
	resp, _ = get(t, m, "/storage/"+goneID)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("missing file with the database down: %d, want 503 with Retry-After", resp.StatusCode)
	}
	if resp, page := get(t, m, "/"); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "unavailable") {
		t.Fatalf("feed with the database down: %d", resp.StatusCode)
	}

	if err := proxy.Restore(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "missing image served again", func() bool {
		resp, body := get(t, m, "/storage/"+goneID)
		return resp.StatusCode == 200 && body == string(gone)
	})
	if disk, err := os.ReadFile(uploadsFile(m, goneID)); err != nil || !bytes.Equal(disk, gone) {
		t.Fatalf("file not rewritten after the outage: %v", err)
	}
}

// TestUploadsFolderUnwritable: when files cannot be written the post is
// still saved (the database is the record) and its image is served from
// the database copy; once the folder is back the file is rewritten.
func TestUploadsFolderUnwritable(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		// Without the edge's image cache, every read reaches the blob
		// service, whose repair this is about.
		m := testmesh.Start(t, testmesh.Options{Store: st, ImageCacheBytes: -1})
		first := testutil.PNG(t, 12, 12)
		uploadPhoto(t, m, "before", testutil.Photo("a.png", "image/png", first))
		firstID := listAPI(t, m, "").Posts[0].Image.ID

		// Tests run as root, and root writes into a folder whatever its
		// mode (chmod 0500 stops nothing). No one, root included, can
		// create a file inside a regular file (ENOTDIR): the folder is
		// moved away and a regular file takes its name.
		away := m.UploadsDir + ".away"
		if err := os.Rename(m.UploadsDir, away); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(m.UploadsDir, []byte("not a folder"), 0o600); err != nil {
			t.Fatal(err)
		}
		photo := testutil.JPEG(t, 80, 60)
		uploadPhoto(t, m, "folder unwritable", testutil.Photo("b.jpg", "image/jpeg", photo))
		img := listAPI(t, m, "").Posts[0].Image
		_, dbCopy, err := st.ImageData(t.Context(), mustID(t, img.ID))
		if err != nil || !bytes.Equal(dbCopy, photo) {
			t.Fatalf("post saved without its image: %v", err)
		}
		for id, want := range map[string][]byte{img.ID: photo, firstID: first} {
			resp, body := get(t, m, "/storage/"+id)
			if resp.StatusCode != 200 || body != string(want) {
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
	})
}

// TestStopDatabaseDuringUploads runs concurrent uploads and cuts the link
// to MySQL part-way through, then restores it. Every answer is 303 or 503,
// and every post answered 303 is complete: its row, its image row with the
// uploaded bytes, and its file on disk or restorable from the database.
// Then every upload answered 503 is sent again, as its user would, with
// the form's token: each is answered 303, and no post exists twice, not
// even one whose first try was committed while its answer was lost.
func TestStopDatabaseDuringUploads(t *testing.T) {
	through, direct, proxy := proxiedMySQL(t)
	m := testmesh.Start(t, testmesh.Options{Store: through})
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
	codesSeen := make([]int, total)
	var answered atomic.Int64
	var cutOnce, restoreOnce sync.Once
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				body, ct := outageForm(t, i, photos[i])
				req, _ := http.NewRequest(http.MethodPost, m.URL+"/upload.php", bytes.NewReader(body))
				req.Header.Set("Content-Type", ct)
				resp, err := m.Client.Do(req)
				if err != nil {
					t.Errorf("upload %d: %v", i, err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codesSeen[i] = resp.StatusCode
				switch n := answered.Add(1); {
				case n == cutAt:
					cutOnce.Do(proxy.Cut)
				case n == backAt:
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
	if err := proxy.Restore(); err != nil {
		t.Fatal(err)
	}

	var ok, unavailable int
	retried := slices.Clone(codesSeen)
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

	// Every post in the database, by text.
	stored := map[string]store.Post{}
	ps, err := direct.ListPosts(t.Context(), store.ListOptions{Limit: store.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		stored[p.Text] = p
	}
	waitReady(t, m)
	for i, c := range codesSeen {
		p, found := stored[fmt.Sprintf("outage upload %03d", i)]
		if c != http.StatusSeeOther {
			// A 503 may still have committed (the answer to the commit
			// was lost in the cut); then the post must be whole too.
			if !found {
				continue
			}
			t.Logf("upload %d answered 503 but was committed: checking it is whole", i)
		}
		if !found {
			t.Errorf("upload %d answered 303 but is not in the database", i)
			continue
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
			resp, body := get(t, m, "/storage/"+p.Image.ID.String())
			if resp.StatusCode != 200 || body != string(photos[i]) {
				t.Errorf("upload %d: file missing and not restorable: %d", i, resp.StatusCode)
			}
		}
	}

	// The users whose upload answered 503 send it again, with the same
	// token: every one is stored once.
	for i, c := range retried {
		if c == http.StatusSeeOther {
			continue
		}
		body, ct := outageForm(t, i, photos[i])
		if resp, page := post(t, m, body, ct); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("upload %d sent again: %d\n%s", i, resp.StatusCode, page)
		}
	}
	ps, err = direct.ListPosts(t.Context(), store.ListOptions{Limit: store.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	times := map[string]int{}
	for _, p := range ps {
		times[p.Text]++
	}
	for i := range total {
		if n := times[fmt.Sprintf("outage upload %03d", i)]; n != 1 {
			t.Errorf("upload %d is stored %d times after the retries, want once", i, n)
		}
	}
	noTempFiles(t, m)
}

// outageForm is upload i's form, with the one-time token its page gave it
// (the same each time it is sent).
func outageForm(t *testing.T, i int, photo []byte) ([]byte, string) {
	return testutil.Form(t, [][2]string{{"idempotency_key", fmt.Sprintf("outage-token-%03d", i)}, {"post", fmt.Sprintf("outage upload %03d", i)}}, testutil.Photo("p.png", "image/png", photo))
}

// noTempFiles fails the test when a temp file was left in the uploads
// folder.
func noTempFiles(t *testing.T, m *testmesh.Mesh) {
	t.Helper()
	for _, name := range folder(t, m) {
		if uploads.IsTemp(name) {
			t.Errorf("temp file left: %s", name)
		}
	}
}
