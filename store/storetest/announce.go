package storetest

import (
	"errors"
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
	r, err := s.GetAnnouncement(t.Context(), id)
	if err != nil {
		t.Fatalf("GetAnnouncement(%s): %v", id, err)
	}
	return r
}

func claim(t *testing.T, s store.Store, now, until time.Time, limit int) []store.Announcement {
	t.Helper()
	got, err := s.ClaimAnnouncements(t.Context(), now, until, limit)
	if err != nil {
		t.Fatalf("ClaimAnnouncements: %v", err)
	}
	return got
}

func postIDs(as []store.Announcement) []contract.ID {
	out := make([]contract.ID, len(as))
	for i, a := range as {
		out[i] = a.PostID
	}
	return out
}

func testAnnouncementQueued(t *testing.T, s store.Store) {
	ctx := t.Context()
	st, err := s.AnnouncementStats(ctx)
	if err != nil {
		t.Fatalf("AnnouncementStats: %v", err)
	}
	if st.Pending != 0 || !st.OldestPending.IsZero() || !st.NextDue.IsZero() {
		t.Errorf("stats of an empty store: %+v, want zero", st)
	}
	p1 := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "with a photo", Image: newImage(100)})
	p2 := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "text only"})
	for _, p := range []store.Post{p1, p2} {
		r := announcement(t, s, p.ID)
		if r.State != store.AnnouncementPending || r.Attempts != 0 || r.MessageID != 0 || !r.DoneAt.IsZero() || !r.DueAt.Equal(p.CreatedAt) {
			t.Errorf("announcement of a new post: %+v, want pending, due at the post's time %v", r, p.CreatedAt)
		}
	}
	st, err = s.AnnouncementStats(ctx)
	if err != nil {
		t.Fatalf("AnnouncementStats: %v", err)
	}
	if st.Pending != 2 || !st.OldestPending.Equal(p1.CreatedAt) || !st.NextDue.Equal(p1.CreatedAt) {
		t.Errorf("stats: %+v, want 2 pending, oldest and next due at %v", st, p1.CreatedAt)
	}
	if _, err := s.GetAnnouncement(ctx, contract.NewID()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetAnnouncement of no post: %v, want ErrNotFound", err)
	}
	// A post that is not stored queues nothing: the row is in the post's
	// transaction.
	if _, err := s.CreatePost(ctx, store.NewPost{ID: p1.ID, Text: "again"}); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("duplicate CreatePost: %v", err)
	}
	dup := store.NewPost{ID: contract.NewID(), Text: "image id taken", Image: newImage(10)}
	dup.Image.ID = p1.Image.ID
	if _, err := s.CreatePost(ctx, dup); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("CreatePost with a taken image id: %v", err)
	}
	if _, err := s.GetAnnouncement(ctx, dup.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("announcement of a rolled back post: %v, want ErrNotFound", err)
	}
	if st, _ := s.AnnouncementStats(ctx); st.Pending != 2 {
		t.Errorf("%d pending after refused posts, want 2", st.Pending)
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
				if err != nil {
					t.Errorf("ClaimAnnouncements: %v", err)
					return
				}
				if len(as) == 0 {
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
	slices.SortFunc(ids, func(a, b contract.ID) int { return slices.Compare(a[:], b[:]) })
	slices.SortFunc(want, func(a, b contract.ID) int { return slices.Compare(a[:], b[:]) })
	if !slices.Equal(ids, want) {
		t.Fatalf("claimed %d announcements (%d distinct of the %d posts); want each once", len(got), len(slices.Compact(slices.Clone(ids))), n)
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
	var fresh store.Announcement
	for _, a := range after {
		if a.PostID == old.PostID {
			fresh = a
		}
	}
	if fresh.Attempts != 2 || fresh.Claim == old.Claim {
		t.Errorf("second claim %+v, want attempt 2 and a new token", fresh)
	}
	if err := s.RenewAnnouncement(t.Context(), old, lease.Add(time.Hour)); !errors.Is(err, store.ErrClaimLost) {
		t.Errorf("renewal with a lost claim: %v, want ErrClaimLost", err)
	}
	if err := s.FinishAnnouncement(t.Context(), old, lease, store.AnnouncementOutcome{State: store.AnnouncementSent, MessageID: 1}); !errors.Is(err, store.ErrClaimLost) {
		t.Errorf("finish with a lost claim: %v, want ErrClaimLost", err)
	}
	if err := s.FinishAnnouncement(t.Context(), fresh, lease, store.AnnouncementOutcome{State: store.AnnouncementSent, MessageID: 77}); err != nil {
		t.Errorf("finish with the current claim: %v", err)
	}
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
	if len(as) != 4 {
		t.Fatalf("claimed %d, want 4", len(as))
	}
	// Claims come oldest first.
	for i, a := range as {
		if a.PostID != posts[i].ID {
			t.Fatalf("claim %d is post %s, want %s (oldest first)", i, a.PostID, posts[i].ID)
		}
	}
	byID := map[contract.ID]store.Announcement{}
	for _, a := range as {
		byID[a.PostID] = a
	}
	sent, retry, failed, renewed := byID[posts[0].ID], byID[posts[1].ID], byID[posts[2].ID], byID[posts[3].ID]

	if err := s.FinishAnnouncement(ctx, sent, now, store.AnnouncementOutcome{State: store.AnnouncementSent, MessageID: 4242}); err != nil {
		t.Fatal(err)
	}
	retryAt := now.Add(time.Hour)
	if err := s.FinishAnnouncement(ctx, retry, now, store.AnnouncementOutcome{State: store.AnnouncementPending, RetryAt: retryAt, Error: "telegram: 500"}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishAnnouncement(ctx, failed, now, store.AnnouncementOutcome{State: store.AnnouncementFailed, Error: "not sent within 24h"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RenewAnnouncement(ctx, renewed, now.Add(2*time.Hour)); err != nil {
		t.Fatalf("renew: %v", err)
	}
	// Renewing to the same time again still holds the claim.
	if err := s.RenewAnnouncement(ctx, renewed, now.Add(2*time.Hour)); err != nil {
		t.Fatalf("renew to the same time: %v", err)
	}
	if r := announcement(t, s, sent.PostID); r.State != store.AnnouncementSent || r.MessageID != 4242 || !r.DoneAt.Equal(now) || r.Attempts != 1 {
		t.Errorf("sent: %+v", r)
	}
	if r := announcement(t, s, retry.PostID); r.State != store.AnnouncementPending || !r.DueAt.Equal(retryAt) || r.LastError != "telegram: 500" || !r.DoneAt.IsZero() {
		t.Errorf("retry: %+v, want pending until %v with the error", r, retryAt)
	}
	if r := announcement(t, s, failed.PostID); r.State != store.AnnouncementFailed || r.LastError != "not sent within 24h" || !r.DoneAt.Equal(now) {
		t.Errorf("failed: %+v", r)
	}
	// A finished claim is spent.
	if err := s.FinishAnnouncement(ctx, sent, now, store.AnnouncementOutcome{State: store.AnnouncementFailed}); !errors.Is(err, store.ErrClaimLost) {
		t.Errorf("finishing twice: %v, want ErrClaimLost", err)
	}
	if err := s.FinishAnnouncement(ctx, retry, now, store.AnnouncementOutcome{State: store.AnnouncementSent}); !errors.Is(err, store.ErrClaimLost) {
		t.Errorf("finishing a released claim: %v, want ErrClaimLost", err)
	}
	// Only the retry is due at its time; the renewed lease holds beyond.
	if got := claim(t, s, retryAt.Add(-time.Millisecond), retryAt.Add(time.Minute), 10); len(got) != 0 {
		t.Errorf("claimed %v before the retry was due", postIDs(got))
	}
	st, _ := s.AnnouncementStats(ctx)
	if st.Pending != 2 || !st.OldestPending.Equal(posts[1].CreatedAt) || !st.NextDue.Equal(retryAt) {
		t.Errorf("stats: %+v, want 2 pending, oldest %v, next due %v", st, posts[1].CreatedAt, retryAt)
	}
	got := claim(t, s, retryAt, retryAt.Add(time.Minute), 10)
	if len(got) != 1 || got[0].PostID != retry.PostID || got[0].Attempts != 2 || got[0].LastError != "telegram: 500" {
		t.Errorf("claim at the retry time: %+v, want the retry, attempt 2, with the last error", got)
	}
	if _, err := s.ClaimAnnouncements(ctx, now, now, 0); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("limit 0: %v, want ErrInvalid", err)
	}
	if err := s.FinishAnnouncement(ctx, renewed, now, store.AnnouncementOutcome{State: 9}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("unknown state: %v, want ErrInvalid", err)
	}
}

func testAnnouncementSkip(t *testing.T, s store.Store) {
	ctx := t.Context()
	before := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "before the bot"})
	leased := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "claimed before the bot"})
	t0 := time.Now().UTC().Truncate(time.Microsecond)

	since, err := s.AnnounceSince(ctx, "-1001234", t0)
	if err != nil {
		t.Fatalf("AnnounceSince: %v", err)
	}
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
	if _, err := s.AnnounceSince(ctx, "", t0); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("AnnounceSince of no chat: %v, want ErrInvalid", err)
	}

	// Both are claimed; one is put back, the other stays leased.
	as := claim(t, s, t0, t0.Add(time.Minute), 10)
	if len(as) != 2 {
		t.Fatalf("claimed %d, want 2", len(as))
	}
	for _, a := range as {
		if a.PostID == before.ID {
			if err := s.FinishAnnouncement(ctx, a, t0, store.AnnouncementOutcome{State: store.AnnouncementPending, RetryAt: t0}); err != nil {
				t.Fatal(err)
			}
		}
	}
	after := mustCreate(t, s, store.NewPost{ID: contract.NewID(), Text: "after the bot"})
	n, err := s.SkipAnnouncements(ctx, since, t0, "made before the bot was connected")
	if err != nil {
		t.Fatalf("SkipAnnouncements: %v", err)
	}
	if n != 1 {
		t.Errorf("skipped %d, want 1 (the leased one is left to its claimer)", n)
	}
	if r := announcement(t, s, before.ID); r.State != store.AnnouncementSkipped || r.LastError != "made before the bot was connected" || r.DoneAt.IsZero() {
		t.Errorf("post before the bot: %+v, want skipped", r)
	}
	if r := announcement(t, s, leased.ID); r.State != store.AnnouncementPending {
		t.Errorf("leased post: %+v, want still pending", r)
	}
	if r := announcement(t, s, after.ID); r.State != store.AnnouncementPending {
		t.Errorf("post after the bot: %+v, want pending", r)
	}
	if got := claim(t, s, t0.Add(time.Minute), t0.Add(2*time.Minute), 10); !slices.Equal(postIDs(got), []contract.ID{after.ID, leased.ID}) {
		t.Errorf("claimable after the skip: %v, want the new post, then the one whose lease ended", postIDs(got))
	}
}
