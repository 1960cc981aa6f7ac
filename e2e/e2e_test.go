// Package e2e tests the whole mesh over real TCP on 127.0.0.1: the HTTPS
// edge, two feed replicas, upload and blob, against the MySQL store and the
// embedded store.
package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
)

func TestPhotoPostEndToEnd(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		m := testmesh.Start(t, testmesh.Options{Store: st})
		photo := testutil.PNG(t, 120, 80)
		const evil = `first, text only <script>alert(1)</script><img src=x onerror=alert(2)>`
		uploadPhoto(t, m, evil, nil)
		uploadPhoto(t, m, "hello from the beach", testutil.Photo("beach.png", "image/png", photo))

		resp, page := get(t, m, "/")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /: %d", resp.StatusCode)
		}
		// The text is escaped on the page, verbatim in the API.
		if got := pagePosts(page); len(got) != 2 || got[0] != "hello from the beach" || got[1] != html.EscapeString(evil) {
			t.Fatalf("feed page posts = %q, want the photo post first, then the text-only one, escaped", got)
		}
		if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img src=x") {
			t.Fatalf("post text rendered as HTML:\n%s", page)
		}
		l := listAPI(t, m, "")
		if len(l.Posts) != 2 || l.Posts[0].Text != "hello from the beach" || l.Posts[0].Image == nil || l.Posts[1].Image != nil || l.Posts[1].Text != evil {
			t.Fatalf("API posts = %+v", l.Posts)
		}
		img := l.Posts[0].Image
		if img.ContentType != "image/png" || img.Width != 120 || img.Height != 80 || img.SizeBytes != fmt.Sprint(len(photo)) {
			t.Fatalf("API image = %+v, want image/png 120x80 of %d bytes", img, len(photo))
		}
		if !strings.Contains(page, `src="/storage/`+img.ID+`"`) || !strings.Contains(page, `width="120" height="80"`) {
			t.Fatalf("page has no <img> for /storage/%s with its dimensions:\n%s", img.ID, page)
		}

		// The same post through /extagram.php and through GetPost.
		if _, p2 := get(t, m, "/extagram.php"); !strings.Contains(p2, "hello from the beach") {
			t.Fatal("/extagram.php does not show the post")
		}
		if resp, body := get(t, m, "/api/v1/posts/"+l.Posts[0].ID); resp.StatusCode != 200 || !strings.Contains(body, img.ID) {
			t.Fatalf("GET /api/v1/posts/{id}: %d %s", resp.StatusCode, body)
		}

		resp, body := get(t, m, "/storage/"+img.ID)
		if resp.StatusCode != http.StatusOK || !bytes.Equal([]byte(body), photo) {
			t.Fatalf("GET /storage/%s: %d, %d bytes; want the %d uploaded bytes", img.ID, resp.StatusCode, len(body), len(photo))
		}
		sum := sha256.Sum256(photo)
		for k, want := range map[string]string{
			"Content-Type":           "image/png",
			"Content-Length":         fmt.Sprint(len(photo)),
			"ETag":                   `"` + hex.EncodeToString(sum[:]) + `"`,
			"Cache-Control":          "public, max-age=31536000, immutable",
			"X-Content-Type-Options": "nosniff",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("/storage/ %s = %q, want %q", k, got, want)
			}
		}
		if _, err := os.Stat(uploadsFile(m, img.ID)); err != nil {
			t.Errorf("uploads/%s: %v", img.ID, err)
		}
	})
}

func TestErrorPageKeepsText(t *testing.T) {
	m := testmesh.Start(t, testmesh.Options{Store: storeEmbedded(t)})
	body, ct := testutil.Form(t, [][2]string{{"post", "my holiday <3"}}, testutil.Photo("a.png", "image/png", []byte("not an image")))
	resp, page := post(t, m, body, ct)
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if !strings.Contains(page, `value="my holiday &lt;3"`) {
		t.Fatalf("typed text not kept in the form:\n%s", page)
	}
}

func TestFeedPagination(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		m := testmesh.Start(t, testmesh.Options{Store: st})
		for i := range 45 {
			uploadPhoto(t, m, fmt.Sprintf("post %02d", i), nil)
		}
		var seen []string
		path := "/"
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("too many pages")
			}
			_, page := get(t, m, path)
			seen = append(seen, pagePosts(page)...)
			i := strings.Index(page, `href="/?page=`)
			if i < 0 {
				break
			}
			rest := page[i+len(`href="`):]
			path = html.UnescapeString(rest[:strings.IndexByte(rest, '"')])
			if !strings.Contains(page, "Newest") && pages > 0 {
				t.Errorf("page %d has no link back to the newest posts", pages+1)
			}
		}
		if len(seen) != 45 {
			t.Fatalf("saw %d posts over the pages, want 45", len(seen))
		}
		for i, s := range seen {
			if want := fmt.Sprintf("post %02d", 44-i); s != want {
				t.Fatalf("post %d = %q, want %q (newest first, none skipped or repeated)", i, s, want)
			}
		}
		if resp, _ := get(t, m, "/?page=garbage"); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("bad page token: %d, want 400", resp.StatusCode)
		}
	})
}
