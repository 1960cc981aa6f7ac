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

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/store"
)

// Run runs the suite. open must return a new, empty store each time it is
// called and close it when t ends; the cases run in parallel, each on its
// own store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	for name, test := range map[string]func(*testing.T, store.Store){
		"CreateGet": testCreateGet, "ListKeyset": testListKeyset,
		"InvalidAndDuplicate": testDuplicate, "Unicode": testUnicode, "ImageIDs": testImageIDs,
		"ConcurrentCreate": testConcurrentCreate, "NotFoundAndContextDone": testContextDone,
		"RequestKeys": testRequestKeys, "Announcements": testAnnouncements,
		"AnnouncementClaimOnce": testAnnouncementClaimOnce, "AnnouncementOutcomes": testAnnouncementOutcomes,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, open(t))
		})
	}
}

// must returns v, or fails the test on err: must(s.GetPost(ctx, id))(t).
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// wantErr reports an error unless errors.Is(err, want).
func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s = %v, want %v", what, err, want)
	}
}

// newImage has random bytes, which no encoder or compressor can shorten:
// a round trip proves every byte is kept.
func newImage(size int) *store.NewImage {
	return &store.NewImage{ID: contract.NewID(), ContentType: "image/jpeg", Width: 640, Height: 480, Data: randomBytes(size)}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func mustCreate(t *testing.T, s store.Store, np store.NewPost) store.Post {
	t.Helper()
	return must(s.CreatePost(t.Context(), np))(t)
}

// show prints every field (%+v alone would print the image as a pointer).
func show(v any) string {
	if p, ok := v.(store.Post); ok && p.Image != nil {
		return fmt.Sprintf("%+v with image %+v", p, *p.Image)
	}
	return fmt.Sprintf("%+v", v)
}

// check compares with DeepEqual, not Equal on the times: a stored post must
// come back in UTC exactly as CreatePost returned it.
func check[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, show(got), show(want))
	}
}

// counts returns how many posts and images s holds.
func counts(t testing.TB, s store.Store) (posts, images int) {
	t.Helper()
	ctx := context.WithoutCancel(t.Context()) // also from a Cleanup
	ps := must(s.ListPosts(ctx, store.ListOptions{Limit: store.MaxListLimit}))(t)
	ids := must(s.ImageIDs(ctx, contract.ID{}, store.MaxListLimit))(t)
	return len(ps), len(ids)
}

func testCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	// A text-only post first, on the empty store.
	text := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "no picture today"})
	if text.Image != nil {
		t.Errorf("text-only post came back with an image: %s", show(text))
	}
	check(t, "GetPost of the text-only post", must(s.GetPost(ctx, text.ID))(t), text)
	list := must(s.ListPosts(ctx, store.ListOptions{Limit: 10}))(t)
	check(t, "ListPosts", list, []store.Post{text})
	if ids := must(s.ImageIDs(ctx, contract.ID{}, 10))(t); len(ids) != 0 {
		t.Errorf("ImageIDs = %v after a text-only post, want none", ids)
	}

	np := store.NewPost{ID: contract.NewID(), Text: "first light over the harbour", Image: newImage(64 << 10)}
	p := mustCreate(t, s, np)
	if text.Key <= 0 || p.Key <= text.Key || p.ID != np.ID || p.Text != np.Text || p.Image == nil {
		t.Fatalf("CreatePost returned %s, want key > %d > 0, id %s, text %q and an image", show(p), text.Key, np.ID, np.Text)
	}
	if p.CreatedAt.IsZero() || p.CreatedAt.Location() != time.UTC || p.CreatedAt.Nanosecond()%1000 != 0 {
		t.Errorf("CreatedAt = %v, want a UTC time in whole microseconds", p.CreatedAt)
	}
	check(t, "GetPost", must(s.GetPost(ctx, np.ID))(t), p)
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}

	// Images round trip, bytes (from one byte to 10 MiB) and metadata.
	for _, c := range []struct {
		contentType         string
		width, height, size int
	}{
		{"image/jpeg", 4032, 3024, 10 << 20},
		{"image/png", 1, 1, 1},
		{"image/gif", 16, 65535, 1 << 20},
		{"image/webp", math.MaxInt32, 7, 100},
	} {
		t.Run(strings.TrimPrefix(c.contentType, "image/"), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			ni := &store.NewImage{ID: contract.NewID(), ContentType: c.contentType, Width: c.width, Height: c.height,
				Data: randomBytes(c.size)}
			p := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: c.contentType, Image: ni})
			want := store.Image{ID: ni.ID, ContentType: c.contentType, Size: int64(c.size), SHA256: sha256.Sum256(ni.Data),
				Width: c.width, Height: c.height, CreatedAt: p.CreatedAt}
			check(t, "CreatePost", p.Image, &want)
			check(t, "ImageInfo", must(s.ImageInfo(ctx, ni.ID))(t), want)
			check(t, "GetPost", must(s.GetPost(ctx, p.ID))(t), p)
			im, data, err := s.ImageData(ctx, ni.ID)
			if err != nil {
				t.Fatalf("ImageData: %v", err)
			}
			check(t, "ImageData", im, want)
			if !bytes.Equal(data, ni.Data) {
				i := 0
				for i < min(len(data), len(ni.Data)) && data[i] == ni.Data[i] {
					i++
				}
				t.Errorf("ImageData returned %d bytes, want the %d stored; first difference at byte %d",
					len(data), len(ni.Data), i)
			}
		})
	}
}

func testListKeyset(t *testing.T, s store.Store) {
	if empty := must(s.ListPosts(t.Context(), store.ListOptions{Limit: 10}))(t); len(empty) != 0 {
		t.Fatalf("ListPosts on an empty store = %d posts, want none", len(empty))
	}
	var p []store.Post // oldest first
	for i := range 5 {
		p = append(p, mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: fmt.Sprint("keyset ", i)}))
	}
	all := []store.Post{p[4], p[3], p[2], p[1], p[0]}
	for name, c := range map[string]struct {
		opts store.ListOptions
		want []store.Post
	}{
		"newest first":              {store.ListOptions{Limit: 10}, all},
		"limit":                     {store.ListOptions{Limit: 2}, all[:2]},
		"limit one":                 {store.ListOptions{Limit: 1}, all[:1]},
		"before excludes its key":   {store.ListOptions{Before: p[3].Key, Limit: 10}, all[2:]},
		"before and limit":          {store.ListOptions{Before: p[3].Key, Limit: 2}, all[2:4]},
		"before the oldest":         {store.ListOptions{Before: p[0].Key, Limit: 10}, []store.Post{}},
		"before a key not yet used": {store.ListOptions{Before: p[4].Key + 1000, Limit: 3}, all[:3]},
		"largest limit":             {store.ListOptions{Limit: store.MaxListLimit}, all},
	} {
		got := must(s.ListPosts(t.Context(), c.opts))(t)
		if len(got) != 0 || len(c.want) != 0 {
			check(t, fmt.Sprintf("%s: ListPosts(%+v)", name, c.opts), got, c.want)
		}
	}
}

// testConcurrentCreate has many goroutines post at once, as the upload
// service does under load. None may fail (SQLite must queue writers rather
// than answer SQLITE_BUSY), and every post gets its own key.
//
// Then it walks the whole feed a small page at a time while other
// goroutines keep posting, as readers do on a live site. Every post that
// existed before the walk must appear exactly once, in strictly descending
// key order; posts made during the walk may or may not appear, but never
// twice.
func testConcurrentCreate(t *testing.T, s store.Store) {
	const workers, each, pageSize = 20, 15, 7
	const existing = workers * each
	var (
		wg     sync.WaitGroup
		before = make([]store.Post, 0, existing)
		mu     sync.Mutex
		keys   = map[int64]contract.ID{}
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
				before = append(before, p)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	want := make(map[contract.ID]store.Post, existing)
	for _, p := range before {
		want[p.ID] = p
	}
	posts := must(s.ListPosts(t.Context(), store.ListOptions{Limit: store.MaxListLimit}))(t)
	if len(posts) != existing {
		t.Errorf("ListPosts returned %d posts, want %d", len(posts), existing)
	}
	for _, p := range posts {
		check(t, "listed post", p, want[p.ID])
	}

	ctx, cancel := context.WithCancel(t.Context())
	inserted := make(chan struct{}, 1) // a post was made since the last page
	for range 3 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := s.CreatePost(ctx, store.NewPost{ID: contract.NewID(), Text: "meanwhile"}); err != nil {
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
	cursor, pages, lastKey, short := int64(0), 0, int64(math.MaxInt64), false
	for {
		page, err := s.ListPosts(ctx, store.ListOptions{Before: cursor, Limit: pageSize})
		if err != nil {
			t.Fatalf("ListPosts page %d (before %d): %v", pages+1, cursor, err)
		}
		if len(page) == 0 {
			break
		}
		pages++
		if len(page) > pageSize || short {
			t.Fatalf("page %d has %d posts (limit %d) or follows a short page, which must be the last",
				pages, len(page), pageSize)
		}
		short = len(page) < pageSize
		for _, p := range page {
			if p.Key >= lastKey {
				t.Fatalf("page %d: key %d after key %d, want strictly descending", pages, p.Key, lastKey)
			}
			lastKey = p.Key
			seen[p.ID]++
			if w, ok := want[p.ID]; ok {
				check(t, fmt.Sprintf("page %d", pages), p, w)
			} else if p.Text != "meanwhile" || p.Image != nil {
				t.Errorf("page %d: post %s was never created", pages, show(p))
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

type call struct {
	name string
	f    func(context.Context) error
}

// reads calls each read of one post and one image.
func reads(s store.Store, post, image contract.ID) []call {
	return []call{
		{"GetPost", func(ctx context.Context) error { _, err := s.GetPost(ctx, post); return err }},
		{"ImageInfo", func(ctx context.Context) error { _, err := s.ImageInfo(ctx, image); return err }},
		{"ImageData", func(ctx context.Context) error { _, _, err := s.ImageData(ctx, image); return err }},
	}
}

// testDuplicate checks that a post or image id is never stored twice, and
// that a rejected post leaves nothing behind: its image, written first in
// the same transaction, must be rolled back.
func testDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	testInvalid(t, s) // on the empty store
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
	for name, np := range map[string]store.NewPost{
		"post id, text only":        {ID: orig.ID, Text: "again"},
		"post id, with a new image": {ID: orig.ID, Text: "again", Image: newImage(3000)},
		"image id, new post":        {ID: contract.NewID(), Text: "again", Image: withImageID(orig.Image.ID)},
		"both ids":                  {ID: orig.ID, Text: "again", Image: withImageID(orig.Image.ID)},
	} {
		_, err := s.CreatePost(ctx, np)
		wantErr(t, name+": CreatePost", err, store.ErrDuplicate)
		if np.ID != orig.ID {
			_, err := s.GetPost(ctx, np.ID)
			wantErr(t, name+": GetPost of the rejected post", err, store.ErrNotFound)
		}
		if np.Image != nil && np.Image.ID != orig.Image.ID { // the transaction must roll back
			_, err := s.ImageInfo(ctx, np.Image.ID)
			wantErr(t, name+": ImageInfo of the rejected post's image", err, store.ErrNotFound)
		}
	}
	check(t, "original post after the duplicates", must(s.GetPost(ctx, orig.ID))(t), orig)
	if _, data, err := s.ImageData(ctx, orig.Image.ID); err != nil || !bytes.Equal(data, origData) {
		t.Errorf("original image after the duplicates: %v, or its bytes changed", err)
	}
	if posts, images := counts(t, s); posts != 1 || images != 1 {
		t.Errorf("after the rejected posts: %d posts and %d images stored, want 1 and 1", posts, images)
	}
}

func testUnicode(t *testing.T, s store.Store) {
	// n four-byte characters, cycling through several emoji so that a store
	// mangling one of them shows.
	emoji := []rune("😀🎉🐙🌍🚀🧪𝄞🀄𠜎🫠")
	mixed := make([]rune, contract.MaxTextLen)
	for i := range mixed {
		mixed[i] = emoji[i%len(emoji)]
	}
	for name, text := range map[string]string{
		"emoji":                          "sunset 🌅 with friends 👋🏽 🇳🇴 and family 👨‍👩‍👧‍👦 🏳️‍🌈",
		"arabic":                         "مرحبا بالعالم، هذا منشور تجريبي",
		"hebrew":                         "שלום עולם, זה פוסט לדוגמה",
		"bidi mix":                       "abc שלום 123 مرحبا def \u202eevil\u202c",
		"combining marks":                "e\u0301 a\u0308 n\u0303 Z\u0351\u0362\u0334a\u0336\u0353l\u0317g\u0315o",
		"decomposed and composed differ": "\u0041\u030a \u00c5 \u212b",
		"supplementary planes":           "𠜎𠜱𠝹 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓂀",
		"whitespace and invisibles":      "line one\nline two\r\n\tindented\u00a0nbsp\u200bzwsp\ufeffbom",
		"max length emoji":               strings.Repeat("😀", contract.MaxTextLen),
		"max length mixed emoji":         string(mixed),
	} {
		p := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: text})
		// String equality is byte equality: no normalisation, no
		// replacement characters, no truncation.
		if got := must(s.GetPost(t.Context(), p.ID))(t); got.Text != text || p.Text != text {
			t.Errorf("%s: text changed:\n got %q\nwant %q", name, got.Text, text)
		}
	}
	_, err := s.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: strings.Repeat("😀", contract.MaxTextLen+1)})
	wantErr(t, "CreatePost of one character too many", err, store.ErrInvalid)
}

// testInvalid feeds arguments no store may accept, and checks that each is
// refused with ErrInvalid (not a panic, not a database error) and that
// nothing was stored.
func testInvalid(t *testing.T, s store.Store) {
	with := func(f func(*store.NewImage)) store.NewPost {
		im := newImage(100)
		f(im)
		return store.NewPost{ID: contract.NewID(), Text: "x", Image: im}
	}
	for name, np := range map[string]store.NewPost{
		"zero post id":         {Text: "x"},
		"empty text":           {ID: contract.NewID()},
		"blank text":           {ID: contract.NewID(), Text: " \t\n "},
		"too long text":        {ID: contract.NewID(), Text: strings.Repeat("a", contract.MaxTextLen+1)},
		"invalid UTF-8":        {ID: contract.NewID(), Text: "caf\xe9"},
		"zero image id":        with(func(im *store.NewImage) { im.ID = contract.ID{} }),
		"no image bytes":       with(func(im *store.NewImage) { im.Data = nil }),
		"unknown content type": with(func(im *store.NewImage) { im.ContentType = "text/html" }),
		"empty content type":   with(func(im *store.NewImage) { im.ContentType = "" }),
		"zero width":           with(func(im *store.NewImage) { im.Width = 0 }),
		"negative height":      with(func(im *store.NewImage) { im.Height = -1 }),
		"huge width":           with(func(im *store.NewImage) { im.Width = int(int64(math.MaxInt32) + int64(im.Height)) }),
	} {
		_, err := s.CreatePost(t.Context(), np)
		wantErr(t, "CreatePost with "+name, err, store.ErrInvalid)
	}
	list := func(o store.ListOptions) error { _, err := s.ListPosts(t.Context(), o); return err }
	ids := func(limit int) error { _, err := s.ImageIDs(t.Context(), contract.ID{}, limit); return err }
	wantErr(t, "ListPosts limit 0", list(store.ListOptions{}), store.ErrInvalid)
	wantErr(t, "ListPosts limit -1", list(store.ListOptions{Limit: -1}), store.ErrInvalid)
	wantErr(t, "ListPosts limit too large", list(store.ListOptions{Limit: store.MaxListLimit + 1}), store.ErrInvalid)
	wantErr(t, "ListPosts negative before", list(store.ListOptions{Before: -1, Limit: 1}), store.ErrInvalid)
	wantErr(t, "ImageIDs limit 0", ids(0), store.ErrInvalid)
	wantErr(t, "ImageIDs limit too large", ids(store.MaxListLimit+1), store.ErrInvalid)
	if posts, images := counts(t, s); posts != 0 || images != 0 {
		t.Fatalf("invalid posts left %d posts and %d images behind", posts, images)
	}
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
		var got []contract.ID
		after := contract.ID{}
		for page := 1; ; page++ {
			ids := must(s.ImageIDs(t.Context(), after, limit))(t)
			if len(ids) > limit || page > len(want)+1 {
				t.Fatalf("limit %d: page %d has %d ids", limit, page, len(ids))
			}
			if len(ids) == 0 {
				break
			}
			got = append(got, ids...)
			after = ids[len(ids)-1]
		}
		check(t, fmt.Sprintf("ids walked with limit %d (sorted by bytes)", limit), got, want)
	}
	// One more than want[3] in the last byte (or carried): it sorts between
	// want[3] and want[4] unless they are neighbours.
	notStored := want[3]
	for i := len(notStored) - 1; i >= 0; i-- {
		if notStored[i]++; notStored[i] != 0 {
			break
		}
	}
	var largest contract.ID
	for i := range largest {
		largest[i] = 0xff
	}
	check(t, "after a middle id", must(s.ImageIDs(t.Context(), want[10], 5))(t), want[11:16])
	check(t, "after an id not stored", must(s.ImageIDs(t.Context(), notStored, 100))(t), want[4:])
	if got := must(s.ImageIDs(t.Context(), largest, 10))(t); len(got) != 0 {
		t.Errorf("ImageIDs(ff…ff) = %v, want none", got)
	}
}

// testContextDone checks reads of ids not stored (ErrNotFound), then that
// every method gives up on a finished context, and that a CreatePost given
// up on stores nothing. A deadline that passed also counts as the database
// being unavailable: the service answers 503.
func testContextDone(t *testing.T, s store.Store) {
	existing := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "already here", Image: newImage(100)})
	missing := contract.NewID()
	for what, calls := range map[string][]call{
		"missing": reads(s, missing, missing), "zero id": reads(s, contract.ID{}, contract.ID{}),
		"the other kind's id": reads(s, existing.Image.ID, existing.ID),
	} {
		for _, c := range calls {
			wantErr(t, c.name+" of "+what, c.f(t.Context()), store.ErrNotFound)
		}
	}
	np := store.NewPost{ID: contract.NewID(), Text: "too late", Image: newImage(100)}
	calls := append(reads(s, existing.ID, existing.Image.ID),
		call{"CreatePost", func(ctx context.Context) error { _, err := s.CreatePost(ctx, np); return err }},
		call{"ListPosts", func(ctx context.Context) error { _, err := s.ListPosts(ctx, store.ListOptions{Limit: 5}); return err }},
		call{"ImageIDs", func(ctx context.Context) error { _, err := s.ImageIDs(ctx, contract.ID{}, 5); return err }},
		call{"Ping", s.Ping})
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	late, cancelLate := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancelLate()
	for _, c := range calls {
		// A canceled caller says nothing about the database.
		if err := c.f(canceled); !errors.Is(err, context.Canceled) || errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s, canceled: %v, want context.Canceled and no ErrUnavailable", c.name, err)
		}
		if err := c.f(late); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s, past deadline: %v, want context.DeadlineExceeded and ErrUnavailable", c.name, err)
		}
	}
	for _, c := range reads(s, np.ID, np.Image.ID)[:2] {
		wantErr(t, c.name+" of the post created with a done context", c.f(t.Context()), store.ErrNotFound)
	}
}

// testRequestKeys: a post made under a request key is made once. A repeat
// of the same request stores nothing and gets the first post back
// (ErrRepeated), also when eight run at once; the key used for another
// request is ErrKeyReused; expired keys are forgotten.
func testRequestKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	newKey := func(request string) *store.RequestKey {
		return &store.RequestKey{Key: sha256.Sum256([]byte(contract.NewID().String())), Hash: sha256.Sum256([]byte(request))}
	}
	key := newKey("request")
	first := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "once", Image: newImage(1 << 10), Request: key})
	again := store.NewPost{ID: contract.NewID(), Text: "once", Image: newImage(1 << 10), Request: key}
	p, err := s.CreatePost(ctx, again)
	wantErr(t, "repeat", err, store.ErrRepeated)
	check(t, "the post a repeat returns", p, first)
	_, err = s.ImageInfo(ctx, again.Image.ID)
	wantErr(t, "ImageInfo of the repeat's image", err, store.ErrNotFound)
	other := *key
	other.Hash = sha256.Sum256([]byte("another request"))
	_, err = s.CreatePost(ctx, store.NewPost{ID: contract.NewID(), Text: "other", Request: &other})
	wantErr(t, "key reused for another request", err, store.ErrKeyReused)
	if n, _ := counts(t, s); n != 1 {
		t.Fatalf("%d posts stored, want 1", n)
	}

	// Eight retries of a new request at once: one post.
	burst := newKey("burst")
	var wg sync.WaitGroup
	results, errs := make([]store.Post, 8), make([]error, 8)
	for i := range 8 {
		wg.Go(func() {
			results[i], errs[i] = s.CreatePost(ctx, store.NewPost{ID: contract.NewID(), Text: "burst", Request: burst})
		})
	}
	wg.Wait()
	made := 0
	for i, err := range errs {
		if err == nil {
			made++
		}
		if (err != nil && !errors.Is(err, store.ErrRepeated)) || results[i].ID != results[0].ID {
			t.Fatalf("retry %d: %v, post %s (the first got %s)", i, err, results[i].ID, results[0].ID)
		}
	}
	if n, _ := counts(t, s); made != 1 || n != 2 {
		t.Fatalf("eight retries at once made %d posts (%d stored), want 1", made, n-1)
	}

	// Keys expire: none is older than an hour ago; all are older than a
	// second from now, and once forgotten a key makes a new post.
	if n, err := s.DeleteRequestKeys(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("DeleteRequestKeys(an hour ago) = %d, %v; want 0", n, err)
	}
	if n, err := s.DeleteRequestKeys(ctx, time.Now().Add(time.Second)); err != nil || n != 2 {
		t.Fatalf("DeleteRequestKeys(now) = %d, %v; want 2", n, err)
	}
	mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "once", Request: key})
}
