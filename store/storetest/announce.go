package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/store"
)

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

func postIDs(as []store.Announcement) []contract.ID {
	out := make([]contract.ID, len(as))
	for i, a := range as {
		out[i] = a.PostID
	}
	return out
}

// testAnnouncements: a post queues its announcement; those made before
// the bot was connected are skipped.
func testAnnouncements(t *testing.T, s store.Store) {
	ctx := t.Context()
	if st := must(s.AnnouncementStats(ctx))(t); st != (store.AnnouncementStats{}) {
		t.Errorf("stats of an empty store: %+v, want zero", st)
	}
	p1 := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "with a photo", Image: newImage(100)})
	p2 := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "text only"})
	for _, p := range []store.Post{p1, p2} {
		r := announcement(t, s, p.ID)
		if r.State != store.AnnouncementPending || r.Attempts != 0 || r.MessageID != 0 || !r.DoneAt.IsZero() ||
			!r.DueAt.Equal(p.CreatedAt) {
			t.Errorf("announcement of a new post: %+v, want pending, due at the post's time %v", r, p.CreatedAt)
		}
	}
	st := must(s.AnnouncementStats(ctx))(t)
	if st.Pending != 2 || !st.OldestPending.Equal(p1.CreatedAt) || !st.NextDue.Equal(p1.CreatedAt) {
		t.Errorf("stats: %+v, want 2 pending, oldest and next due at %v", st, p1.CreatedAt)
	}
	_, err := s.GetAnnouncement(ctx, contract.NewID())
	wantErr(t, "GetAnnouncement of no post", err, store.ErrNotFound)
	// A post that is not stored queues nothing: the row is in the post's
	// transaction.
	_, err = s.CreatePost(ctx, store.NewPost{ID: p1.ID, Text: "again"})
	wantErr(t, "duplicate CreatePost", err, store.ErrDuplicate)
	dup := store.NewPost{ID: contract.NewID(), Text: "image id taken", Image: newImage(10)}
	dup.Image.ID = p1.Image.ID
	_, err = s.CreatePost(ctx, dup)
	wantErr(t, "CreatePost with a taken image id", err, store.ErrDuplicate)
	_, err = s.GetAnnouncement(ctx, dup.ID)
	wantErr(t, "announcement of a rolled back post", err, store.ErrNotFound)
	if st := must(s.AnnouncementStats(ctx))(t); st.Pending != 2 {
		t.Errorf("%d pending after refused posts, want 2", st.Pending)
	}

	// Skipping what was made before the bot was connected.
	before, leased := p1, p2
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	since := must(s.AnnounceSince(ctx, "-1001234", t0))(t)
	if !since.Equal(t0) {
		t.Errorf("first AnnounceSince = %v, want %v", since, t0)
	}
	// Later calls, from any announcer, read the first time.
	if again, err := s.AnnounceSince(ctx, "-1001234", t0.Add(time.Hour)); err != nil || !again.Equal(t0) {
		t.Errorf("second AnnounceSince = %v, %v; want %v", again, err, t0)
	}
	if other, err := s.AnnounceSince(ctx, "@another_channel", t0.Add(time.Hour)); err != nil || !other.Equal(t0.Add(time.Hour)) {
		t.Errorf("another chat's AnnounceSince = %v, %v; want its own time", other, err)
	}
	_, err = s.AnnounceSince(ctx, "", t0)
	wantErr(t, "AnnounceSince of no chat", err, store.ErrInvalid)

	// Both are claimed; one is put back, the other stays leased.
	as := claim(t, s, t0, t0.Add(time.Minute), 10)
	if !slices.Equal(postIDs(as), []contract.ID{before.ID, leased.ID}) {
		t.Fatalf("claimed %v, want both posts", postIDs(as))
	}
	putBack := store.AnnouncementOutcome{State: store.AnnouncementPending, RetryAt: t0}
	wantErr(t, "put back", s.FinishAnnouncement(ctx, as[0], t0, putBack), nil)
	after := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "after the bot"})
	if n := must(s.SkipAnnouncements(ctx, since, t0, "made before the bot was connected"))(t); n != 1 {
		t.Errorf("skipped %d, want 1 (the leased one is left to its claimer)", n)
	}
	if r := announcement(t, s, before.ID); r.State != store.AnnouncementSkipped ||
		r.LastError != "made before the bot was connected" || r.DoneAt.IsZero() {
		t.Errorf("post before the bot: %+v, want skipped", r)
	}
	for _, id := range []contract.ID{leased.ID, after.ID} {
		if r := announcement(t, s, id); r.State != store.AnnouncementPending {
			t.Errorf("leased post or post after the bot: %+v, want still pending", r)
		}
	}
	if got := claim(t, s, t0.Add(time.Minute), t0.Add(2*time.Minute), 10); !slices.Equal(postIDs(got), []contract.ID{after.ID, leased.ID}) {
		t.Errorf("claimable after the skip: %v, want the new post, then the one whose lease ended", postIDs(got))
	}
}

func testAnnouncementClaimOnce(t *testing.T, s store.Store) {
	const n = 30
	var want []contract.ID
	for range n {
		want = append(want, mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "announce me"}).ID)
	}
	now := time.Now().Add(time.Second)
	lease := now.Add(time.Minute)
	// Claimers race; every announcement is handed out exactly once.
	var (
		mu  sync.Mutex
		got []store.Announcement
		wg  sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for {
				as, err := s.ClaimAnnouncements(t.Context(), now, lease, 3)
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
	ids := postIDs(got)
	byBytes := func(a, b contract.ID) int { return slices.Compare(a[:], b[:]) }
	slices.SortFunc(ids, byBytes)
	slices.SortFunc(want, byBytes)
	if !slices.Equal(ids, want) {
		t.Fatalf("claimed %d announcements (%d distinct of the %d posts); want each once",
			len(got), len(slices.Compact(slices.Clone(ids))), n)
	}
	for _, a := range got {
		if a.Attempts != 1 || a.Claim.IsZero() || a.PostedAt.IsZero() {
			t.Errorf("claim %+v: want attempt 1, a claim token and the post's time", a)
		}
	}
	// While the leases run, nothing is due.
	if again := claim(t, s, lease.Add(-time.Millisecond), lease.Add(time.Minute), 100); len(again) != 0 {
		t.Errorf("claimed %d announcements under lease", len(again))
	}
	st, err := s.AnnouncementStats(t.Context())
	if err != nil || st.Pending != n || !st.NextDue.Equal(lease.UTC().Truncate(time.Microsecond)) {
		t.Errorf("stats under lease: %+v %v, want %d pending, next due at the lease's end %v", st, err, n, lease)
	}
	// A lease that ran out is claimed again, with a new token; the old
	// one can neither renew nor finish.
	after := claim(t, s, lease, lease.Add(time.Minute), 100)
	if len(after) != n {
		t.Fatalf("claimed %d after the leases ended, want %d", len(after), n)
	}
	old := got[0]
	fresh := after[slices.IndexFunc(after, func(a store.Announcement) bool { return a.PostID == old.PostID })]
	if fresh.Attempts != 2 || fresh.Claim == old.Claim {
		t.Errorf("second claim %+v, want attempt 2 and a new token", fresh)
	}
	sent := func(id int64) store.AnnouncementOutcome {
		return store.AnnouncementOutcome{State: store.AnnouncementSent, MessageID: id}
	}
	wantErr(t, "renewal with a lost claim", s.RenewAnnouncement(t.Context(), old, lease.Add(time.Hour)), store.ErrClaimLost)
	wantErr(t, "finish with a lost claim", s.FinishAnnouncement(t.Context(), old, lease, sent(1)), store.ErrClaimLost)
	wantErr(t, "finish with the current claim", s.FinishAnnouncement(t.Context(), fresh, lease, sent(77)), nil)
	if r := announcement(t, s, fresh.PostID); r.State != store.AnnouncementSent || r.MessageID != 77 {
		t.Errorf("after finishing: %+v, want sent as message 77", r)
	}
}

func testAnnouncementOutcomes(t *testing.T, s store.Store) {
	ctx := t.Context()
	var posts []store.Post
	for range 4 {
		posts = append(posts, mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "outcomes"}))
	}
	now := time.Now().Add(time.Second).UTC().Truncate(time.Microsecond)
	as := claim(t, s, now, now.Add(10*time.Second), 10)
	// Claims come oldest first.
	if !slices.Equal(postIDs(as), []contract.ID{posts[0].ID, posts[1].ID, posts[2].ID, posts[3].ID}) {
		t.Fatalf("claimed %v, want the 4 posts oldest first", postIDs(as))
	}
	sent, retry, failed, renewed := as[0], as[1], as[2], as[3]
	retryAt := now.Add(time.Hour)
	for what, err := range map[string]error{
		"send": s.FinishAnnouncement(ctx, sent, now, store.AnnouncementOutcome{State: store.AnnouncementSent, MessageID: 4242}),
		"retry": s.FinishAnnouncement(ctx, retry, now,
			store.AnnouncementOutcome{State: store.AnnouncementPending, RetryAt: retryAt, Error: "telegram: 500"}),
		"fail": s.FinishAnnouncement(ctx, failed, now,
			store.AnnouncementOutcome{State: store.AnnouncementFailed, Error: "not sent within 24h"}),
		"renew": s.RenewAnnouncement(ctx, renewed, now.Add(2*time.Hour)),
	} {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// Renewing to the same time again still holds the claim.
	wantErr(t, "renew to the same time", s.RenewAnnouncement(ctx, renewed, now.Add(2*time.Hour)), nil)
	if r := announcement(t, s, sent.PostID); r.State != store.AnnouncementSent || r.MessageID != 4242 ||
		!r.DoneAt.Equal(now) || r.Attempts != 1 {
		t.Errorf("sent: %+v", r)
	}
	if r := announcement(t, s, retry.PostID); r.State != store.AnnouncementPending || !r.DueAt.Equal(retryAt) ||
		r.LastError != "telegram: 500" || !r.DoneAt.IsZero() {
		t.Errorf("retry: %+v, want pending until %v with the error", r, retryAt)
	}
	if r := announcement(t, s, failed.PostID); r.State != store.AnnouncementFailed ||
		r.LastError != "not sent within 24h" || !r.DoneAt.Equal(now) {
		t.Errorf("failed: %+v", r)
	}
	// A finished claim is spent.
	wantErr(t, "finishing twice", s.FinishAnnouncement(ctx, sent, now,
		store.AnnouncementOutcome{State: store.AnnouncementFailed}), store.ErrClaimLost)
	wantErr(t, "finishing a released claim", s.FinishAnnouncement(ctx, retry, now,
		store.AnnouncementOutcome{State: store.AnnouncementSent}), store.ErrClaimLost)
	// Only the retry is due at its time; the renewed lease holds beyond.
	if got := claim(t, s, retryAt.Add(-time.Millisecond), retryAt.Add(time.Minute), 10); len(got) != 0 {
		t.Errorf("claimed %v before the retry was due", postIDs(got))
	}
	st := must(s.AnnouncementStats(ctx))(t)
	if st.Pending != 2 || !st.OldestPending.Equal(posts[1].CreatedAt) || !st.NextDue.Equal(retryAt) {
		t.Errorf("stats: %+v, want 2 pending, oldest %v, next due %v", st, posts[1].CreatedAt, retryAt)
	}
	got := claim(t, s, retryAt, retryAt.Add(time.Minute), 10)
	if len(got) != 1 || got[0].PostID != retry.PostID || got[0].Attempts != 2 || got[0].LastError != "telegram: 500" {
		t.Errorf("claim at the retry time: %+v, want the retry, attempt 2, with the last error", got)
	}
	_, err := s.ClaimAnnouncements(ctx, now, now, 0)
	wantErr(t, "claim limit 0", err, store.ErrInvalid)
	wantErr(t, "unknown state", s.FinishAnnouncement(ctx, renewed, now, store.AnnouncementOutcome{State: 9}), store.ErrInvalid)
}
