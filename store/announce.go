package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/extagram/extagram/internal/contract"
)

// AnnouncementState is where a post's announcement stands.
type AnnouncementState int

// The states of an announcement. Only pending ones are ever claimed.
const (
	// AnnouncementPending: not sent yet; claimable once due.
	AnnouncementPending AnnouncementState = 0
	// AnnouncementSent: sent; the message id is recorded.
	AnnouncementSent AnnouncementState = 1
	// AnnouncementFailed: given up on after the time bound, never retried.
	AnnouncementFailed AnnouncementState = 2
	// AnnouncementSkipped: not to be sent (the post is older than the
	// chat's announcements).
	AnnouncementSkipped AnnouncementState = 3
)

func (s AnnouncementState) String() string {
	switch s {
	case AnnouncementPending:
		return "pending"
	case AnnouncementSent:
		return "sent"
	case AnnouncementFailed:
		return "failed"
	case AnnouncementSkipped:
		return "skipped"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// ErrClaimLost is returned when an announcement is renewed or finished with
// a claim that no longer holds it: the lease ran out and another claimer
// took it, or its outcome is already recorded.
var ErrClaimLost = errors.New("store: announcement claim lost")

// Announcement is a claimed announcement: the post to announce and the
// claim that holds it until its lease ends.
type Announcement struct {
	PostID contract.ID
	// Claim is the token of this claim; only its holder can renew the
	// lease or record the outcome.
	Claim contract.ID
	// Attempts counts the claims of this announcement, this one included.
	Attempts int
	// PostedAt is when the post was stored.
	PostedAt time.Time
	// LastError is why the previous attempt did not send ("" for none).
	LastError string
}

// AnnouncementOutcome is how an attempt ended.
type AnnouncementOutcome struct {
	// State is Sent, Failed or Skipped, or Pending to try again at RetryAt.
	State AnnouncementState
	// MessageID is the chat message of a sent announcement.
	MessageID int64
	// RetryAt is when a pending announcement is due again.
	RetryAt time.Time
	// Error says why an attempt did not send (kept, truncated, for
	// operators).
	Error string
}

// AnnouncementRecord is what the store keeps of a post's announcement.
type AnnouncementRecord struct {
	PostID    contract.ID
	State     AnnouncementState
	Attempts  int
	DueAt     time.Time // pending: when it may next be claimed (or its lease ends)
	DoneAt    time.Time // zero while pending
	MessageID int64     // 0 unless sent
	LastError string
}

// AnnouncementStats describe the pending announcements.
type AnnouncementStats struct {
	Pending int64
	// OldestPending is when the oldest pending announcement's post was
	// stored; zero when none is pending.
	OldestPending time.Time
	// NextDue is the earliest time a pending announcement may be claimed;
	// zero when none is pending.
	NextDue time.Time
}

// maxErrorBytes bounds the error kept with an announcement (the column
// holds 500 characters).
const maxErrorBytes = 480

// Outbox is the announcements outbox. CreatePost queues one pending
// announcement per post in the post's transaction; announcers claim them,
// each for a lease, and record how each attempt ended. Times are passed in
// by the caller, so that leases and backoffs follow one clock per
// announcer (and tests need not wait).
type Outbox interface {
	// AnnounceSince returns when announcing in chat began, recording now
	// as that time on the first call for chat.
	AnnounceSince(ctx context.Context, chat string, now time.Time) (time.Time, error)
	// SkipAnnouncements marks skipped the pending announcements of posts
	// stored before before that no lease holds at now, and returns how
	// many there were.
	SkipAnnouncements(ctx context.Context, before, now time.Time, reason string) (int64, error)
	// ClaimAnnouncements claims up to limit pending announcements due at
	// now, oldest first, each leased until until. Concurrent claimers never
	// get the same announcement while its lease runs.
	ClaimAnnouncements(ctx context.Context, now, until time.Time, limit int) ([]Announcement, error)
	// RenewAnnouncement extends a claim's lease to until, or returns
	// ErrClaimLost.
	RenewAnnouncement(ctx context.Context, a Announcement, until time.Time) error
	// FinishAnnouncement records the outcome of a claim's attempt at now,
	// or returns ErrClaimLost. A Pending outcome releases the claim until
	// RetryAt.
	FinishAnnouncement(ctx context.Context, a Announcement, now time.Time, o AnnouncementOutcome) error
	// AnnouncementStats describes the pending announcements.
	AnnouncementStats(ctx context.Context) (AnnouncementStats, error)
	// GetAnnouncement returns a post's announcement, or ErrNotFound.
	GetAnnouncement(ctx context.Context, postID contract.ID) (AnnouncementRecord, error)
}

var _ Outbox = (*sqlStore)(nil)

const (
	insertAnnouncementSQL = `INSERT INTO announcements (post_id, due_at, created_at) VALUES (?, ?, ?)`

	insertAnnounceChatSQL = `INSERT INTO announcement_chats (chat, since) VALUES (?, ?)`
	announceSinceSQL      = `SELECT since FROM announcement_chats WHERE chat = ?`

	skipAnnouncementsSQL = `UPDATE announcements SET state = 3, done_at = ?, last_error = ?, claim_id = NULL
		WHERE state = 0 AND created_at < ? AND due_at <= ?`

	// The index (state, due_at) serves the claim: the due rows, oldest
	// first. MySQL adds FOR UPDATE SKIP LOCKED (see sqlStore.claimLock).
	claimAnnouncementsSQL = `SELECT post_id, attempts, created_at, last_error FROM announcements
		WHERE state = 0 AND due_at <= ? ORDER BY due_at LIMIT ?`
	leaseAnnouncementSQL = `UPDATE announcements SET claim_id = ?, due_at = ?, attempts = attempts + 1
		WHERE post_id = ? AND state = 0`
	renewAnnouncementSQL  = `UPDATE announcements SET due_at = ? WHERE post_id = ? AND claim_id = ? AND state = 0`
	holdsAnnouncementSQL  = `SELECT 1 FROM announcements WHERE post_id = ? AND claim_id = ? AND state = 0`
	finishAnnouncementSQL = `UPDATE announcements SET state = ?, due_at = ?, claim_id = NULL, done_at = ?, message_id = ?, last_error = ?
		WHERE post_id = ? AND claim_id = ? AND state = 0`

	announcementStatsSQL = `SELECT COUNT(*), MIN(created_at), MIN(due_at) FROM announcements WHERE state = 0`
	getAnnouncementSQL   = `SELECT state, attempts, due_at, done_at, message_id, last_error FROM announcements WHERE post_id = ?`
)

// queueAnnouncement adds a post's pending announcement inside the
// transaction that stores the post, with the prepared insert.
func (s *sqlStore) queueAnnouncement(ctx context.Context, tx *sql.Tx, insert *sql.Stmt, p Post) error {
	if _, err := tx.StmtContext(ctx, insert).ExecContext(ctx, p.ID[:], s.timeArg(p.CreatedAt), s.timeArg(p.CreatedAt)); err != nil {
		return s.fail("queue announcement of post "+p.ID.String(), err)
	}
	return nil
}

// AnnounceSince implements Outbox.
func (s *sqlStore) AnnounceSince(ctx context.Context, chat string, now time.Time) (time.Time, error) {
	if chat == "" || len(chat) > 100 {
		return time.Time{}, fmt.Errorf("store: announce since: %w", invalid("chat %q is empty or longer than 100 bytes", chat))
	}
	stmts, err := s.writeStatements(ctx, insertAnnounceChatSQL)
	if err != nil {
		return time.Time{}, s.fail("prepare", err)
	}
	// The first announcer of a chat sets the time; the others read it.
	if _, err := stmts[0].ExecContext(ctx, chat, s.timeArg(now.UTC().Truncate(time.Microsecond))); err != nil {
		if err = s.fail("announce since", err); !errors.Is(err, ErrDuplicate) {
			return time.Time{}, err
		}
	}
	row, err := s.queryRow(ctx, announceSinceSQL, chat)
	if err != nil {
		return time.Time{}, s.fail("announce since", err)
	}
	var since timeColumn
	if err := row.Scan(&since); err != nil {
		return time.Time{}, s.fail("announce since", err)
	}
	return since.t, nil
}

// SkipAnnouncements implements Outbox.
func (s *sqlStore) SkipAnnouncements(ctx context.Context, before, now time.Time, reason string) (int64, error) {
	stmts, err := s.writeStatements(ctx, skipAnnouncementsSQL)
	if err != nil {
		return 0, s.fail("prepare", err)
	}
	res, err := stmts[0].ExecContext(ctx, s.timeArg(now.UTC()), contract.Truncate(reason, maxErrorBytes), s.timeArg(before.UTC()), s.timeArg(now.UTC()))
	if err != nil {
		return 0, s.fail("skip announcements", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.fail("skip announcements", err)
	}
	return n, nil
}

// ClaimAnnouncements implements Outbox.
func (s *sqlStore) ClaimAnnouncements(ctx context.Context, now, until time.Time, limit int) ([]Announcement, error) {
	if err := validateLimit(limit); err != nil {
		return nil, fmt.Errorf("store: claim announcements: %w", err)
	}
	stmts, err := s.writeStatements(ctx, claimAnnouncementsSQL+s.claimLock, leaseAnnouncementSQL)
	if err != nil {
		return nil, s.fail("prepare", err)
	}
	var claimed []Announcement
	err = s.inTxOpts(ctx, s.claimTx, func(tx *sql.Tx) error {
		claimed = claimed[:0]
		rows, err := tx.StmtContext(ctx, stmts[0]).QueryContext(ctx, s.timeArg(now.UTC()), limit)
		if err != nil {
			return s.fail("claim announcements", err)
		}
		for rows.Next() {
			var (
				id      []byte
				a       Announcement
				created timeColumn
				lastErr sql.NullString
			)
			if err := rows.Scan(&id, &a.Attempts, &created, &lastErr); err != nil {
				rows.Close()
				return s.fail("claim announcements", err)
			}
			if a.PostID, err = idFromBytes(id); err != nil {
				rows.Close()
				return fmt.Errorf("store: claim announcements: %w", err)
			}
			a.PostedAt, a.LastError = created.t, lastErr.String
			claimed = append(claimed, a)
		}
		// Closed before the updates: MySQL cannot run a statement on the
		// connection while a result set is open.
		rows.Close()
		if err := rows.Err(); err != nil {
			return s.fail("claim announcements", err)
		}
		lease := tx.StmtContext(ctx, stmts[1])
		for i := range claimed {
			a := &claimed[i]
			a.Claim = contract.NewID()
			a.Attempts++
			if _, err := lease.ExecContext(ctx, a.Claim[:], s.timeArg(until.UTC()), a.PostID[:]); err != nil {
				return s.fail("claim announcement of post "+a.PostID.String(), err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// RenewAnnouncement implements Outbox.
func (s *sqlStore) RenewAnnouncement(ctx context.Context, a Announcement, until time.Time) error {
	stmts, err := s.writeStatements(ctx, renewAnnouncementSQL)
	if err != nil {
		return s.fail("prepare", err)
	}
	res, err := stmts[0].ExecContext(ctx, s.timeArg(until.UTC()), a.PostID[:], a.Claim[:])
	if err != nil {
		return s.fail("renew announcement of post "+a.PostID.String(), err)
	}
	return s.checkClaim(ctx, res, a, "renew")
}

// FinishAnnouncement implements Outbox.
func (s *sqlStore) FinishAnnouncement(ctx context.Context, a Announcement, now time.Time, o AnnouncementOutcome) error {
	now = now.UTC()
	var (
		due       = now
		doneAt    any
		messageID any
		lastError any
	)
	switch o.State {
	case AnnouncementPending:
		due = o.RetryAt.UTC()
	case AnnouncementSent:
		messageID = o.MessageID
		doneAt = s.timeArg(now)
	case AnnouncementFailed, AnnouncementSkipped:
		doneAt = s.timeArg(now)
	default:
		return fmt.Errorf("store: finish announcement: %w", invalid("state %d", int(o.State)))
	}
	if o.Error != "" {
		lastError = contract.Truncate(o.Error, maxErrorBytes)
	}
	stmts, err := s.writeStatements(ctx, finishAnnouncementSQL)
	if err != nil {
		return s.fail("prepare", err)
	}
	res, err := stmts[0].ExecContext(ctx, int(o.State), s.timeArg(due), doneAt, messageID, lastError, a.PostID[:], a.Claim[:])
	if err != nil {
		return s.fail("finish announcement of post "+a.PostID.String(), err)
	}
	return s.checkClaim(ctx, res, a, "finish")
}

// checkClaim returns ErrClaimLost when an update by claim changed no row.
// MySQL counts only rows whose values changed, so a renewal to the same
// time is told apart from a lost claim by looking.
func (s *sqlStore) checkClaim(ctx context.Context, res sql.Result, a Announcement, op string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return s.fail(op+" announcement of post "+a.PostID.String(), err)
	}
	if n > 0 {
		return nil
	}
	row, err := s.queryRow(ctx, holdsAnnouncementSQL, a.PostID[:], a.Claim[:])
	if err != nil {
		return s.fail(op+" announcement of post "+a.PostID.String(), err)
	}
	var one int
	switch err := row.Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: %s announcement of post %s: %w", op, a.PostID, ErrClaimLost)
	case err != nil:
		return s.fail(op+" announcement of post "+a.PostID.String(), err)
	}
	return nil
}

// AnnouncementStats implements Outbox.
func (s *sqlStore) AnnouncementStats(ctx context.Context) (AnnouncementStats, error) {
	row, err := s.queryRow(ctx, announcementStatsSQL)
	if err != nil {
		return AnnouncementStats{}, s.fail("announcement stats", err)
	}
	var (
		st            AnnouncementStats
		oldest, ahead timeColumn
	)
	if err := row.Scan(&st.Pending, &oldest, &ahead); err != nil {
		return AnnouncementStats{}, s.fail("announcement stats", err)
	}
	st.OldestPending, st.NextDue = oldest.t, ahead.t
	return st, nil
}

// GetAnnouncement implements Outbox.
func (s *sqlStore) GetAnnouncement(ctx context.Context, postID contract.ID) (AnnouncementRecord, error) {
	row, err := s.queryRow(ctx, getAnnouncementSQL, postID[:])
	if err != nil {
		return AnnouncementRecord{}, s.fail("get announcement "+postID.String(), err)
	}
	var (
		r         = AnnouncementRecord{PostID: postID}
		state     int
		due, done timeColumn
		messageID sql.NullInt64
		lastError sql.NullString
	)
	err = row.Scan(&state, &r.Attempts, &due, &done, &messageID, &lastError)
	if errors.Is(err, sql.ErrNoRows) {
		return AnnouncementRecord{}, fmt.Errorf("store: get announcement %s: %w", postID, ErrNotFound)
	}
	if err != nil {
		return AnnouncementRecord{}, s.fail("get announcement "+postID.String(), err)
	}
	r.State, r.DueAt, r.DoneAt = AnnouncementState(state), due.t, done.t
	r.MessageID, r.LastError = messageID.Int64, lastError.String
	return r, nil
}
