// Package storetest is the conformance suite every store.Store must pass,
// and helpers that open stores for the tests of other packages.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/store"
)

// Run runs the suite. open must return a new, empty store, closed when t
// ends; the cases run in parallel, each on its own store.
func Run(t *testing.T, open func(testing.TB) store.Store) {
	for name, test := range map[string]func(*testing.T, store.Store){
		"CreateGet": testCreateGet, "ListKeyset": testListKeyset,
		"InvalidAndDuplicate": testDuplicate, "ImageIDs": testImageIDs,
		"ConcurrentCreate": testConcurrentCreate, "NotFoundAndContextDone": testContextDone,
		"RequestKeys": testRequestKeys, "Announcements": testAnnouncements,
		"AnnouncementClaims": testAnnouncementClaims,
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
	data := make([]byte, size)
	_, _ = rand.Read(data)
	return &store.NewImage{ID: contract.NewID(), ContentType: "image/jpeg", Width: 640, Height: 480, Data: data}
}

// newPost has a new id and, unless imageSize is 0, an image.
func newPost(text string, imageSize int) store.NewPost {
	np := store.NewPost{ID: contract.NewID(), Text: text}
	if imageSize > 0 {
		np.Image = newImage(imageSize)
	}
	return np
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

// check compares with DeepEqual, not Equal on the times: what the store
// returns must come back in UTC exactly as CreatePost returned it.
func check[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, show(got), show(want))
	}
}

func byBytes(a, b contract.ID) int { return bytes.Compare(a[:], b[:]) }

// counts returns how many posts and images s holds.
func counts(t testing.TB, s store.Store) (posts, images int) {
	t.Helper()
	ps := must(s.ListPosts(t.Context(), store.ListOptions{Limit: store.MaxListLimit}))(t)
	ids := must(s.ImageIDs(t.Context(), contract.ID{}, store.MaxListLimit))(t)
	return len(ps), len(ids)
}

func testCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	text := mustCreate(t, s, newPost("no picture today", 0)) // on the empty store
	check(t, "GetPost of the text-only post", must(s.GetPost(ctx, text.ID))(t), text)
	check(t, "ListPosts", must(s.ListPosts(ctx, store.ListOptions{Limit: 10}))(t), []store.Post{text})
	if ids := must(s.ImageIDs(ctx, contract.ID{}, 10))(t); text.Image != nil || len(ids) != 0 {
		t.Errorf("text-only post %s, ImageIDs %v; want no image", show(text), ids)
	}
	np := newPost("first light over the harbour", 64<<10)
	p := mustCreate(t, s, np)
	if text.Key <= 0 || p.Key <= text.Key || p.ID != np.ID || p.Text != np.Text || p.Image == nil {
		t.Fatalf("CreatePost returned %s, want key > %d > 0, id %s, text %q and an image", show(p), text.Key, np.ID, np.Text)
	}
	if p.CreatedAt.IsZero() || p.CreatedAt.Location() != time.UTC || p.CreatedAt.Nanosecond()%1000 != 0 {
		t.Errorf("CreatedAt = %v, want a UTC time in whole microseconds", p.CreatedAt)
	}
	check(t, "GetPost", must(s.GetPost(ctx, np.ID))(t), p)
	wantErr(t, "Ping", s.Ping(ctx), nil)

	// Texts are kept byte for byte: no normalisation, no replacement
	// characters, no truncation.
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
		"max length mixed emoji":         string([]rune(strings.Repeat("😀🎉🐙🌍🚀🧪𝄞🀄𠜎🫠", contract.MaxTextLen))[:contract.MaxTextLen]),
	} {
		p := mustCreate(t, s, newPost(text, 0))
		if got := must(s.GetPost(t.Context(), p.ID))(t); got.Text != text || p.Text != text {
			t.Errorf("%s: text changed:\n got %q\nwant %q", name, got.Text, text)
		}
	}

	// Images round trip, bytes (from one byte to 10 MiB) and metadata.
	for _, want := range []store.Image{
		{ContentType: "image/jpeg", Width: 4032, Height: 3024, Size: 10 << 20},
		{ContentType: "image/png", Width: 1, Height: 1, Size: 1},
		{ContentType: "image/gif", Width: 16, Height: 65535, Size: 1 << 20},
		{ContentType: "image/webp", Width: math.MaxInt32, Height: 7, Size: 100},
	} {
		t.Run(strings.TrimPrefix(want.ContentType, "image/"), func(t *testing.T) {
			t.Parallel()
			ni := newImage(int(want.Size))
			ni.ContentType, ni.Width, ni.Height = want.ContentType, want.Width, want.Height
			p := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: want.ContentType, Image: ni})
			want.ID, want.SHA256, want.CreatedAt = ni.ID, sha256.Sum256(ni.Data), p.CreatedAt
			check(t, "CreatePost", p.Image, &want)
			check(t, "ImageInfo", must(s.ImageInfo(t.Context(), ni.ID))(t), want)
			check(t, "GetPost", must(s.GetPost(t.Context(), p.ID))(t), p)
			im, data, err := s.ImageData(t.Context(), ni.ID)
			check(t, "ImageData", im, want)
			if err != nil || !bytes.Equal(data, ni.Data) {
				t.Errorf("ImageData returned %d bytes, %v; want the %d stored", len(data), err, len(ni.Data))
			}
		})
	}
}

func testListKeyset(t *testing.T, s store.Store) {
	var p []store.Post // oldest first
	for i := range 5 {
		p = append(p, mustCreate(t, s, newPost(fmt.Sprint("keyset ", i), 0)))
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
		if got := must(s.ListPosts(t.Context(), c.opts))(t); len(got) != 0 || len(c.want) != 0 {
			check(t, fmt.Sprintf("%s: ListPosts(%+v)", name, c.opts), got, c.want)
		}
	}
}

// testConcurrentCreate: many goroutines post at once, as uploads do under
// load; none may fail (SQLite must queue writers, not answer SQLITE_BUSY).
// Then the feed is walked a small page at a time while others keep
// posting: keys strictly descend (so no post shows twice) and every earlier
// post shows as CreatePost returned it.
func testConcurrentCreate(t *testing.T, s store.Store) {
	const workers, each, pageSize = 20, 15, 7
	var wg sync.WaitGroup
	before := make([]store.Post, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				p, err := s.CreatePost(t.Context(), newPost(fmt.Sprintf("worker %d post %d", w, i), []int{4096, 0}[i%2]))
				if err != nil {
					t.Errorf("worker %d: CreatePost: %v", w, err)
					return
				}
				before[w*each+i] = p
			}
		})
	}
	if wg.Wait(); t.Failed() {
		t.FailNow()
	}
	want := map[contract.ID]store.Post{}
	for _, p := range before {
		want[p.ID] = p
	}
	ctx, cancel := context.WithCancel(t.Context())
	inserted := make(chan struct{}, 1) // a post was made since the last page
	for range 3 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := s.CreatePost(ctx, newPost("meanwhile", 0)); err != nil {
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
	pages, last, short := 0, int64(0), false
	for {
		page := must(s.ListPosts(ctx, store.ListOptions{Before: last, Limit: pageSize}))(t)
		if len(page) == 0 {
			break
		}
		if pages++; len(page) > pageSize || short {
			t.Fatalf("page %d has %d posts (limit %d) or follows a short page, which must be the last",
				pages, len(page), pageSize)
		}
		short = len(page) < pageSize
		for _, p := range page {
			if last != 0 && p.Key >= last {
				t.Fatalf("page %d: key %d after key %d, want strictly descending", pages, p.Key, last)
			}
			last = p.Key
			if w, ok := want[p.ID]; ok {
				check(t, fmt.Sprintf("page %d", pages), p, w)
				delete(want, p.ID)
			} else if p.Text != "meanwhile" || p.Image != nil {
				t.Errorf("page %d: post %s was never created", pages, show(p))
			}
		}
		select { // an insert lands between two pages: the walk races the writers
		case <-inserted:
		case <-ctx.Done():
			t.Fatalf("waiting for a concurrent insert: %v", ctx.Err())
		}
	}
	if pages < len(before)/pageSize+1 {
		t.Errorf("walked %d pages, want at least %d", pages, len(before)/pageSize+1)
	}
	for _, p := range want {
		t.Errorf("post %s (key %d) existed before the walk but was skipped", p.ID, p.Key)
	}
}

type call struct {
	name string
	f    func(context.Context) error
}

// reads calls each read of one post and one image, and of the post's
// announcement.
func reads(s store.Store, post, image contract.ID) []call {
	return []call{
		{"GetPost", func(ctx context.Context) error { _, err := s.GetPost(ctx, post); return err }},
		{"ImageInfo", func(ctx context.Context) error { _, err := s.ImageInfo(ctx, image); return err }},
		{"GetAnnouncement", func(ctx context.Context) error { _, err := s.GetAnnouncement(ctx, post); return err }},
		{"ImageData", func(ctx context.Context) error { _, _, err := s.ImageData(ctx, image); return err }},
	}
}

// testDuplicate checks that a post or image id is never stored twice, and
// that a rejected post leaves nothing behind: its image and announcement,
// written in the same transaction, are rolled back (the counts at the end).
func testDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	testInvalid(t, s) // on the empty store
	orig := mustCreate(t, s, newPost("original", 1000))
	withImageID := func(np store.NewPost) store.NewPost {
		np.Image.ID = orig.Image.ID
		return np
	}
	for name, np := range map[string]store.NewPost{
		"post id, text only":        {ID: orig.ID, Text: "again"},
		"post id, with a new image": {ID: orig.ID, Text: "again", Image: newImage(3000)},
		"image id, new post":        withImageID(newPost("again", 2000)),
		"both ids":                  withImageID(store.NewPost{ID: orig.ID, Text: "again", Image: newImage(2000)}),
	} {
		_, err := s.CreatePost(ctx, np)
		wantErr(t, name+": CreatePost", err, store.ErrDuplicate)
	}
	check(t, "original post after the duplicates", must(s.GetPost(ctx, orig.ID))(t), orig)
	if _, data, err := s.ImageData(ctx, orig.Image.ID); err != nil || sha256.Sum256(data) != orig.Image.SHA256 {
		t.Errorf("original image after the duplicates: %v, or its bytes changed", err)
	}
	posts, images := counts(t, s)
	if st := must(s.AnnouncementStats(ctx))(t); posts != 1 || images != 1 || st.Pending != 1 {
		t.Errorf("after the rejected posts: %d posts, %d images, %d announcements stored, want 1 of each",
			posts, images, st.Pending)
	}
}

// testInvalid: arguments no store may accept are refused with ErrInvalid
// (not a panic, not a database error), and nothing is stored.
func testInvalid(t *testing.T, s store.Store) {
	with := func(f func(*store.NewImage)) store.NewPost {
		np := newPost("x", 100)
		f(np.Image)
		return np
	}
	for name, np := range map[string]store.NewPost{
		"zero post id":         {Text: "x"},
		"empty text":           {ID: contract.NewID()},
		"blank text":           newPost(" \t\n ", 0),
		"too long text":        newPost(strings.Repeat("a", contract.MaxTextLen+1), 0),
		"one emoji too many":   newPost(strings.Repeat("😀", contract.MaxTextLen+1), 0),
		"invalid UTF-8":        newPost("caf\xe9", 0),
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
		want = append(want, mustCreate(t, s, newPost(fmt.Sprint("picture ", i), 16)).Image.ID)
		if i%4 == 0 {
			mustCreate(t, s, newPost("words only", 0))
		}
	}
	slices.SortFunc(want, byBytes)
	for _, limit := range []int{1, 4, 23, 100} {
		var got []contract.ID
		for page, after := 1, (contract.ID{}); ; page++ {
			ids := must(s.ImageIDs(t.Context(), after, limit))(t)
			if len(ids) > limit || page > len(want)+1 {
				t.Fatalf("limit %d: page %d has %d ids", limit, page, len(ids))
			}
			if len(ids) == 0 {
				break
			}
			got, after = append(got, ids...), ids[len(ids)-1]
		}
		check(t, fmt.Sprintf("ids walked with limit %d (sorted by bytes)", limit), got, want)
	}
	var notStored contract.ID // want[3] plus one: sorts between want[3] and want[4]
	new(big.Int).Add(new(big.Int).SetBytes(want[3][:]), big.NewInt(1)).FillBytes(notStored[:])
	check(t, "after a middle id", must(s.ImageIDs(t.Context(), want[10], 5))(t), want[11:16])
	check(t, "after an id not stored", must(s.ImageIDs(t.Context(), notStored, 100))(t), want[4:])
	if got := must(s.ImageIDs(t.Context(), contract.ID(bytes.Repeat([]byte{0xff}, 16)), 10))(t); len(got) != 0 {
		t.Errorf("ImageIDs(ff…ff) = %v, want none", got)
	}
}

// testContextDone checks reads of ids not stored (ErrNotFound), then that
// every method gives up on a finished context, and that a CreatePost given
// up on stores nothing. A passed deadline also counts as the database being
// unavailable (the services answer 503); a canceled caller does not.
func testContextDone(t *testing.T, s store.Store) {
	existing := mustCreate(t, s, newPost("already here", 100))
	for what, calls := range map[string][]call{
		"missing": reads(s, contract.NewID(), contract.NewID()), "zero id": reads(s, contract.ID{}, contract.ID{}),
		"the other kind's id": reads(s, existing.Image.ID, existing.ID),
	} {
		for _, c := range calls {
			wantErr(t, c.name+" of "+what, c.f(t.Context()), store.ErrNotFound)
		}
	}
	np := newPost("too late", 100)
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
		if err := c.f(canceled); !errors.Is(err, context.Canceled) || errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s, canceled: %v, want context.Canceled and no ErrUnavailable", c.name, err)
		}
		if err := c.f(late); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s, past deadline: %v, want context.DeadlineExceeded and ErrUnavailable", c.name, err)
		}
	}
	for _, c := range reads(s, np.ID, np.Image.ID)[:3] {
		wantErr(t, c.name+" of the post created with a done context", c.f(t.Context()), store.ErrNotFound)
	}
}

// testRequestKeys: a post made under a request key is made once. A repeat
// stores nothing and gets the first post back (ErrRepeated), also when
// eight run at once; the key of another request is ErrKeyReused; expired
// keys are forgotten.
func testRequestKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	newKey := func(request string) *store.RequestKey {
		return &store.RequestKey{Key: sha256.Sum256([]byte(contract.NewID().String())), Hash: sha256.Sum256([]byte(request))}
	}
	key := newKey("request")
	first, again := newPost("once", 1<<10), newPost("once", 1<<10)
	first.Request, again.Request = key, key
	orig := mustCreate(t, s, first)
	p, err := s.CreatePost(ctx, again)
	wantErr(t, "repeat", err, store.ErrRepeated)
	check(t, "the post a repeat returns", p, orig)
	other := newPost("other", 0)
	other.Request = &store.RequestKey{Key: key.Key, Hash: sha256.Sum256([]byte("another request"))}
	_, err = s.CreatePost(ctx, other)
	wantErr(t, "key reused for another request", err, store.ErrKeyReused)
	if posts, images := counts(t, s); posts != 1 || images != 1 {
		t.Fatalf("%d posts and %d images stored, want 1 of each (none of the repeat's)", posts, images)
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

	// No key is older than an hour ago; both are older than a second from
	// now; and once forgotten, a key makes a new post.
	check(t, "DeleteRequestKeys(an hour ago)", must(s.DeleteRequestKeys(ctx, time.Now().Add(-time.Hour)))(t), 0)
	check(t, "DeleteRequestKeys(now)", must(s.DeleteRequestKeys(ctx, time.Now().Add(time.Second)))(t), 2)
	mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "once", Request: key})
}

// The announcements outbox: CreatePost queues one pending announcement per
// post, in the post's transaction; claims hand each out once per lease.

func announcement(t *testing.T, s store.Store, id contract.ID) store.AnnouncementRecord {
	t.Helper()
	return must(s.GetAnnouncement(t.Context(), id))(t)
}

func claim(t *testing.T, s store.Store, now, until time.Time, limit int) []store.Announcement {
	t.Helper()
	return must(s.ClaimAnnouncements(t.Context(), now, until, limit))(t)
}

func postIDs(as []store.Announcement) (ids []contract.ID) {
	for _, a := range as {
		ids = append(ids, a.PostID)
	}
	return ids
}

// testAnnouncements: a post queues its announcement, due at once; those
// made before the bot was connected are skipped, unless leased.
func testAnnouncements(t *testing.T, s store.Store) {
	ctx := t.Context()
	check(t, "stats of an empty store", must(s.AnnouncementStats(ctx))(t), store.AnnouncementStats{})
	before, leased := mustCreate(t, s, newPost("with a photo", 100)), mustCreate(t, s, newPost("text only", 0))
	for _, p := range []store.Post{before, leased} {
		check(t, "announcement of a new post", announcement(t, s, p.ID), store.AnnouncementRecord{PostID: p.ID, DueAt: p.CreatedAt})
	}
	check(t, "stats", must(s.AnnouncementStats(ctx))(t),
		store.AnnouncementStats{Pending: 2, OldestPending: before.CreatedAt, NextDue: before.CreatedAt})

	// The first time given for a chat is kept; each chat has its own.
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	for _, c := range []struct {
		chat     string
		at, want time.Time
	}{{"-1001234", t0, t0}, {"-1001234", t0.Add(time.Hour), t0}, {"@another_channel", t0.Add(time.Hour), t0.Add(time.Hour)}} {
		check(t, "AnnounceSince("+c.chat+")", must(s.AnnounceSince(ctx, c.chat, c.at))(t), c.want)
	}
	_, err := s.AnnounceSince(ctx, "", t0)
	wantErr(t, "AnnounceSince of no chat", err, store.ErrInvalid)

	// Both are claimed; one is put back, the other stays leased.
	as := claim(t, s, t0, t0.Add(time.Minute), 10)
	check(t, "claimed", postIDs(as), []contract.ID{before.ID, leased.ID})
	putBack := store.AnnouncementOutcome{State: store.AnnouncementPending, RetryAt: t0}
	wantErr(t, "put back", s.FinishAnnouncement(ctx, as[0], t0, putBack), nil)
	after := mustCreate(t, s, newPost("after the bot", 0))
	// The leased one is left to its claimer.
	check(t, "skipped", must(s.SkipAnnouncements(ctx, t0, t0, "made before the bot was connected"))(t), 1)
	if r := announcement(t, s, before.ID); r.State != store.AnnouncementSkipped ||
		r.LastError != "made before the bot was connected" || r.DoneAt.IsZero() {
		t.Errorf("post before the bot: %+v, want skipped", r)
	}
	for _, id := range []contract.ID{leased.ID, after.ID} {
		if r := announcement(t, s, id); r.State != store.AnnouncementPending {
			t.Errorf("leased post or post after the bot: %+v, want still pending", r)
		}
	}
	// The new post, then the one whose lease ended.
	check(t, "claimable after the skip", postIDs(claim(t, s, t0.Add(time.Minute), t0.Add(2*time.Minute), 10)),
		[]contract.ID{after.ID, leased.ID})
}

// testAnnouncementClaims: racing claimers get each announcement once; a
// lease that ran out is claimed again with a new token, and the old one can
// neither renew nor finish; then each outcome is recorded.
func testAnnouncementClaims(t *testing.T, s store.Store) {
	ctx := t.Context()
	var posts []store.Post
	for range 30 {
		posts = append(posts, mustCreate(t, s, newPost("announce me", 0)))
	}
	now := time.Now().Add(time.Second).UTC().Truncate(time.Microsecond)
	lease := now.Add(time.Minute)
	var (
		mu  sync.Mutex
		got []store.Announcement
		wg  sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for {
				as, err := s.ClaimAnnouncements(ctx, now, lease, 3)
				if err != nil || len(as) == 0 {
					wantErr(t, "ClaimAnnouncements", err, nil)
					return
				}
				mu.Lock()
				got = append(got, as...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	want := make([]contract.ID, len(posts))
	for i, p := range posts {
		want[i] = p.ID
	}
	slices.SortFunc(want, byBytes)
	check(t, "claimed post ids, each once", slices.SortedFunc(slices.Values(postIDs(got)), byBytes), want)
	for _, a := range got {
		if a.Attempts != 1 || a.Claim.IsZero() || a.PostedAt.IsZero() {
			t.Errorf("claim %+v: want attempt 1, a claim token and the post's time", a)
		}
	}
	if again := claim(t, s, lease.Add(-time.Millisecond), lease.Add(time.Minute), 100); len(again) != 0 {
		t.Errorf("claimed %d announcements under lease", len(again))
	}
	check(t, "stats under lease", must(s.AnnouncementStats(ctx))(t),
		store.AnnouncementStats{Pending: 30, OldestPending: posts[0].CreatedAt, NextDue: lease})
	as := claim(t, s, lease, lease.Add(24*time.Hour), 100)
	check(t, "claimed after the leases ended", slices.SortedFunc(slices.Values(postIDs(as)), byBytes), want)
	old := got[0]
	fresh := as[slices.IndexFunc(as, func(a store.Announcement) bool { return a.PostID == old.PostID })]
	if fresh.Attempts != 2 || fresh.Claim == old.Claim {
		t.Errorf("second claim %+v, want attempt 2 and a new token", fresh)
	}
	retryAt := now.Add(time.Hour) // the other leases run beyond
	outcome := func(state store.AnnouncementState, err string) store.AnnouncementOutcome {
		return store.AnnouncementOutcome{State: state, MessageID: 4242, RetryAt: retryAt, Error: err}
	}
	wantErr(t, "renewal with a lost claim", s.RenewAnnouncement(ctx, old, lease.Add(time.Hour)), store.ErrClaimLost)
	wantErr(t, "finish with a lost claim", s.FinishAnnouncement(ctx, old, lease, outcome(store.AnnouncementSent, "")),
		store.ErrClaimLost)

	sent, retry, failed, renewed := as[0], as[1], as[2], as[3]
	for what, err := range map[string]error{
		"send":  s.FinishAnnouncement(ctx, sent, lease, outcome(store.AnnouncementSent, "")),
		"retry": s.FinishAnnouncement(ctx, retry, lease, outcome(store.AnnouncementPending, "telegram: 500")),
		"fail":  s.FinishAnnouncement(ctx, failed, lease, outcome(store.AnnouncementFailed, "not sent within 24h")),
		"renew": s.RenewAnnouncement(ctx, renewed, now.Add(2*time.Hour)),
		// Renewing to the same time again still holds the claim.
		"renew to the same time": s.RenewAnnouncement(ctx, renewed, now.Add(2*time.Hour)),
	} {
		wantErr(t, what, err, nil)
	}
	for _, want := range []store.AnnouncementRecord{
		{PostID: sent.PostID, State: store.AnnouncementSent, MessageID: 4242, DoneAt: lease, Attempts: 2},
		{PostID: retry.PostID, State: store.AnnouncementPending, DueAt: retryAt, LastError: "telegram: 500", Attempts: 2},
		{PostID: failed.PostID, State: store.AnnouncementFailed, LastError: "not sent within 24h", DoneAt: lease, Attempts: 2},
	} {
		got := announcement(t, s, want.PostID)
		if want.State != store.AnnouncementPending {
			want.DueAt = got.DueAt // not asserted once done
		}
		check(t, want.State.String(), got, want)
	}
	// A finished claim is spent.
	wantErr(t, "finishing twice", s.FinishAnnouncement(ctx, sent, lease, outcome(store.AnnouncementFailed, "")), store.ErrClaimLost)
	wantErr(t, "finishing a released claim", s.FinishAnnouncement(ctx, retry, lease, outcome(store.AnnouncementSent, "")),
		store.ErrClaimLost)
	// Only the retry is due at its time; the renewed lease holds beyond.
	if got := claim(t, s, retryAt.Add(-time.Millisecond), retryAt.Add(time.Minute), 100); len(got) != 0 {
		t.Errorf("claimed %v before the retry was due", postIDs(got))
	}
	pending := slices.IndexFunc(posts, func(p store.Post) bool { return p.ID != sent.PostID && p.ID != failed.PostID })
	check(t, "stats", must(s.AnnouncementStats(ctx))(t),
		store.AnnouncementStats{Pending: 28, OldestPending: posts[pending].CreatedAt, NextDue: retryAt})
	got = claim(t, s, retryAt, retryAt.Add(time.Minute), 100)
	if len(got) != 1 || got[0].PostID != retry.PostID || got[0].Attempts != 3 || got[0].LastError != "telegram: 500" {
		t.Errorf("claim at the retry time: %+v, want the retry, attempt 3, with the last error", got)
	}
	_, err := s.ClaimAnnouncements(ctx, now, now, 0)
	wantErr(t, "claim limit 0", err, store.ErrInvalid)
	wantErr(t, "unknown state", s.FinishAnnouncement(ctx, renewed, now, store.AnnouncementOutcome{State: 9}), store.ErrInvalid)
}
