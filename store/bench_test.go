package store_test

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
)

var benchStores = map[string]func(testing.TB) store.Store{"embedded": storetest.Embedded, "mysql": storetest.MySQL}

// BenchmarkListPosts reads feed pages of 20 from 10,000 posts. The feed
// uses keyset pagination on the primary key, so page 500 (the oldest
// posts) should cost about what page 1 does; with OFFSET it would read
// and discard 9,980 rows first.
func BenchmarkListPosts(b *testing.B) {
	const posts, pageSize = 10_000, 20
	for name, open := range benchStores {
		b.Run(name, func(b *testing.B) {
			s := open(b)
			if err := store.BulkFill(b.Context(), s, posts); err != nil {
				b.Fatal(err)
			}
			// Walk the feed once for each page's cursor, as a reader
			// following "older posts" links would.
			cursors := []int64{0}
			for {
				page, err := s.ListPosts(b.Context(), store.ListOptions{Before: cursors[len(cursors)-1], Limit: pageSize})
				if err != nil {
					b.Fatal(err)
				}
				if len(page) < pageSize {
					break
				}
				cursors = append(cursors, page[len(page)-1].Key)
			}
			if want := posts / pageSize; len(cursors) < want {
				b.Fatalf("found %d full pages, want %d", len(cursors), want)
			}
			for _, n := range []int{1, posts / pageSize} {
				b.Run(fmt.Sprintf("page%d", n), func(b *testing.B) {
					for b.Loop() {
						page, err := s.ListPosts(b.Context(), store.ListOptions{Before: cursors[n-1], Limit: pageSize})
						if err != nil || len(page) != pageSize {
							b.Fatalf("page %d: %d posts, %v; want %d", n, len(page), err, pageSize)
						}
					}
				})
			}
		})
	}
}

// BenchmarkCreatePost stores posts with a 120 KB image, as an upload does:
// one transaction with the image's BLOB and the post.
func BenchmarkCreatePost(b *testing.B) {
	data := make([]byte, 120<<10)
	_, _ = rand.Read(data)
	for name, open := range benchStores {
		b.Run(name, func(b *testing.B) {
			s := open(b)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				im := &store.NewImage{ID: contract.NewID(), ContentType: "image/png", Width: 200, Height: 200, Data: data}
				if _, err := s.CreatePost(b.Context(), store.NewPost{ID: contract.NewID(), Text: "benchmark", Image: im}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
