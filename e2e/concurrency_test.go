package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
)

// TestConcurrentUploads sends 200 photo uploads through the edge at once:
// 200 posts, 200 files, every checksum matching the bytes sent, no id
// used twice, no error.
func TestConcurrentUploads(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		const n = 200
		m := testmesh.Start(t, testmesh.Options{Store: st})
		photos := make([][]byte, n)
		bodies := make([][]byte, n)
		types := make([]string, n)
		for i := range n {
			photos[i] = noisePNG(t, 40, 40, uint64(1000+i))
			bodies[i], types[i] = testutil.Form(t, [][2]string{{"post", fmt.Sprintf("concurrent %03d", i)}}, testutil.Photo("p.png", "image/png", photos[i]))
		}
		status := make([]int, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPost, m.URL+"/upload.php", bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", types[i])
				<-start
				resp, err := m.Client.Do(req)
				if err != nil {
					t.Errorf("upload %d: %v", i, err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				status[i] = resp.StatusCode
			})
		}
		began := time.Now()
		close(start)
		wg.Wait()
		took := time.Since(began)
		t.Logf("%d concurrent uploads of %d-byte PNGs in %v (%.0f uploads/s)", n, len(photos[0]), took.Round(time.Millisecond), n/took.Seconds())
		for i, c := range status {
			if c != http.StatusSeeOther {
				t.Errorf("upload %d: status %d, want 303", i, c)
			}
		}

		ps, err := st.ListPosts(t.Context(), store.ListOptions{Limit: store.MaxListLimit})
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != n {
			t.Fatalf("%d posts, want %d", len(ps), n)
		}
		ids := map[contract.ID]bool{}
		byText := map[string]store.Post{}
		for _, p := range ps {
			if p.Image == nil {
				t.Fatalf("post %q has no image", p.Text)
			}
			if ids[p.ID] || ids[p.Image.ID] {
				t.Fatalf("id used twice: %s / %s", p.ID, p.Image.ID)
			}
			ids[p.ID], ids[p.Image.ID] = true, true
			byText[p.Text] = p
		}
		for i, photo := range photos {
			p, ok := byText[fmt.Sprintf("concurrent %03d", i)]
			if !ok {
				t.Fatalf("upload %d missing", i)
			}
			if p.Image.SHA256 != sha256.Sum256(photo) || p.Image.Size != int64(len(photo)) {
				t.Errorf("upload %d: recorded checksum or size does not match the photo", i)
			}
			disk, err := os.ReadFile(uploadsFile(m, p.Image.ID.String()))
			if err != nil || sha256.Sum256(disk) != p.Image.SHA256 {
				t.Errorf("upload %d: file %s missing or not matching its checksum: %v", i, p.Image.ID, err)
			}
		}
		if files := folder(t, m); len(files) != n {
			t.Errorf("%d files in the uploads folder, want %d", len(files), n)
		}
	})
}
