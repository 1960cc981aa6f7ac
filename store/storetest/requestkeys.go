package storetest

import (
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/store"
)

// testRequestKeys: a post made under a request key is made once. A repeat
// of the same request stores nothing and gets the first post back
// (ErrRepeated), also when eight run at once; the key used for another
// request is ErrKeyReused; expired keys are forgotten.
func testRequestKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	key := &store.RequestKey{Key: sha256.Sum256([]byte("key " + contract.NewID().String())), Hash: sha256.Sum256([]byte("request"))}
	count := func() int {
		ps, err := s.ListPosts(ctx, store.ListOptions{Limit: store.MaxListLimit})
		if err != nil {
			t.Fatal(err)
		}
		return len(ps)
	}
	first := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "once", Image: newImage(1 << 10), Request: key})

	again := store.NewPost{ID: contract.NewID(), Text: "once", Image: newImage(1 << 10), Request: key}
	p, err := s.CreatePost(ctx, again)
	if !errors.Is(err, store.ErrRepeated) {
		t.Fatalf("repeat: %v, want ErrRepeated", err)
	}
	checkPost(t, "the post a repeat returns", p, first)
	if _, err := s.ImageInfo(ctx, again.Image.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the repeat's image was stored: %v", err)
	}

	other := *key
	other.Hash = sha256.Sum256([]byte("another request"))
	if _, err := s.CreatePost(ctx, store.NewPost{ID: contract.NewID(), Text: "other", Request: &other}); !errors.Is(err, store.ErrKeyReused) {
		t.Fatalf("key reused for another request: %v, want ErrKeyReused", err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d posts stored, want 1", n)
	}

	// Eight retries of a new request at once: one post.
	burst := &store.RequestKey{Key: sha256.Sum256([]byte("burst " + contract.NewID().String())), Hash: sha256.Sum256([]byte("burst"))}
	var wg sync.WaitGroup
	results := make([]store.Post, 8)
	errs := make([]error, 8)
	for i := range 8 {
		wg.Go(func() {
			results[i], errs[i] = s.CreatePost(ctx, store.NewPost{ID: contract.NewID(), Text: "burst", Request: burst})
		})
	}
	wg.Wait()
	made := 0
	for i, err := range errs {
		switch {
		case err == nil:
			made++
		case !errors.Is(err, store.ErrRepeated):
			t.Fatalf("retry %d: %v", i, err)
		}
		if results[i].ID != results[0].ID {
			t.Fatalf("retries returned posts %s and %s", results[0].ID, results[i].ID)
		}
	}
	if made != 1 || count() != 2 {
		t.Fatalf("eight retries at once made %d posts (%d stored), want 1", made, count()-1)
	}

	// Keys expire: none is older than an hour ago; all are older than a
	// second from now, and once forgotten a key makes a new post.
	if n, err := s.DeleteRequestKeys(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("DeleteRequestKeys(an hour ago) = %d, %v; want 0", n, err)
	}
	if n, err := s.DeleteRequestKeys(ctx, time.Now().Add(time.Second)); err != nil || n != 2 {
		t.Fatalf("DeleteRequestKeys(now) = %d, %v; want 2", n, err)
	}
	if _, err := s.CreatePost(ctx, store.NewPost{ID: contract.NewID(), Text: "once", Request: key}); err != nil {
		t.Fatalf("a forgotten key: %v", err)
	}
}
