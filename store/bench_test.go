package store_test

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
)

// BenchmarkListPosts reads feed pages of 20 from 10,000 posts. The feed
// uses keyset pagination on the primary key, so page 500 (the oldest
// posts) should cost about what page 1 does; with OFFSET it would read
// and discard 9,980 rows first.
func BenchmarkListPosts(b *testing.B) {
	const posts, pageSize = 10_000, 20
	stores := []struct {
		name string
		open func(testing.TB) store.Store
	}{
		{"embedded", storetest.Embedded},
		{"mysql", storetest.MySQL},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			s := st.open(b)
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
					opts := store.ListOptions{Before: cursors[n-1], Limit: pageSize}
					for b.Loop() {
						page, err := s.ListPosts(b.Context(), opts)
						if err != nil {
							b.Fatal(err)
						}
						if len(page) != pageSize {
							b.Fatalf("page %d has %d posts, want %d", n, len(page), pageSize)
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
	for _, st := range []struct {
		name string
		open func(testing.TB) store.Store
	}{
		{"embedded", storetest.Embedded},
		{"mysql", storetest.MySQL},
	} {
		b.Run(st.name, func(b *testing.B) {
			s := st.open(b)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				_, err := s.CreatePost(b.Context(), store.NewPost{ID: contract.NewID(), Text: "benchmark", Image: &store.NewImage{
					ID: contract.NewID(), ContentType: "image/png", Width: 200, Height: 200, Data: data,
				}})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
