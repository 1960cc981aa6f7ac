package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
)

// GET /posts/{id}: the page of one post, 404 for an unknown id and 400 for
// anything that is not an id, each a page that links to the newest posts.
func TestPostPage(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		m := testmesh.Start(t, testmesh.Options{Store: st})
		uploadPhoto(t, m, `the <b>one</b> & only`, testutil.Photo("p.png", "image/png", testutil.PNG(t, 30, 20)))
		uploadPhoto(t, m, "a later post", nil)
		first := listAPI(t, m, "").Posts[1]

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
			resp, page := get(t, m, "/posts/"+bad)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "not valid") {
				t.Errorf("GET /posts/%s: %d, want 400", bad, resp.StatusCode)
			}
		}
		req, _ := http.NewRequest(http.MethodHead, m.URL+"/posts/"+first.ID, nil)
		if resp, _ := do(t, m, req); resp.StatusCode != http.StatusOK {
			t.Errorf("HEAD: %d", resp.StatusCode)
		}
	})
}
