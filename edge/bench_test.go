package edge_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
)

// BenchmarkFeedPage serves the newest page of 20 posts through the edge's
// whole handler (middleware, the page cache kept by WatchFeed, the
// response), without TLS or a socket: the edge's own cost per page view.
// The per-view sub-benchmark asks the feed service every time instead, as
// the edge does while its watch is down.
func BenchmarkFeedPage(b *testing.B) {
	for _, c := range []struct {
		name    string
		path    string
		perView bool
		want    string
	}{
		{"watched", "/", false, "post 19,"},
		{"per-view", "/", true, "post 19,"},
		// The JSON API's default page, from the same cache as the page.
		{"api", "/api/v1/posts", false, "post 19,"},
		// A static asset, as a client without Accept-Encoding asks for it.
		{"static", "/static/style.css", false, "{"},
	} {
		b.Run(c.name, func(b *testing.B) {
			st := storetest.Embedded(b)
			for i := range 20 {
				if _, err := st.CreatePost(b.Context(), store.NewPost{ID: contract.NewID(), Text: fmt.Sprintf("post %d, with a line of text as people write them", i)}); err != nil {
					b.Fatal(err)
				}
			}
			m := testmesh.Start(b, testmesh.Options{Store: st, AskFeedPerView: c.perView})
			req := httptest.NewRequest(http.MethodGet, "https://extagram.test"+c.path, nil)
			serve := func() *httptest.ResponseRecorder {
				rec := httptest.NewRecorder()
				m.Handler.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), c.want) {
					b.Fatalf("GET %s: %d", c.path, rec.Code)
				}
				return rec
			}
			// Let the watch deliver the page before measuring.
			for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				serve()
			}
			b.ReportAllocs()
			for b.Loop() {
				serve()
			}
		})
	}
}
