package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testproxy"
	"github.com/extagram/extagram/internal/testutil"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// restore restores the link to MySQL and waits until the mesh is ready.
func restore(t *testing.T, m *testmesh.Mesh, proxy *testproxy.Proxy) {
	t.Helper()
	must(t, proxy.Restore())
	m.WaitReady(t)
}

// refused checks an upload's 503 while MySQL is out of reach: nothing stored.
func refused(t *testing.T, m *testmesh.Mesh, resp *http.Response, page string, before snapshot) {
	t.Helper()
	if httpRefused(t, resp, page, http.StatusServiceUnavailable, "unavailable right now"); resp.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	before.unchanged(t, m)
}

// databaseDown: without MySQL, uploads are refused, images on disk served
// as before, and one whose file is missing 503 until its file is rewritten.
func databaseDown(t *testing.T, m *testmesh.Mesh, proxy *testproxy.Proxy) {
	kept := testutil.JPEG(t, 400, 300) // too large for the edge's cache (storageRoutes): every read reaches the blob service
	uploadPhoto(t, m, "on disk", testutil.Photo("a.jpg", "image/jpeg", kept))
	gone := testutil.PNG(t, 30, 20)
	uploadPhoto(t, m, "file gone", pngFile("b.png", gone))
	posts := newest(t, m)
	goneID, diskID := posts[0].Image.ID, posts[1].Image.ID
	must(t, os.Remove(filepath.Join(m.UploadsDir, goneID)))
	resp, _ := get(t, m, "/storage/"+diskID)
	etag, before := resp.Header.Get("ETag"), snap(t, m)
	proxy.Cut()
	testutil.Eventually(t, 30*time.Second, "upload NOT_SERVING", func() bool {
		return health(t, m, m.UploadAddr, "extagram.upload.v1.UploadService") == healthpb.HealthCheckResponse_NOT_SERVING
	})
	if s := health(t, m, m.BlobAddr, "extagram.blob.v1.BlobService"); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("blob health with the database down: %v, want SERVING (it can serve files)", s)
	}
	resp, page := post(t, m, newForm(t, "during the outage", pngFile("c.png", gone)))
	refused(t, m, resp, page, before)
	for range 3 { // several times: every blob call goes without the database (ranges too: blobsvc's tests)
		resp, body := get(t, m, "/storage/"+diskID)
		if resp.StatusCode != 200 || body != string(kept) || resp.Header.Get("Content-Type") != "image/jpeg" || resp.Header.Get("ETag") != etag {
			t.Fatalf("file on disk with the database down: %d, %d bytes, %q, ETag %q (want %q)",
				resp.StatusCode, len(body), resp.Header.Get("Content-Type"), resp.Header.Get("ETag"), etag)
		}
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
	if !bytes.Equal(onDisk(m, goneID), gone) {
		t.Fatalf("file not rewritten after the outage")
	}
}

// cutMidUpload cuts MySQL while the edge streams a photo to UploadService: 503.
func cutMidUpload(t *testing.T, m *testmesh.Mesh, proxy *testproxy.Proxy) {
	// 160 KB, uncompressed: streamed in several chunks.
	before, photo := snap(t, m), testutil.EncodePNG(t, image.NewNRGBA(image.Rect(0, 0, 200, 200)), png.NoCompression)
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	answer := make(chan *http.Response, 1)
	go func() {
		resp, err := m.Client.Post(m.URL+"/upload.php", mw.FormDataContentType(), pr)
		if err != nil {
			t.Error(err)
		}
		answer <- resp
	}()
	started := func() int { return counter(t, "grpc_server_started_total", "Upload", m.Metrics["upload"]) }
	n := started()
	_ = mw.WriteField("post", "cut mid-upload")
	fw, _ := mw.CreateFormFile("photo", "c.png")
	// More than the edge's first 64 KiB chunk, so the stream opens.
	_, err := fw.Write(photo[:len(photo)*3/4])
	must(t, err)
	testutil.Eventually(t, 30*time.Second, "upload stream started", func() bool { return started() > n })
	proxy.Cut()
	_, _ = fw.Write(photo[len(photo)*3/4:])
	_ = mw.Close()
	_ = pw.Close()
	resp := <-answer
	if resp == nil {
		t.FailNow()
	}
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	must(t, err)
	refused(t, m, resp, string(page), before)
	restore(t, m, proxy)
}

// uploadsFolderUnwritable: posts are saved and served from the database copy.
func uploadsFolderUnwritable(t *testing.T, m *testmesh.Mesh) {
	first := testutil.PNG(t, 12, 12)
	uploadPhoto(t, m, "before", pngFile("a.png", first))
	firstID := newest(t, m)[0].Image.ID
	// Root writes into any folder, but not into a file (ENOTDIR).
	away := m.UploadsDir + ".away"
	must(t, os.Rename(m.UploadsDir, away))
	must(t, os.WriteFile(m.UploadsDir, []byte("not a folder"), 0o600))
	photo := testutil.JPEG(t, 400, 300) // too large for the edge's cache: every read reaches the blob service
	uploadPhoto(t, m, "folder unwritable", testutil.Photo("b.jpg", "image/jpeg", photo))
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
	must(t, os.Remove(m.UploadsDir))
	must(t, os.Rename(away, m.UploadsDir))
	if resp, _ := get(t, m, "/storage/"+img.ID); resp.StatusCode != 200 || !bytes.Equal(onDisk(m, img.ID), photo) {
		t.Fatalf("after the folder came back: %d, file rewritten: %v", resp.StatusCode, bytes.Equal(onDisk(m, img.ID), photo))
	}
	folder(t, m) // no temp file left
}

// concurrentUploads sends n uploads, each with its token, from workers at
// once, and tells outage (if any) of every answer: it cuts MySQL in
// between. Each is answered 303, or 503 around an outage; every post
// stored (even after a 503 whose commit went through) is whole, with ids
// of its own, and stored once (after an outage: once sent again). It
// returns the 503s.
func concurrentUploads(t *testing.T, m *testmesh.Mesh, name string, n, workers int, outage func(answered int64)) (refused int) {
	files := len(folder(t, m))
	photos, forms, codes, jobs := make([][]byte, n), make([]form, n), make([]int, n), make(chan int)
	for i := range n {
		photos[i] = testutil.PNG(t, 8+i, 8) // each its own
		forms[i] = newForm(t, fmt.Sprintf("%s %03d", name, i), pngFile("p.png", photos[i]), "idempotency_key", fmt.Sprintf("%s-%03d", name, i))
	}
	var answered atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				resp, err := m.Client.Post(m.URL+"/upload.php", forms[i].ct, bytes.NewReader(forms[i].body))
				if err != nil {
					t.Errorf("upload %d: %v", i, err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes[i] = resp.StatusCode
				if a := answered.Add(1); outage != nil {
					outage(a)
				}
			}
		})
	}
	for i := range forms {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	m.WaitReady(t)
	stored, ids := byText(t, m), map[contract.ID]bool{}
	for i, c := range codes {
		if c == http.StatusServiceUnavailable && outage != nil {
			refused++
		} else if c != http.StatusSeeOther {
			t.Errorf("upload %d answered %d, want 303 (or 503 around an outage)", i, c)
		}
		ps := stored[fmt.Sprintf("%s %03d", name, i)]
		switch {
		case len(ps) == 0:
			if c == http.StatusSeeOther {
				t.Errorf("upload %d answered 303 but is not in the database", i)
			}
			continue
		case ps[0].Image == nil || ids[ps[0].ID] || ids[ps[0].Image.ID]:
			t.Errorf("upload %d (answered %d): post without its image, or an id used twice", i, c)
			continue
		}
		ids[ps[0].ID], ids[ps[0].Image.ID] = true, true
		img, data, err := m.Store.ImageData(t.Context(), ps[0].Image.ID)
		if err != nil || !bytes.Equal(data, photos[i]) || img.SHA256 != sha256.Sum256(photos[i]) || img.Size != int64(len(photos[i])) {
			t.Errorf("upload %d (answered %d): image row incomplete or wrong: %v", i, c, err)
		} else if id := ps[0].Image.ID.String(); !bytes.Equal(onDisk(m, id), photos[i]) {
			if outage == nil {
				t.Errorf("upload %d: its file is not the photo", i)
			} else if resp, body := get(t, m, "/storage/"+id); resp.StatusCode != 200 || body != string(photos[i]) {
				// Not on disk after an outage: the blob service restores it from the database.
				t.Errorf("upload %d: file missing and not restorable: %d", i, resp.StatusCode)
			}
		}
	}
	if outage == nil && len(folder(t, m)) != files+n {
		t.Errorf("%d files in the uploads folder, want %d", len(folder(t, m)), files+n)
	}
	if outage != nil {
		for i := range n { // each with its token: the 303s replayed, the 503s stored now
			if resp, page := post(t, m, forms[i]); resp.StatusCode != http.StatusSeeOther {
				t.Errorf("upload %d sent again: %d\n%s", i, resp.StatusCode, page)
			}
		}
		stored = byText(t, m)
	}
	for i := range n {
		if k := len(stored[fmt.Sprintf("%s %03d", name, i)]); k != 1 {
			t.Errorf("upload %d is stored %d times, want once", i, k)
		}
	}
	folder(t, m) // no temp file left
	return refused
}

// stopDatabaseDuringUploads cuts MySQL during concurrent uploads and
// restores it: some are refused, some not.
func stopDatabaseDuringUploads(t *testing.T, m *testmesh.Mesh, proxy *testproxy.Proxy) {
	const total, cutAt, backAt = 80, 20, 50 // cut and restored after so many answers
	refused := concurrentUploads(t, m, "outage", total, 8, func(answered int64) {
		switch answered {
		case cutAt:
			proxy.Cut()
		case backAt:
			if err := proxy.Restore(); err != nil {
				t.Error(err)
			}
		}
	})
	if t.Logf("%d uploads: %d answered 503", total, refused); refused == 0 || refused == total {
		t.Fatalf("want both successes and refusals around the outage, got %d refusals", refused)
	}
}
