package edge_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/store"
)

// TestAPIHead: HEAD is answered as the GET of the same URL, without a
// body, as the Allow header of the API's 405 promises.
func TestAPIHead(t *testing.T) {
	m := inProcessMesh(t)
	p, err := m.Store.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: "head"})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(method, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		m.Handler.ServeHTTP(rec, httptest.NewRequest(method, "https://extagram.test"+path, nil))
		return rec
	}
	for _, path := range []string{"/api/v1/posts", "/api/v1/posts/" + p.ID.String()} {
		get, head := serve(http.MethodGet, path), serve(http.MethodHead, path)
		if get.Code != http.StatusOK || head.Code != http.StatusOK {
			t.Fatalf("%s: GET %d, HEAD %d; want 200 for both", path, get.Code, head.Code)
		}
		if head.Header().Get("Content-Type") != get.Header().Get("Content-Type") || head.Body.Len() != 0 {
			t.Errorf("%s: HEAD Content-Type %q with %d body bytes, GET %q", path, head.Header().Get("Content-Type"), head.Body.Len(), get.Header().Get("Content-Type"))
		}
	}
	if get := serve(http.MethodGet, "/api/v1/posts/"+p.ID.String()); !strings.Contains(get.Body.String(), `"head"`) {
		t.Errorf("GET of the post: %s", get.Body)
	}
	if rec := serve(http.MethodHead, "/api/v1/posts/"+contract.NewID().String()); rec.Code != http.StatusNotFound {
		t.Errorf("HEAD of an unknown post: %d, want 404", rec.Code)
	}
	rec := serve(http.MethodPost, "/api/v1/posts")
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q; want 405 with GET, HEAD", rec.Code, rec.Header().Get("Allow"))
	}
}

// TestClientGoneIs499: a request whose client went away is counted as 499,
// not as a 5xx of the site.
func TestClientGoneIs499(t *testing.T) {
	m := inProcessMesh(t)
	p, err := m.Store.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	req := httptest.NewRequest(http.MethodGet, "https://extagram.test/api/v1/posts/"+p.ID.String(), nil).WithContext(ctx)
	m.Handler.ServeHTTP(httptest.NewRecorder(), req)

	resp, err := http.Get(m.Metrics["edge"])
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	metrics := string(body)
	if !strings.Contains(metrics, `extagram_http_requests_total{code="499",handler="api",method="GET"} 1`) {
		t.Errorf("no 499 counted:\n%s", grepLines(metrics, "extagram_http_requests_total"))
	}
	// (/readyz may have answered 503 while the mesh started.)
	for _, l := range strings.Split(grepLines(metrics, `extagram_http_requests_total{code="5`), "\n") {
		if l != "" && !strings.Contains(l, `handler="health"`) {
			t.Errorf("a 5xx counted: %s", l)
		}
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
