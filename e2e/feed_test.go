package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
)

// photoPost: a text-only post and a photo post, on the page (escaped), in
// the API (verbatim), by id, and the photo at /storage/ with its headers.
func photoPost(t *testing.T, m *testmesh.Mesh) {
	photo := testutil.PNG(t, 120, 80)
	const evil = `first, text only <script>alert(1)</script><img src=x onerror=alert(2)>`
	uploadPhoto(t, m, evil, nil)
	uploadPhoto(t, m, "hello from the beach", pngFile("beach.png", photo))

	resp, page := get(t, m, "/")
	if got := pagePosts(page); resp.StatusCode != http.StatusOK || len(got) < 2 || got[0] != "hello from the beach" || got[1] != html.EscapeString(evil) {
		t.Fatalf("GET /: %d, posts %q; want the photo post first, then the text-only one, escaped", resp.StatusCode, got)
	}
	if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img src=x") {
		t.Fatalf("post text rendered as HTML:\n%s", page)
	}
	l := newest(t, m)
	if l[0].Text != "hello from the beach" || l[0].Image == nil || l[1].Image != nil || l[1].Text != evil {
		t.Fatalf("API posts = %+v", l[:2])
	}
	img := l[0].Image
	if img.ContentType != "image/png" || img.Width != 120 || img.Height != 80 || img.SizeBytes != fmt.Sprint(len(photo)) {
		t.Fatalf("API image = %+v, want image/png 120x80 of %d bytes", img, len(photo))
	}
	if !strings.Contains(page, `src="/storage/`+img.ID+`"`) || !strings.Contains(page, `width="120" height="80"`) {
		t.Fatalf("page has no <img> for /storage/%s with its dimensions:\n%s", img.ID, page)
	}
	if _, p2 := get(t, m, "/extagram.php"); !strings.Contains(p2, "hello from the beach") {
		t.Fatal("/extagram.php does not show the post")
	}
	if resp, body := get(t, m, "/api/v1/posts/"+l[0].ID); resp.StatusCode != 200 || !strings.Contains(body, img.ID) {
		t.Fatalf("GET /api/v1/posts/{id}: %d %s", resp.StatusCode, body)
	}

	resp, body := get(t, m, "/storage/"+img.ID)
	if resp.StatusCode != http.StatusOK || !bytes.Equal([]byte(body), photo) {
		t.Fatalf("GET /storage/%s: %d, %d bytes; want the %d uploaded bytes", img.ID, resp.StatusCode, len(body), len(photo))
	}
	sum := sha256.Sum256(photo)
	for k, want := range map[string]string{
		"Content-Type": "image/png", "Content-Length": fmt.Sprint(len(photo)), "ETag": `"` + hex.EncodeToString(sum[:]) + `"`,
		"Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("/storage/ %s = %q, want %q", k, got, want)
		}
	}
	if _, err := os.Stat(uploadsFile(m, img.ID)); err != nil {
		t.Errorf("uploads/%s: %v", img.ID, err)
	}
}

// feedPagination follows the pages' links to older posts: every post once,
// newest first.
func feedPagination(t *testing.T, m *testmesh.Mesh) {
	for i := range 45 {
		uploadPhoto(t, m, fmt.Sprintf("post %02d", i), nil)
	}
	var seen []string
	for path, pages := "/", 0; path != ""; pages++ {
		_, page := get(t, m, path)
		seen = append(seen, pagePosts(page)...)
		if pages > 0 && !strings.Contains(page, "Newest") {
			t.Errorf("page %d has no link back to the newest posts", pages+1)
		}
		path = olderLink(page)
	}
	if n := len(allPosts(t, m.Store)); len(seen) != n {
		t.Fatalf("saw %d posts over the pages, want all %d", len(seen), n)
	}
	for i := range 45 {
		if want := fmt.Sprintf("post %02d", 44-i); seen[i] != want {
			t.Fatalf("post %d = %q, want %q (newest first, none skipped or repeated)", i, seen[i], want)
		}
	}
	if resp, _ := get(t, m, "/?page=garbage"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad page token: %d, want 400", resp.StatusCode)
	}
}

// postPage: GET /posts/{id} is the page of one post, 404 for an unknown id
// and 400 for anything that is not an id, each a page that links to the
// newest posts.
func postPage(t *testing.T, m *testmesh.Mesh) {
	uploadPhoto(t, m, `the <b>one</b> & only`, pngFile("p.png", testutil.PNG(t, 30, 20)))
	uploadPhoto(t, m, "a later post", nil)
	first := newest(t, m)[1]

	resp, page := get(t, m, "/posts/"+first.ID)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /posts/%s: %d %s", first.ID, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got := pagePosts(page); len(got) != 1 || got[0] != "the &lt;b&gt;one&lt;/b&gt; &amp; only" {
		t.Errorf("posts on the page: %q, want the one post, escaped", got)
	}
	if !strings.Contains(page, `src="/storage/`+first.Image.ID+`"`) || !strings.Contains(page, `href="/"`) || resp.Header.Get("Content-Security-Policy") == "" {
		t.Error("the page lacks the photo, the link to the newest posts or the security headers")
	}
	resp, page = get(t, m, "/posts/"+contract.NewID().String())
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(page, "No post has this link") || len(pagePosts(page)) != 0 {
		t.Errorf("unknown id: %d", resp.StatusCode)
	}
	for _, bad := range []string{"nope", strings.Repeat("A", 21) + "B", strings.Repeat("A", 23), "a%20b"} {
		if resp, page := get(t, m, "/posts/"+bad); resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "not valid") {
			t.Errorf("GET /posts/%s: %d, want 400", bad, resp.StatusCode)
		}
	}
	if resp, _ := send(t, m, http.MethodHead, "/posts/"+first.ID, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD: %d", resp.StatusCode)
	}
}

var tokenRE = regexp.MustCompile(`<input type="hidden" name="idempotency_key" value="([A-Za-z0-9_-]{22})">`)

// pageToken returns the upload token of the form on page.
func pageToken(t *testing.T, page string) string {
	t.Helper()
	m := tokenRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no upload token in the page's form")
	}
	return m[1]
}

// uploadIdempotent: every view of the page carries a fresh one-time token
// in its form; sending the same form twice stores one post, and answers
// both with 303; the token sent with another text is 422; the page after a
// refused upload keeps the token it was sent with; API clients get the
// same from the Idempotency-Key header.
func uploadIdempotent(t *testing.T, m *testmesh.Mesh) {
	countText := func(text string) (n int) {
		for _, p := range newest(t, m) {
			if p.Text == text {
				n++
			}
		}
		return n
	}
	_, page1 := get(t, m, "/")
	_, page2 := get(t, m, "/")
	token := pageToken(t, page1)
	if pageToken(t, page2) == token {
		t.Fatal("two views of the page got the same upload token")
	}
	body, ct := testutil.Form(t, [][2]string{{"idempotency_key", token}, {"post", "sent twice"}}, pngFile("a.png", testutil.PNG(t, 20, 20)))
	for i := range 2 {
		if resp, page := post(t, m, body, ct); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("send %d: %d\n%s", i+1, resp.StatusCode, page)
		}
	}
	if n := countText("sent twice"); n != 1 {
		t.Fatalf("the same form sent twice made %d posts, want 1", n)
	}
	body, ct = testutil.Form(t, [][2]string{{"idempotency_key", token}, {"post", "something else"}}, nil)
	if resp, page := post(t, m, body, ct); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "used before") {
		t.Fatalf("the token with another text: %d, want 422 saying so", resp.StatusCode)
	}
	if countText("something else") != 0 {
		t.Fatal("the token with another text stored a post")
	}
	// A refused upload (no text): the page keeps the token.
	fresh := pageToken(t, page2)
	body, ct = testutil.Form(t, [][2]string{{"idempotency_key", fresh}, {"post", "   "}}, nil)
	if resp, page := post(t, m, body, ct); resp.StatusCode != http.StatusBadRequest || pageToken(t, page) != fresh {
		t.Fatalf("after a refused upload: %d, token kept: %v", resp.StatusCode, pageToken(t, page) == fresh)
	}
	body, ct = testutil.Form(t, [][2]string{{"post", "from a script"}}, nil)
	for range 3 {
		if resp, _ := post(t, m, body, ct, "Idempotency-Key", `"3f2c5a9e-retry"`); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("Idempotency-Key upload: %d", resp.StatusCode)
		}
	}
	if n := countText("from a script"); n != 1 {
		t.Fatalf("three sends with one Idempotency-Key made %d posts, want 1", n)
	}
}

// concurrentUploads sends 200 photo uploads through the edge at once: 200
// posts, 200 files, every checksum matching the bytes sent, no id used
// twice, no error.
func concurrentUploads(t *testing.T, m *testmesh.Mesh) {
	const n = 200
	before := allPosts(t, m.Store)
	files := len(folder(t, m))
	photos, bodies, types := make([][]byte, n), make([][]byte, n), make([]string, n)
	for i := range n {
		photos[i] = noisePNG(t, 40, 40, uint64(1000+i))
		bodies[i], types[i] = testutil.Form(t, [][2]string{{"post", fmt.Sprintf("concurrent %03d", i)}}, pngFile("p.png", photos[i]))
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			resp, err := m.Client.Post(m.URL+"/upload.php", types[i], bytes.NewReader(bodies[i]))
			if err != nil {
				t.Errorf("upload %d: %v", i, err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther {
				t.Errorf("upload %d: status %d, want 303", i, resp.StatusCode)
			}
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(began)
	t.Logf("%d concurrent uploads of %d-byte PNGs in %v (%.0f uploads/s)", n, len(photos[0]), took.Round(time.Millisecond), n/took.Seconds())

	ps := allPosts(t, m.Store)
	if len(ps) != len(before)+n {
		t.Fatalf("%d posts, want %d", len(ps), len(before)+n)
	}
	ids := map[contract.ID]bool{}
	byText := map[string]store.Post{}
	for _, p := range ps[:n] {
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
	if got := len(folder(t, m)); got != files+n {
		t.Errorf("%d files in the uploads folder, want %d", got, files+n)
	}
}
