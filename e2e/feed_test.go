package e2e

import (
	"bytes"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
)

// photoPost: a text post and a photo post on the feed (escaped), in the API
// (verbatim), on its own page, and the photo at /storage/ (headers:
// storageRoutes); the post page is 404 for an unknown id, 400 for a bad one.
func photoPost(t *testing.T, m *testmesh.Mesh) {
	photo := testutil.PNG(t, 120, 80)
	const evil, text = `first, text only <script>alert(1)</script><img src=x onerror=alert(2)>`, `the <b>beach</b> & sea`
	uploadPhoto(t, m, evil, nil)
	uploadPhoto(t, m, text, pngFile("beach.png", photo))
	resp, page := get(t, m, "/")
	if got := pagePosts(page); resp.StatusCode != 200 || len(got) < 2 || got[0] != html.EscapeString(text) || got[1] != html.EscapeString(evil) {
		t.Fatalf("GET /: %d, posts %q; want the photo post first, then the text-only one, escaped", resp.StatusCode, got)
	}
	if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img src=x") {
		t.Fatalf("post text rendered as HTML:\n%s", page)
	}
	l := newest(t, m)
	img := l[0].Image
	if l[0].Text != text || img == nil || l[1].Image != nil || l[1].Text != evil {
		t.Fatalf("API posts = %+v", l[:2])
	}
	if img.ContentType != "image/png" || img.Width != 120 || img.Height != 80 || img.SizeBytes != fmt.Sprint(len(photo)) {
		t.Fatalf("API image = %+v, want image/png 120x80 of %d bytes", img, len(photo))
	}
	if !strings.Contains(page, `src="/storage/`+img.ID+`"`) || !strings.Contains(page, `width="120" height="80"`) {
		t.Fatalf("page has no <img> for /storage/%s with its dimensions:\n%s", img.ID, page)
	}
	if _, p2 := get(t, m, "/extagram.php"); !strings.Contains(p2, html.EscapeString(text)) {
		t.Fatal("/extagram.php does not show the post")
	}
	if resp, body := get(t, m, "/api/v1/posts/"+l[0].ID); resp.StatusCode != 200 || !strings.Contains(body, img.ID) {
		t.Fatalf("GET /api/v1/posts/{id}: %d %s", resp.StatusCode, body)
	}
	if resp, body := get(t, m, "/storage/"+img.ID); resp.StatusCode != 200 || body != string(photo) || !bytes.Equal(onDisk(m, img.ID), photo) {
		t.Fatalf("GET /storage/%s: %d, %d bytes; want the %d uploaded bytes, as on disk", img.ID, resp.StatusCode, len(body), len(photo))
	}
	resp, page = get(t, m, "/posts/"+l[0].ID)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("GET /posts/%s: %d %s, without security headers", l[0].ID, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got := pagePosts(page); len(got) != 1 || got[0] != html.EscapeString(text) || !strings.Contains(page, `src="/storage/`+img.ID+`"`) || !strings.Contains(page, `href="/"`) {
		t.Errorf("post page: posts %q, want the one post, escaped, with its photo and a link to the newest posts", got)
	}
	if resp, _ := send(t, m, http.MethodHead, "/posts/"+l[0].ID, nil); resp.StatusCode != 200 {
		t.Errorf("HEAD: %d", resp.StatusCode)
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
}

// feedPagination follows the links to older posts: each post once, newest first.
func feedPagination(t *testing.T, m *testmesh.Mesh) {
	for i := range 45 {
		uploadPhoto(t, m, fmt.Sprintf("post %02d", i), nil)
	}
	var seen []string
	for path, pages := "/", 0; path != ""; pages++ {
		_, page := get(t, m, path)
		if seen = append(seen, pagePosts(page)...); pages > 0 && !strings.Contains(page, "Newest") {
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

var tokenRE = regexp.MustCompile(`<input type="hidden" name="idempotency_key" value="([A-Za-z0-9_-]{22})">`)

// uploadIdempotent: each page view has a fresh one-time upload token; a form
// sent twice stores one post (303 both times), its token with another text
// is 422, a refused upload's page keeps it; API clients use Idempotency-Key.
func uploadIdempotent(t *testing.T, m *testmesh.Mesh) {
	token := func(page string) string {
		if g := tokenRE.FindStringSubmatch(page); g != nil {
			return g[1]
		}
		t.Fatalf("no upload token in the page's form")
		return ""
	}
	stored := func(text string, want int) {
		if n := len(byText(t, m)[text]); n != want {
			t.Fatalf("%d posts %q, want %d", n, text, want)
		}
	}
	_, page1 := get(t, m, "/")
	_, page2 := get(t, m, "/")
	if token(page1) == token(page2) {
		t.Fatal("two views of the page got the same upload token")
	}
	for i := range 2 {
		if resp, page := post(t, m, newForm(t, "sent twice", nil, "idempotency_key", token(page1))); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("send %d: %d\n%s", i+1, resp.StatusCode, page)
		}
	}
	stored("sent twice", 1)
	resp, page := post(t, m, newForm(t, "something else", nil, "idempotency_key", token(page1)))
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "used before") {
		t.Fatalf("the token with another text: %d, want 422 saying so", resp.StatusCode)
	}
	stored("something else", 0)
	if resp, page := post(t, m, newForm(t, "   ", nil, "idempotency_key", token(page2))); resp.StatusCode != http.StatusBadRequest || token(page) != token(page2) {
		t.Fatalf("after a refused upload: %d, token kept: %v", resp.StatusCode, token(page) == token(page2))
	}
	for range 3 {
		if resp, _ := post(t, m, newForm(t, "from a script", nil), "Idempotency-Key", `"3f2c5a9e-retry"`); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("Idempotency-Key upload: %d", resp.StatusCode)
		}
	}
	stored("from a script", 1)
}
