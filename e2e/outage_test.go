package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
	kept := noisePNG(t, 60, 60, 2) // too large for the edge's cache: every read reaches the blob service
	uploadPhoto(t, m, "on disk", pngFile("a.png", kept))
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
	resp, page := post(t, m, newForm(t, "during the outage", pngFile("c.png", noisePNG(t, 200, 200, 1))))
	refused(t, m, resp, page, before)
	for range 3 { // several times: every blob call goes without the database
		resp, body := get(t, m, "/storage/"+diskID)
		if resp.StatusCode != 200 || body != string(kept) || resp.Header.Get("Content-Type") != "image/png" || resp.Header.Get("ETag") != etag {
			t.Fatalf("file on disk with the database down: %d, %d bytes, %q, ETag %q (want %q)",
				resp.StatusCode, len(body), resp.Header.Get("Content-Type"), resp.Header.Get("ETag"), etag)
		}
	}
	if resp, body := get(t, m, "/storage/"+diskID, "Range", "bytes=10-19"); resp.StatusCode != http.StatusPartialContent || body != string(kept[10:20]) {
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
	if !bytes.Equal(onDisk(m, goneID), gone) {
		t.Fatalf("file not rewritten after the outage")
	}
}

// cutMidUpload cuts MySQL while the edge streams a photo to UploadService: 503.
func cutMidUpload(t *testing.T, m *testmesh.Mesh, proxy *testproxy.Proxy) {
	before, photo := snap(t, m), noisePNG(t, 200, 200, 1) // 120 KB: streamed in two chunks
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
	must(t, os.Remove(m.UploadsDir))
	must(t, os.Rename(away, m.UploadsDir))
	if resp, _ := get(t, m, "/storage/"+img.ID); resp.StatusCode != 200 || !bytes.Equal(onDisk(m, img.ID), photo) {
		t.Fatalf("after the folder came back: %d, file rewritten: %v", resp.StatusCode, bytes.Equal(onDisk(m, img.ID), photo))
	}
	folder(t, m) // no temp file left
}

// stopDatabaseDuringUploads cuts MySQL during concurrent uploads: each is
// 303 or 503, every post stored (even after a 503 whose commit went through)
// is whole, and sent again with its token each is stored once.
func stopDatabaseDuringUploads(t *testing.T, m *testmesh.Mesh, proxy *testproxy.Proxy) {
	const total, cutAt, backAt = 80, 20, 50 // cut and restored after so many answers
	photos, forms := make([][]byte, total), make([]form, total)
	for i := range total {
		photos[i] = noisePNG(t, 48, 48, uint64(i))
		forms[i] = newForm(t, fmt.Sprintf("outage upload %03d", i), pngFile("p.png", photos[i]), "idempotency_key", fmt.Sprintf("outage-token-%03d", i))
	}
	var answered atomic.Int64
	codes := postAll(t, m, 8, forms, func() {
		switch answered.Add(1) {
		case cutAt:
			proxy.Cut()
		case backAt:
			if err := proxy.Restore(); err != nil {
				t.Error(err)
			}
		}
	})
	restore(t, m, proxy)
	refused, stored := 0, byText(t, m)
	for i, c := range codes {
		if c == http.StatusServiceUnavailable {
			refused++
		} else if c != http.StatusSeeOther {
			t.Errorf("upload %d answered %d, want 303 or 503", i, c)
		}
		ps := stored[fmt.Sprintf("outage upload %03d", i)]
		switch {
		case len(ps) == 0:
			if c == http.StatusSeeOther {
				t.Errorf("upload %d answered 303 but is not in the database", i)
			}
			continue
		case ps[0].Image == nil:
			t.Errorf("upload %d (answered %d): post without its image", i, c)
			continue
		}
		img, data, err := m.Store.ImageData(t.Context(), ps[0].Image.ID)
		if err != nil || !bytes.Equal(data, photos[i]) || img.SHA256 != sha256.Sum256(photos[i]) {
			t.Errorf("upload %d (answered %d): image row incomplete or wrong: %v", i, c, err)
		} else if id := ps[0].Image.ID.String(); !bytes.Equal(onDisk(m, id), photos[i]) {
			// Not on disk: the blob service restores it from the database.
			if resp, body := get(t, m, "/storage/"+id); resp.StatusCode != 200 || body != string(photos[i]) {
				t.Errorf("upload %d: file missing and not restorable: %d", i, resp.StatusCode)
			}
		}
	}
	if t.Logf("%d uploads: %d answered 503", total, refused); refused == 0 || refused == total {
		t.Fatalf("want both successes and refusals around the outage, got %d refusals", refused)
	}
	for i := range total { // each with its token: the 303s replayed, the 503s stored now
		if resp, page := post(t, m, forms[i]); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("upload %d sent again: %d\n%s", i, resp.StatusCode, page)
		}
	}
	stored = byText(t, m)
	for i := range total {
		if n := len(stored[fmt.Sprintf("outage upload %03d", i)]); n != 1 {
			t.Errorf("upload %d is stored %d times after the retries, want once", i, n)
		}
	}
	folder(t, m) // no temp file left
}
