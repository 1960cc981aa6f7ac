package e2e

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
)

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

// countText counts the posts on the newest page of the API with text.
func countText(t *testing.T, m *testmesh.Mesh, text string) int {
	t.Helper()
	n := 0
	for _, p := range listAPI(t, m, "").Posts {
		if p.Text == text {
			n++
		}
	}
	return n
}

// TestUploadIdempotent: every view of the page carries a fresh one-time
// token in its form; sending the same form twice stores one post, and
// answers both with 303; the token sent with another text is 422; the
// page after a refused upload keeps the token it was sent with; API
// clients get the same from the Idempotency-Key header.
func TestUploadIdempotent(t *testing.T) {
	m := testmesh.Start(t, testmesh.Options{Store: storeEmbedded(t)})
	_, page1 := get(t, m, "/")
	_, page2 := get(t, m, "/")
	token := pageToken(t, page1)
	if pageToken(t, page2) == token {
		t.Fatal("two views of the page got the same upload token")
	}

	photo := testutil.PNG(t, 20, 20)
	body, ct := testutil.Form(t, [][2]string{{"idempotency_key", token}, {"post", "sent twice"}}, testutil.Photo("a.png", "image/png", photo))
	for i := range 2 {
		resp, page := post(t, m, body, ct)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("send %d: %d\n%s", i+1, resp.StatusCode, page)
		}
	}
	if n := countText(t, m, "sent twice"); n != 1 {
		t.Fatalf("the same form sent twice made %d posts, want 1", n)
	}

	other, ct2 := testutil.Form(t, [][2]string{{"idempotency_key", token}, {"post", "something else"}}, nil)
	resp, page := post(t, m, other, ct2)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "used before") {
		t.Fatalf("the token with another text: %d, want 422 saying so", resp.StatusCode)
	}
	if countText(t, m, "something else") != 0 {
		t.Fatal("the token with another text stored a post")
	}

	// A refused upload (no text): the page keeps the token.
	fresh := pageToken(t, page2)
	bad, ct3 := testutil.Form(t, [][2]string{{"idempotency_key", fresh}, {"post", "   "}}, nil)
	resp, page = post(t, m, bad, ct3)
	if resp.StatusCode != http.StatusBadRequest || pageToken(t, page) != fresh {
		t.Fatalf("after a refused upload: %d, token kept: %v", resp.StatusCode, pageToken(t, page) == fresh)
	}

	// API clients: the Idempotency-Key header.
	api, ct4 := testutil.Form(t, [][2]string{{"post", "from a script"}}, nil)
	for range 3 {
		req, _ := http.NewRequest(http.MethodPost, m.URL+"/upload.php", bytes.NewReader(api))
		req.Header.Set("Content-Type", ct4)
		req.Header.Set("Idempotency-Key", `"3f2c5a9e-retry"`)
		if resp, _ := do(t, m, req); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("Idempotency-Key upload: %d", resp.StatusCode)
		}
	}
	if n := countText(t, m, "from a script"); n != 1 {
		t.Fatalf("three sends with one Idempotency-Key made %d posts, want 1", n)
	}
}
