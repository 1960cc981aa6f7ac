package web

import (
	"fmt"
	"io"
	"testing"
	"time"
)

// BenchmarkRenderFeed renders a page of 20 posts, half with photos: what
// the edge does once per page and relative-time change, or per view when
// its page cache is off.
func BenchmarkRenderFeed(b *testing.B) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	f := Feed{Now: now, OlderURL: "/?page=AQo"}
	for i := range 20 {
		p := Post{ID: fmt.Sprint(i), Text: fmt.Sprintf("post %d, with a line of text as people write them <and> & \"quotes\"", i), CreatedAt: now.Add(-time.Duration(i) * time.Hour)}
		if i%2 == 0 {
			p.Image = &Image{URL: "/storage/AAAAAAAAAAAAAAAAAAAAAA", Width: 1080, Height: 1350}
		}
		f.Posts = append(f.Posts, p)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := RenderFeed(io.Discard, f); err != nil {
			b.Fatal(err)
		}
	}
}
