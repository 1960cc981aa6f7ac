// Package storetest is the conformance suite every store.Store must pass,
// and helpers that open stores for the tests of other packages. Run it from
// an implementation's tests:
//
//	storetest.Run(t, func(t *testing.T) store.Store { return storetest.Embedded(t) })
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/store"
)

// Run runs the suite. open must return a new, empty store each time it is
// called and close it when t ends; the cases run in parallel, each on its
// own store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	cases := []struct {
		name string
		test func(t *testing.T, s store.Store)
	}{
		{"CreateGet", testCreateGet},
		{"TextOnly", testTextOnly},
		{"ImageRoundTrip", testImageRoundTrip},
		{"ImageMetadata", testImageMetadata},
		{"ListKeyset", testListKeyset},
		{"ListPagesWhileInserting", testListPagesWhileInserting},
		{"NotFound", testNotFound},
		{"Duplicate", testDuplicate},
		{"Unicode", testUnicode},
		{"Invalid", testInvalid},
		{"ImageIDs", testImageIDs},
		{"ConcurrentCreate", testConcurrentCreate},
		{"Ping", testPing},
		{"ContextDone", testContextDone},
		{"RequestKeys", testRequestKeys},
		{"AnnouncementQueued", testAnnouncementQueued},
		{"AnnouncementClaimOnce", testAnnouncementClaimOnce},
		{"AnnouncementOutcomes", testAnnouncementOutcomes},
		{"AnnouncementSkip", testAnnouncementSkip},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.test(t, open(t))
		})
	}
}

// randomBytes returns n bytes that no encoder or compressor can shorten,
// so a round trip proves every byte is kept.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func newImage(size int) *store.NewImage {
	return &store.NewImage{
		ID:          contract.NewID(),
		ContentType: "image/jpeg",
		Width:       640,
		Height:      480,
		Data:        randomBytes(size),
	}
}

func mustCreate(t *testing.T, s store.Store, np store.NewPost) store.Post {
	t.Helper()
	p, err := s.CreatePost(t.Context(), np)
	if err != nil {
		t.Fatalf("CreatePost(%s): %v", np.ID, err)
	}
	return p
}

// formatPost prints every field, so a failed comparison shows which one
// differs (%+v would print the image as a pointer).
func formatPost(p store.Post) string {
	s := fmt.Sprintf("{Key:%d ID:%s Text:%q CreatedAt:%s", p.Key, p.ID, p.Text, p.CreatedAt.Format(time.RFC3339Nano))
	if p.Image == nil {
		return s + " Image:nil}"
	}
	return s + " Image:" + formatImage(*p.Image) + "}"
}

func formatImage(im store.Image) string {
	return fmt.Sprintf("{ID:%s ContentType:%s Size:%d SHA256:%x Width:%d Height:%d CreatedAt:%s}",
		im.ID, im.ContentType, im.Size, im.SHA256, im.Width, im.Height, im.CreatedAt.Format(time.RFC3339Nano))
}

func checkPost(t *testing.T, what string, got, want store.Post) {
	t.Helper()
	// DeepEqual, not Equal on the times: the stored post must come back in
	// UTC exactly as CreatePost returned it.
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, formatPost(got), formatPost(want))
	}
}

func checkImage(t *testing.T, what string, got, want store.Image) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, formatImage(got), formatImage(want))
	}
}

func testCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	np := store.NewPost{ID: contract.NewID(), Text: "first light over the harbour", Image: newImage(64 << 10)}
	p := mustCreate(t, s, np)
	if p.Key <= 0 {
		t.Errorf("Key = %d, want > 0", p.Key)
	}
	if p.ID != np.ID || p.Text != np.Text {
		t.Errorf("CreatePost returned %s, want id %s and text %q", formatPost(p), np.ID, np.Text)
	}
	if p.CreatedAt.IsZero() || p.CreatedAt.Location() != time.UTC || p.CreatedAt.Nanosecond()%1000 != 0 {
		t.Errorf("CreatedAt = %v, want a UTC time in whole microseconds", p.CreatedAt)
	}
	if p.Image == nil {
		t.Fatal("CreatePost returned no image")
	}
	got, err := s.GetPost(ctx, np.ID)
	if err != nil {
		t.Fatalf("GetPost: %v", err)
	}
	checkPost(t, "GetPost", got, p)

	// A later post has a larger key.
	p2 := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "second"})
	if p2.Key <= p.Key {
		t.Errorf("second post has key %d, first %d: want it larger", p2.Key, p.Key)
	}
}

func testTextOnly(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "no picture today"})
	if p.Image != nil {
		t.Errorf("text-only post came back with image %s", formatImage(*p.Image))
	}
	got, err := s.GetPost(ctx, p.ID)
	if err != nil {
		t.Fatalf("GetPost: %v", err)
	}
	checkPost(t, "GetPost", got, p)
	list, err := s.ListPosts(ctx, store.ListOptions{Limit: 10})
	if err != nil {
		t.Fatalf("ListPosts: %v", err)
	}
	if len(list) != 1 {
		t.Fatalf("ListPosts returned %d posts, want 1", len(list))
	}
	checkPost(t, "ListPosts", list[0], p)
	ids, err := s.ImageIDs(ctx, contract.ID{}, 10)
	if err != nil {
		t.Fatalf("ImageIDs: %v", err)
	}
	if len(ids) != 0 {
		t.Errorf("ImageIDs = %v after a text-only post, want none", ids)
	}
}

func testImageRoundTrip(t *testing.T, s store.Store) {
	for _, size := range []int{1, 1 << 20, 10 << 20} {
		t.Run(fmt.Sprintf("%dB", size), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			ni := newImage(size)
			p := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "bytes", Image: ni})
			im, data, err := s.ImageData(ctx, ni.ID)
			if err != nil {
				t.Fatalf("ImageData: %v", err)
			}
			if !bytes.Equal(data, ni.Data) {
				i := 0
				for i < min(len(data), len(ni.Data)) && data[i] == ni.Data[i] {
					i++
				}
				t.Errorf("ImageData returned %d bytes, want the %d stored; first difference at byte %d", len(data), len(ni.Data), i)
			}
			checkImage(t, "ImageData metadata", im, *p.Image)
		})
	}
}

func testImageMetadata(t *testing.T, s store.Store) {
	cases := []struct {
		contentType   string
		width, height int
		size          int
	}{
		{"image/jpeg", 4032, 3024, 3000},
		{"image/png", 1, 1, 67},
		{"image/gif", 16, 65535, 1},
		{"image/webp", math.MaxInt32, 7, 100},
	}
	for _, c := range cases {
		t.Run(strings.TrimPrefix(c.contentType, "image/"), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			ni := &store.NewImage{ID: contract.NewID(), ContentType: c.contentType, Width: c.width, Height: c.height, Data: randomBytes(c.size)}
			p := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: c.contentType, Image: ni})
			want := store.Image{
				ID:          ni.ID,
				ContentType: c.contentType,
				Size:        int64(c.size),
				SHA256:      sha256.Sum256(ni.Data),
				Width:       c.width,
				Height:      c.height,
				CreatedAt:   p.CreatedAt,
			}
			if p.Image == nil {
				t.Fatal("CreatePost returned no image")
			}
			checkImage(t, "CreatePost", *p.Image, want)
			info, err := s.ImageInfo(ctx, ni.ID)
			if err != nil {
				t.Fatalf("ImageInfo: %v", err)
			}
			checkImage(t, "ImageInfo", info, want)
			got, err := s.GetPost(ctx, p.ID)
			if err != nil {
				t.Fatalf("GetPost: %v", err)
			}
			checkPost(t, "GetPost", got, p)
			im, _, err := s.ImageData(ctx, ni.ID)
			if err != nil {
				t.Fatalf("ImageData: %v", err)
			}
			checkImage(t, "ImageData", im, want)
		})
	}
}

// createMany creates n posts from several goroutines, every third with a
// small image, and returns them.
func createMany(t *testing.T, s store.Store, n int) []store.Post {
	t.Helper()
	posts := make([]store.Post, n)
	const workers = 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				np := store.NewPost{ID: contract.NewID(), Text: fmt.Sprintf("post %d", i)}
				if i%3 == 0 {
					np.Image = newImage(512)
				}
				p, err := s.CreatePost(t.Context(), np)
				if err != nil {
					t.Errorf("CreatePost %d: %v", i, err)
					return
				}
				posts[i] = p
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return posts
}

func testListKeyset(t *testing.T, s store.Store) {
	ctx := t.Context()
	empty, err := s.ListPosts(ctx, store.ListOptions{Limit: 10})
	if err != nil || len(empty) != 0 {
		t.Fatalf("ListPosts on an empty store = %d posts, %v; want none, nil", len(empty), err)
	}
	var p []store.Post // oldest first
	for i := range 5 {
		p = append(p, mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: fmt.Sprint("keyset ", i)}))
	}
	cases := []struct {
		name string
		opts store.ListOptions
		want []store.Post
	}{
		{"newest first", store.ListOptions{Limit: 10}, []store.Post{p[4], p[3], p[2], p[1], p[0]}},
		{"limit", store.ListOptions{Limit: 2}, []store.Post{p[4], p[3]}},
		{"limit one", store.ListOptions{Limit: 1}, []store.Post{p[4]}},
		{"before excludes its key", store.ListOptions{Before: p[3].Key, Limit: 10}, []store.Post{p[2], p[1], p[0]}},
		{"before and limit", store.ListOptions{Before: p[3].Key, Limit: 2}, []store.Post{p[2], p[1]}},
		{"before the oldest", store.ListOptions{Before: p[0].Key, Limit: 10}, nil},
		{"before a key not yet used", store.ListOptions{Before: p[4].Key + 1000, Limit: 3}, []store.Post{p[4], p[3], p[2]}},
		{"largest limit", store.ListOptions{Limit: store.MaxListLimit}, []store.Post{p[4], p[3], p[2], p[1], p[0]}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := s.ListPosts(t.Context(), c.opts)
			if err != nil {
				t.Fatalf("ListPosts(%+v): %v", c.opts, err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("ListPosts(%+v) returned %d posts, want %d", c.opts, len(got), len(c.want))
			}
			for i := range got {
				checkPost(t, fmt.Sprintf("ListPosts(%+v)[%d]", c.opts, i), got[i], c.want[i])
			}
		})
	}
}

// testListPagesWhileInserting walks the whole feed a small page at a time
// while other goroutines keep posting, as readers do on a live site. Every
// post that existed before the walk must appear exactly once, in strictly
// descending key order; posts made during the walk may or may not appear,
// but never twice.
func testListPagesWhileInserting(t *testing.T, s store.Store) {
	const existing, pageSize = 300, 7
	before := createMany(t, s, existing)
	want := make(map[contract.ID]store.Post, existing)
	for _, p := range before {
		want[p.ID] = p
	}

	ctx, cancel := context.WithCancel(t.Context())
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		during   = map[contract.ID]bool{}
		inserted = make(chan struct{}, 1) // a post was made since the last page
	)
	for range 3 {
		wg.Go(func() {
			for ctx.Err() == nil {
				id := contract.NewID()
				mu.Lock()
				during[id] = true // before the insert: the walk may see it at once
				mu.Unlock()
				if _, err := s.CreatePost(ctx, store.NewPost{ID: id, Text: "meanwhile"}); err != nil {
					if ctx.Err() == nil {
						t.Errorf("concurrent CreatePost: %v", err)
						cancel()
					}
					return
				}
				select {
				case inserted <- struct{}{}:
				default:
				}
			}
		})
	}
	defer func() {
		cancel()
		wg.Wait()
	}()

	seen := map[contract.ID]int{}
	cursor, pages := int64(0), 0
	lastKey := int64(math.MaxInt64)
	short := false
	for {
		page, err := s.ListPosts(ctx, store.ListOptions{Before: cursor, Limit: pageSize})
		if err != nil {
			t.Fatalf("ListPosts page %d (before %d): %v", pages+1, cursor, err)
		}
		if len(page) == 0 {
			break
		}
		pages++
		if len(page) > pageSize {
			t.Fatalf("page %d has %d posts, limit %d", pages, len(page), pageSize)
		}
		if short {
			t.Fatalf("page %d follows a short page: a short page must be the last", pages)
		}
		short = len(page) < pageSize
		for _, p := range page {
			if p.Key >= lastKey {
				t.Fatalf("page %d: key %d after key %d, want strictly descending", pages, p.Key, lastKey)
			}
			lastKey = p.Key
			seen[p.ID]++
			if w, ok := want[p.ID]; ok {
				checkPost(t, fmt.Sprintf("page %d", pages), p, w)
				continue
			}
			mu.Lock()
			ok := during[p.ID]
			mu.Unlock()
			if !ok {
				t.Errorf("page %d: post %s was never created", pages, formatPost(p))
			}
		}
		cursor = page[len(page)-1].Key
		// Let at least one insert land between two pages, so the walk
		// really races the writers.
		select {
		case <-inserted:
		case <-ctx.Done():
			t.Fatalf("waiting for a concurrent insert: %v", ctx.Err())
		}
	}
	if atLeast := existing/pageSize + 1; pages < atLeast {
		t.Errorf("walked %d pages, want at least %d", pages, atLeast)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("post %s listed %d times", id, n)
		}
	}
	for _, p := range before {
		if seen[p.ID] == 0 {
			t.Errorf("post %s (key %d) existed before the walk but was skipped", p.ID, p.Key)
		}
	}
}

func testNotFound(t *testing.T, s store.Store) {
	p := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "exists", Image: newImage(10)})
	missing := contract.NewID()
	cases := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"GetPost", func(ctx context.Context) error { _, err := s.GetPost(ctx, missing); return err }},
		{"GetPost zero id", func(ctx context.Context) error { _, err := s.GetPost(ctx, contract.ID{}); return err }},
		{"GetPost of an image id", func(ctx context.Context) error { _, err := s.GetPost(ctx, p.Image.ID); return err }},
		{"ImageInfo", func(ctx context.Context) error { _, err := s.ImageInfo(ctx, missing); return err }},
		{"ImageInfo zero id", func(ctx context.Context) error { _, err := s.ImageInfo(ctx, contract.ID{}); return err }},
		{"ImageInfo of a post id", func(ctx context.Context) error { _, err := s.ImageInfo(ctx, p.ID); return err }},
		{"ImageData", func(ctx context.Context) error { _, _, err := s.ImageData(ctx, missing); return err }},
		{"ImageData zero id", func(ctx context.Context) error { _, _, err := s.ImageData(ctx, contract.ID{}); return err }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if err := c.call(t.Context()); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("got %v, want ErrNotFound", err)
			}
		})
	}
}

// testDuplicate checks that a post or image id is never stored twice, and
// that a rejected post leaves nothing behind: its image, written first in
// the same transaction, must be rolled back.
func testDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	orig := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "original", Image: newImage(1000)})
	_, origData, err := s.ImageData(ctx, orig.Image.ID)
	if err != nil {
		t.Fatalf("ImageData: %v", err)
	}
	withImageID := func(id contract.ID) *store.NewImage {
		im := newImage(2000)
		im.ID = id
		return im
	}
	cases := []struct {
		name string
		post store.NewPost
	}{
		{"post id, text only", store.NewPost{ID: orig.ID, Text: "again"}},
		{"post id, with a new image", store.NewPost{ID: orig.ID, Text: "again", Image: newImage(3000)}},
		{"image id, new post", store.NewPost{ID: contract.NewID(), Text: "again", Image: withImageID(orig.Image.ID)}},
		{"both ids", store.NewPost{ID: orig.ID, Text: "again", Image: withImageID(orig.Image.ID)}},
	}
	// Not parallel: the final counts must see every attempt.
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.CreatePost(t.Context(), c.post)
			if !errors.Is(err, store.ErrDuplicate) {
				t.Fatalf("CreatePost = %v, want ErrDuplicate", err)
			}
			if c.post.ID != orig.ID {
				if _, err := s.GetPost(t.Context(), c.post.ID); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("GetPost of the rejected post = %v, want ErrNotFound", err)
				}
			}
			if im := c.post.Image; im != nil && im.ID != orig.Image.ID {
				if _, err := s.ImageInfo(t.Context(), im.ID); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("ImageInfo of the rejected post's image = %v, want ErrNotFound (the transaction must roll back)", err)
				}
			}
		})
	}
	got, err := s.GetPost(ctx, orig.ID)
	if err != nil {
		t.Fatalf("GetPost: %v", err)
	}
	checkPost(t, "original post after the duplicates", got, orig)
	_, data, err := s.ImageData(ctx, orig.Image.ID)
	if err != nil {
		t.Fatalf("ImageData: %v", err)
	}
	if !bytes.Equal(data, origData) {
		t.Error("original image bytes changed after the duplicates")
	}
	posts, err := s.ListPosts(ctx, store.ListOptions{Limit: 100})
	if err != nil {
		t.Fatalf("ListPosts: %v", err)
	}
	ids, err := s.ImageIDs(ctx, contract.ID{}, 100)
	if err != nil {
		t.Fatalf("ImageIDs: %v", err)
	}
	if len(posts) != 1 || len(ids) != 1 {
		t.Errorf("after the rejected posts: %d posts and %d images stored, want 1 and 1", len(posts), len(ids))
	}
}

// mixedEmoji returns n four-byte characters, cycling through several
// emoji so that a store mangling one of them shows.
func mixedEmoji(n int) string {
	emoji := []rune("😀🎉🐙🌍🚀🧪𝄞🀄𠜎🫠")
	var b strings.Builder
	for i := range n {
		b.WriteRune(emoji[i%len(emoji)])
	}
	return b.String()
}

func testUnicode(t *testing.T, s store.Store) {
	cases := []struct{ name, text string }{
		{"emoji", "sunset 🌅 with friends 👋🏽 🇳🇴 and family 👨‍👩‍👧‍👦 🏳️‍🌈"},
		{"arabic", "مرحبا بالعالم، هذا منشور تجريبي"},
		{"hebrew", "שלום עולם, זה פוסט לדוגמה"},
		{"bidi mix", "abc שלום 123 مرحبا def \u202eevil\u202c"},
		{"combining marks", "e\u0301 a\u0308 n\u0303 Z\u0351\u0362\u0334a\u0336\u0353l\u0317g\u0315o"},
		{"decomposed and composed differ", "\u0041\u030a \u00c5 \u212b"},
		{"supplementary planes", "𠜎𠜱𠝹 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓂀"},
		{"whitespace and invisibles", "line one\nline two\r\n\tindented\u00a0nbsp\u200bzwsp\ufeffbom"},
		{"max length emoji", strings.Repeat("😀", contract.MaxTextLen)},
		{"max length mixed emoji", mixedEmoji(contract.MaxTextLen)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			p := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: c.text})
			got, err := s.GetPost(ctx, p.ID)
			if err != nil {
				t.Fatalf("GetPost: %v", err)
			}
			// String equality is byte equality: no normalisation, no
			// replacement characters, no truncation.
			if got.Text != c.text || p.Text != c.text {
				t.Errorf("text changed: stored %d bytes (%d characters), got back %d bytes (%d characters)\n got %q\nwant %q",
					len(c.text), utf8.RuneCountInString(c.text), len(got.Text), utf8.RuneCountInString(got.Text), got.Text, c.text)
			}
		})
	}
	t.Run("one character too long", func(t *testing.T) {
		t.Parallel()
		_, err := s.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: strings.Repeat("😀", contract.MaxTextLen+1)})
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("CreatePost of %d characters = %v, want ErrInvalid", contract.MaxTextLen+1, err)
		}
	})
}

// testInvalid feeds arguments no store may accept, and checks that each is
// refused with ErrInvalid (not a panic, not a database error) and that
// nothing was stored.
func testInvalid(t *testing.T, s store.Store) {
	good := func() *store.NewImage { return newImage(100) }
	with := func(f func(*store.NewImage)) *store.NewImage { im := good(); f(im); return im }
	posts := []struct {
		name string
		post store.NewPost
	}{
		{"zero post id", store.NewPost{Text: "x"}},
		{"empty text", store.NewPost{ID: contract.NewID()}},
		{"blank text", store.NewPost{ID: contract.NewID(), Text: " \t\n "}},
		{"too long text", store.NewPost{ID: contract.NewID(), Text: strings.Repeat("a", contract.MaxTextLen+1)}},
		{"invalid UTF-8", store.NewPost{ID: contract.NewID(), Text: "caf\xe9"}},
		{"zero image id", store.NewPost{ID: contract.NewID(), Text: "x", Image: with(func(im *store.NewImage) { im.ID = contract.ID{} })}},
		{"no image bytes", store.NewPost{ID: contract.NewID(), Text: "x", Image: with(func(im *store.NewImage) { im.Data = nil })}},
		{"unknown content type", store.NewPost{ID: contract.NewID(), Text: "x", Image: with(func(im *store.NewImage) { im.ContentType = "text/html" })}},
		{"empty content type", store.NewPost{ID: contract.NewID(), Text: "x", Image: with(func(im *store.NewImage) { im.ContentType = "" })}},
		{"zero width", store.NewPost{ID: contract.NewID(), Text: "x", Image: with(func(im *store.NewImage) { im.Width = 0 })}},
		{"negative height", store.NewPost{ID: contract.NewID(), Text: "x", Image: with(func(im *store.NewImage) { im.Height = -1 })}},
		{"huge width", store.NewPost{ID: contract.NewID(), Text: "x", Image: with(func(im *store.NewImage) { im.Width = int(int64(math.MaxInt32) + int64(im.Height)) })}},
	}
	for _, c := range posts {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if _, err := s.CreatePost(t.Context(), c.post); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("CreatePost = %v, want ErrInvalid", err)
			}
		})
	}
	lists := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"ListPosts limit 0", func(ctx context.Context) error { _, err := s.ListPosts(ctx, store.ListOptions{}); return err }},
		{"ListPosts limit -1", func(ctx context.Context) error { _, err := s.ListPosts(ctx, store.ListOptions{Limit: -1}); return err }},
		{"ListPosts limit too large", func(ctx context.Context) error {
			_, err := s.ListPosts(ctx, store.ListOptions{Limit: store.MaxListLimit + 1})
			return err
		}},
		{"ListPosts negative before", func(ctx context.Context) error {
			_, err := s.ListPosts(ctx, store.ListOptions{Before: -1, Limit: 1})
			return err
		}},
		{"ImageIDs limit 0", func(ctx context.Context) error { _, err := s.ImageIDs(ctx, contract.ID{}, 0); return err }},
		{"ImageIDs limit too large", func(ctx context.Context) error {
			_, err := s.ImageIDs(ctx, contract.ID{}, store.MaxListLimit+1)
			return err
		}},
	}
	for _, c := range lists {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if err := c.call(t.Context()); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("got %v, want ErrInvalid", err)
			}
		})
	}
	t.Cleanup(func() {
		// After every subtest: nothing may have been stored.
		ctx := context.Background()
		posts, err := s.ListPosts(ctx, store.ListOptions{Limit: 10})
		if err != nil {
			t.Errorf("ListPosts: %v", err)
			return
		}
		ids, err := s.ImageIDs(ctx, contract.ID{}, 10)
		if err != nil {
			t.Errorf("ImageIDs: %v", err)
			return
		}
		if len(posts) != 0 || len(ids) != 0 {
			t.Errorf("invalid posts left %d posts and %d images behind", len(posts), len(ids))
		}
	})
}

func testImageIDs(t *testing.T, s store.Store) {
	var want []contract.ID
	for i := range 23 {
		p := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: fmt.Sprint("picture ", i), Image: newImage(16)})
		want = append(want, p.Image.ID)
		if i%4 == 0 {
			mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "words only"})
		}
	}
	slices.SortFunc(want, func(a, b contract.ID) int { return bytes.Compare(a[:], b[:]) })

	for _, limit := range []int{1, 4, 23, 100} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			t.Parallel()
			var got []contract.ID
			after := contract.ID{}
			for page := 1; ; page++ {
				ids, err := s.ImageIDs(t.Context(), after, limit)
				if err != nil {
					t.Fatalf("ImageIDs page %d: %v", page, err)
				}
				if len(ids) > limit {
					t.Fatalf("page %d has %d ids, limit %d", page, len(ids), limit)
				}
				if len(ids) == 0 {
					break
				}
				got = append(got, ids...)
				after = ids[len(ids)-1]
				if page > len(want)+1 {
					t.Fatalf("more than %d pages", page)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("walked ids\n got %v\nwant %v (sorted by bytes)", got, want)
			}
		})
	}
	t.Run("after a middle id", func(t *testing.T) {
		t.Parallel()
		got, err := s.ImageIDs(t.Context(), want[10], 5)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want[11:16]) {
			t.Errorf("got %v, want %v", got, want[11:16])
		}
	})
	t.Run("after an id not stored", func(t *testing.T) {
		t.Parallel()
		// One more than want[3] in the last byte (or carried): it sorts
		// between want[3] and want[4] unless they are neighbours.
		after := want[3]
		for i := len(after) - 1; i >= 0; i-- {
			after[i]++
			if after[i] != 0 {
				break
			}
		}
		got, err := s.ImageIDs(t.Context(), after, 100)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want[4:]) {
			t.Errorf("got %v, want %v", got, want[4:])
		}
	})
	t.Run("after the largest id", func(t *testing.T) {
		t.Parallel()
		var last contract.ID
		for i := range last {
			last[i] = 0xff
		}
		got, err := s.ImageIDs(t.Context(), last, 10)
		if err != nil || len(got) != 0 {
			t.Errorf("ImageIDs(ff…ff) = %v, %v; want none", got, err)
		}
	})
}

// testConcurrentCreate has many goroutines post at once, as the upload
// service does under load. None may fail (SQLite must queue writers rather
// than answer SQLITE_BUSY), and every post gets its own key.
func testConcurrentCreate(t *testing.T, s store.Store) {
	const workers, each = 16, 15
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		keys = map[int64]contract.ID{}
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				np := store.NewPost{ID: contract.NewID(), Text: fmt.Sprintf("worker %d post %d", w, i)}
				if i%2 == 0 {
					np.Image = newImage(4096)
				}
				p, err := s.CreatePost(t.Context(), np)
				if err != nil {
					t.Errorf("worker %d: CreatePost: %v", w, err)
					return
				}
				mu.Lock()
				if other, dup := keys[p.Key]; dup {
					t.Errorf("posts %s and %s share key %d", other, p.ID, p.Key)
				}
				keys[p.Key] = p.ID
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	posts, err := s.ListPosts(t.Context(), store.ListOptions{Limit: store.MaxListLimit})
	if err != nil {
		t.Fatalf("ListPosts: %v", err)
	}
	if len(posts) != workers*each {
		t.Errorf("ListPosts returned %d posts, want %d", len(posts), workers*each)
	}
	for _, p := range posts {
		if keys[p.Key] != p.ID {
			t.Errorf("listed post %s has key %d, which CreatePost gave to %s", p.ID, p.Key, keys[p.Key])
		}
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// testContextDone checks that every method gives up on a finished context,
// and that a CreatePost given up on stores nothing. A deadline that passed
// also counts as the database being unavailable: the service answers 503.
func testContextDone(t *testing.T, s store.Store) {
	existing := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "already here", Image: newImage(100)})
	np := store.NewPost{ID: contract.NewID(), Text: "too late", Image: newImage(100)}
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"CreatePost", func(ctx context.Context) error { _, err := s.CreatePost(ctx, np); return err }},
		{"GetPost", func(ctx context.Context) error { _, err := s.GetPost(ctx, existing.ID); return err }},
		{"ListPosts", func(ctx context.Context) error { _, err := s.ListPosts(ctx, store.ListOptions{Limit: 5}); return err }},
		{"ImageInfo", func(ctx context.Context) error { _, err := s.ImageInfo(ctx, existing.Image.ID); return err }},
		{"ImageData", func(ctx context.Context) error { _, _, err := s.ImageData(ctx, existing.Image.ID); return err }},
		{"ImageIDs", func(ctx context.Context) error { _, err := s.ImageIDs(ctx, contract.ID{}, 5); return err }},
		{"Ping", func(ctx context.Context) error { return s.Ping(ctx) }},
	}
	for _, c := range calls {
		t.Run(c.name+"/canceled", func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			err := c.call(ctx)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("got %v, want context.Canceled", err)
			}
			if errors.Is(err, store.ErrUnavailable) {
				t.Errorf("got %v: a canceled caller says nothing about the database, want no ErrUnavailable", err)
			}
		})
		t.Run(c.name+"/deadline", func(t *testing.T) {
			ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
			defer cancel()
			err := c.call(ctx)
			if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("got %v, want context.DeadlineExceeded and ErrUnavailable", err)
			}
		})
	}
	if _, err := s.GetPost(t.Context(), np.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPost of the post created with a done context = %v, want ErrNotFound", err)
	}
	if _, err := s.ImageInfo(t.Context(), np.Image.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ImageInfo of the image created with a done context = %v, want ErrNotFound", err)
	}
}
