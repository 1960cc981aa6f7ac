package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/extagram/extagram/internal/contract"
)

// sqlStore is the Store over database/sql. MySQL and SQLite share it: they
// take the same SQL, and differ only in how a time is written, how server
// errors are classified and how writers are serialised.
type sqlStore struct {
	// r serves reads. w serves writes: for MySQL it is the same pool as r;
	// for SQLite it is a pool of one connection, so writers queue in Go
	// instead of failing with SQLITE_BUSY.
	r, w *sql.DB
	// rq and wq are the statements prepared on r and w.
	rq, wq *statements
	// timeArg turns a UTC time into a query argument.
	timeArg func(time.Time) any
	// classify maps a dialect's server errors to ErrDuplicate or
	// ErrUnavailable.
	classify func(error) error
	// claimLock ends the query that claims announcements, and claimTx
	// configures its transaction (see ClaimAnnouncements): MySQL locks the
	// rows it claims and skips those other claimers hold; SQLite's one
	// writer needs neither.
	claimLock string
	claimTx   *sql.TxOptions
}

var _ Store = (*sqlStore)(nil)

func newSQLStore(r, w *sql.DB, timeArg func(time.Time) any, classify func(error) error) *sqlStore {
	s := &sqlStore{r: r, w: w, rq: &statements{db: r}, wq: &statements{db: w}, timeArg: timeArg, classify: classify}
	if w == r {
		s.wq = s.rq
	}
	return s
}

// queryRow runs a query that returns one row with a statement prepared on
// the read pool.
func (s *sqlStore) queryRow(ctx context.Context, query string, args ...any) (*sql.Row, error) {
	st, err := s.rq.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryRowContext(ctx, args...), nil
}

// query runs a query with a statement prepared on the read pool.
func (s *sqlStore) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.rq.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// writeStatements returns the statements of queries prepared on the write
// pool. They must be had before the transaction that uses them begins: for
// SQLite the pool has one connection, which the transaction holds.
func (s *sqlStore) writeStatements(ctx context.Context, queries ...string) ([]*sql.Stmt, error) {
	out := make([]*sql.Stmt, len(queries))
	for i, q := range queries {
		st, err := s.wq.get(ctx, q)
		if err != nil {
			return nil, err
		}
		out[i] = st
	}
	return out, nil
}

// contentTypes are the image types the site serves (see Image).
var contentTypes = map[string]bool{
	"image/jpeg": true,
	"image/png":  true,
	"image/gif":  true,
	"image/webp": true,
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// validateNewPost rejects what the schema could not hold faithfully or the
// site must never show. The services validate first; this is the last line.
func validateNewPost(p NewPost) error {
	if p.ID.IsZero() {
		return invalid("post id is zero")
	}
	// The upload service applies the text rule; the store only guards the
	// invariant that what it keeps is text the rule has already accepted.
	if !contract.IsStoredText(p.Text) {
		return invalid("post text is not what contract.CheckText accepts (empty, untrimmed, over %d characters, invalid UTF-8 or control characters)", contract.MaxTextLen)
	}
	im := p.Image
	if im == nil {
		return nil
	}
	switch {
	case im.ID.IsZero():
		return invalid("image id is zero")
	case !contentTypes[im.ContentType]:
		return invalid("image content type %q is not one of image/jpeg, image/png, image/gif, image/webp", im.ContentType)
	case im.Width < 1 || im.Height < 1 || im.Width > math.MaxInt32 || im.Height > math.MaxInt32:
		return invalid("image is %dx%d pixels", im.Width, im.Height)
	case len(im.Data) == 0:
		return invalid("image has no bytes")
	}
	return nil
}

func validateLimit(limit int) error {
	if limit < 1 || limit > MaxListLimit {
		return invalid("limit %d is not between 1 and %d", limit, MaxListLimit)
	}
	return nil
}

func (s *sqlStore) fail(op string, err error) error { return wrap(op, err, s.classify) }

const (
	insertImageSQL = `INSERT INTO images (id, content_type, size_bytes, sha256, width, height, data, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	insertPostSQL  = `INSERT INTO posts (id, body, image_id, created_at) VALUES (?, ?, ?, ?)`

	insertRequestKeySQL  = `INSERT INTO upload_keys (key_hash, request_hash, post_id, created_at) VALUES (?, ?, ?, ?)`
	requestKeySQL        = `SELECT request_hash, post_id FROM upload_keys WHERE key_hash = ?`
	deleteRequestKeysSQL = `DELETE FROM upload_keys WHERE created_at < ?`
)

// CreatePost implements Store.
func (s *sqlStore) CreatePost(ctx context.Context, np NewPost) (Post, error) {
	if err := validateNewPost(np); err != nil {
		return Post{}, fmt.Errorf("store: create post: %w", err)
	}
	// Both databases keep microseconds; truncating here makes the returned
	// post equal to what GetPost reads back.
	now := time.Now().UTC().Truncate(time.Microsecond)
	post := Post{ID: np.ID, Text: np.Text, CreatedAt: now}
	var imageID any // NULL for a text-only post
	if ni := np.Image; ni != nil {
		post.Image = &Image{
			ID:          ni.ID,
			ContentType: ni.ContentType,
			Size:        int64(len(ni.Data)),
			SHA256:      sha256.Sum256(ni.Data),
			Width:       ni.Width,
			Height:      ni.Height,
			CreatedAt:   now,
		}
		imageID = post.Image.ID[:]
	}
	stmts, err := s.writeStatements(ctx, insertImageSQL, insertPostSQL, insertRequestKeySQL, insertAnnouncementSQL)
	if err != nil {
		return Post{}, s.fail("prepare", err)
	}
	insertImage, insertPost, insertKey, insertAnnouncement := stmts[0], stmts[1], stmts[2], stmts[3]
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		// The request key goes first: a retry running at the same time
		// waits on it until this transaction ends, then finds it taken.
		if rk := np.Request; rk != nil {
			if _, err := tx.StmtContext(ctx, insertKey).ExecContext(ctx, rk.Key[:], rk.Hash[:], post.ID[:], s.timeArg(now)); err != nil {
				if err := s.fail("insert request key", err); !errors.Is(err, ErrDuplicate) {
					return err
				}
				return errKeyTaken
			}
		}
		// The image goes before the post so the post's foreign key has
		// something to point at; a failure anywhere rolls all back.
		if im := post.Image; im != nil {
			if _, err := tx.StmtContext(ctx, insertImage).ExecContext(ctx,
				im.ID[:], im.ContentType, im.Size, im.SHA256[:], im.Width, im.Height, np.Image.Data, s.timeArg(now),
			); err != nil {
				return s.fail("insert image "+im.ID.String(), err)
			}
		}
		res, err := tx.StmtContext(ctx, insertPost).ExecContext(ctx, post.ID[:], post.Text, imageID, s.timeArg(now))
		if err != nil {
			return s.fail("insert post "+post.ID.String(), err)
		}
		if post.Key, err = res.LastInsertId(); err != nil {
			return s.fail("insert post "+post.ID.String(), err)
		}
		// The intent to announce the post commits with it (see Outbox).
		return s.queueAnnouncement(ctx, tx, insertAnnouncement, post)
	})
	if errors.Is(err, errKeyTaken) {
		return s.repeated(ctx, *np.Request)
	}
	if err != nil {
		return Post{}, err
	}
	return post, nil
}

// errKeyTaken says, inside CreatePost, that the request key is taken.
var errKeyTaken = errors.New("request key taken")

// repeated answers an upload whose request key is taken: with the post
// stored under it (ErrRepeated), or ErrKeyReused.
func (s *sqlStore) repeated(ctx context.Context, rk RequestKey) (Post, error) {
	row, err := s.queryRow(ctx, requestKeySQL, rk.Key[:])
	if err != nil {
		return Post{}, s.fail("request key", err)
	}
	var hash, postID []byte
	if err := row.Scan(&hash, &postID); err != nil {
		// The key was taken a moment ago: the row cannot be gone, unless
		// it expired in between.
		return Post{}, s.fail("request key", err)
	}
	if !bytes.Equal(hash, rk.Hash[:]) {
		return Post{}, fmt.Errorf("store: create post: %w", ErrKeyReused)
	}
	id, err := idFromBytes(postID)
	if err != nil {
		return Post{}, fmt.Errorf("store: request key: %w", err)
	}
	p, err := s.GetPost(ctx, id)
	if err != nil {
		return Post{}, err
	}
	return p, fmt.Errorf("store: create post: %w", ErrRepeated)
}

// DeleteRequestKeys implements Store.
func (s *sqlStore) DeleteRequestKeys(ctx context.Context, before time.Time) (int64, error) {
	stmts, err := s.writeStatements(ctx, deleteRequestKeysSQL)
	if err != nil {
		return 0, s.fail("prepare", err)
	}
	res, err := stmts[0].ExecContext(ctx, s.timeArg(before.UTC()))
	if err != nil {
		return 0, s.fail("delete request keys", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.fail("delete request keys", err)
	}
	return n, nil
}

// inTx runs fn in a write transaction and commits it, or rolls it back when
// fn fails. fn's errors are returned as they are.
func (s *sqlStore) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.inTxOpts(ctx, nil, fn)
}

// inTxOpts is inTx with transaction options (nil: the driver's default).
func (s *sqlStore) inTxOpts(ctx context.Context, opts *sql.TxOptions, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, opts)
	if err != nil {
		return s.fail("begin", err)
	}
	if err := fn(tx); err != nil {
		// The rollback error adds nothing: the server discards the
		// transaction anyway when the connection is gone.
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		// With the connection lost during COMMIT the outcome is unknown;
		// the caller sees ErrUnavailable and may look the post up again.
		return s.fail("commit", err)
	}
	return nil
}

// postColumns and postFrom read a post with its image's metadata. The join
// never touches images.data, which lives on overflow pages: a feed page
// reads no image bytes.
const (
	postColumns = `p.seq, p.id, p.body, p.created_at, i.id, i.content_type, i.size_bytes, i.sha256, i.width, i.height, i.created_at`
	postFrom    = ` FROM posts p LEFT JOIN images i ON i.id = p.image_id`

	getPostSQL         = `SELECT ` + postColumns + postFrom + ` WHERE p.id = ?`
	listPostsSQL       = `SELECT ` + postColumns + postFrom + ` ORDER BY p.seq DESC LIMIT ?`
	listPostsBeforeSQL = `SELECT ` + postColumns + postFrom + ` WHERE p.seq < ? ORDER BY p.seq DESC LIMIT ?`

	imageColumns = `id, content_type, size_bytes, sha256, width, height, created_at`
	imageInfoSQL = `SELECT ` + imageColumns + ` FROM images WHERE id = ?`
	imageDataSQL = `SELECT ` + imageColumns + `, data FROM images WHERE id = ?`
	imageIDsSQL  = `SELECT id FROM images WHERE id > ? ORDER BY id LIMIT ?`
)

// GetPost implements Store.
func (s *sqlStore) GetPost(ctx context.Context, id contract.ID) (Post, error) {
	if id.IsZero() {
		return Post{}, fmt.Errorf("store: get post %s: %w", id, ErrNotFound)
	}
	row, err := s.queryRow(ctx, getPostSQL, id[:])
	if err != nil {
		return Post{}, s.fail("get post "+id.String(), err)
	}
	p, err := scanPost(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Post{}, fmt.Errorf("store: get post %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Post{}, s.fail("get post "+id.String(), err)
	}
	return p, nil
}

// ListPosts implements Store.
func (s *sqlStore) ListPosts(ctx context.Context, opts ListOptions) ([]Post, error) {
	if err := validateLimit(opts.Limit); err != nil {
		return nil, fmt.Errorf("store: list posts: %w", err)
	}
	if opts.Before < 0 {
		return nil, fmt.Errorf("store: list posts: %w", invalid("before %d is negative", opts.Before))
	}
	var rows *sql.Rows
	var err error
	if opts.Before == 0 {
		rows, err = s.query(ctx, listPostsSQL, opts.Limit)
	} else {
		rows, err = s.query(ctx, listPostsBeforeSQL, opts.Before, opts.Limit)
	}
	if err != nil {
		return nil, s.fail("list posts", err)
	}
	defer rows.Close()
	posts := make([]Post, 0, min(opts.Limit, 64))
	for rows.Next() {
		p, err := scanPost(rows)
		if err != nil {
			return nil, s.fail("list posts", err)
		}
		posts = append(posts, p)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list posts", err)
	}
	return posts, nil
}

// ImageInfo implements Store.
func (s *sqlStore) ImageInfo(ctx context.Context, id contract.ID) (Image, error) {
	if id.IsZero() {
		return Image{}, fmt.Errorf("store: image %s: %w", id, ErrNotFound)
	}
	row, err := s.queryRow(ctx, imageInfoSQL, id[:])
	if err != nil {
		return Image{}, s.fail("image "+id.String(), err)
	}
	var im Image
	err = scanImage(row, &im)
	if errors.Is(err, sql.ErrNoRows) {
		return Image{}, fmt.Errorf("store: image %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Image{}, s.fail("image "+id.String(), err)
	}
	return im, nil
}

// ImageData implements Store.
func (s *sqlStore) ImageData(ctx context.Context, id contract.ID) (Image, []byte, error) {
	if id.IsZero() {
		return Image{}, nil, fmt.Errorf("store: image data %s: %w", id, ErrNotFound)
	}
	row, err := s.queryRow(ctx, imageDataSQL, id[:])
	if err != nil {
		return Image{}, nil, s.fail("image data "+id.String(), err)
	}
	var im Image
	var data []byte
	err = scanImage(row, &im, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return Image{}, nil, fmt.Errorf("store: image data %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Image{}, nil, s.fail("image data "+id.String(), err)
	}
	// Defensive: a size column that disagrees with the bytes means the
	// row was altered outside the store; serving it would break ranges.
	if int64(len(data)) != im.Size {
		return Image{}, nil, fmt.Errorf("store: image data %s: %d bytes stored, size column says %d", id, len(data), im.Size)
	}
	return im, data, nil
}

// ImageIDs implements Store.
func (s *sqlStore) ImageIDs(ctx context.Context, after contract.ID, limit int) ([]contract.ID, error) {
	if err := validateLimit(limit); err != nil {
		return nil, fmt.Errorf("store: image ids: %w", err)
	}
	rows, err := s.query(ctx, imageIDsSQL, after[:], limit)
	if err != nil {
		return nil, s.fail("image ids", err)
	}
	defer rows.Close()
	ids := make([]contract.ID, 0, min(limit, 256))
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, s.fail("image ids", err)
		}
		id, err := idFromBytes(b)
		if err != nil {
			return nil, fmt.Errorf("store: image ids: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("image ids", err)
	}
	return ids, nil
}

// Ping implements Store.
func (s *sqlStore) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return s.fail("ping", err)
	}
	if s.w != s.r {
		if err := s.w.PingContext(ctx); err != nil {
			return s.fail("ping", err)
		}
	}
	return nil
}

// Close implements Store.
func (s *sqlStore) Close() error {
	s.rq.close()
	if s.wq != s.rq {
		s.wq.close()
	}
	err := s.r.Close()
	if s.w != s.r {
		err = errors.Join(err, s.w.Close())
	}
	if err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanPost(row scanner) (Post, error) {
	var (
		p                     Post
		postID, imgID, imgSum []byte
		created, imgCreated   timeColumn
		contentType           sql.NullString
		size, width, height   sql.NullInt64
	)
	if err := row.Scan(&p.Key, &postID, &p.Text, &created,
		&imgID, &contentType, &size, &imgSum, &width, &height, &imgCreated); err != nil {
		return Post{}, err
	}
	var err error
	if p.ID, err = idFromBytes(postID); err != nil {
		return Post{}, err
	}
	p.CreatedAt = created.t
	if imgID == nil {
		return p, nil
	}
	im := &Image{
		ContentType: contentType.String,
		Size:        size.Int64,
		Width:       int(width.Int64),
		Height:      int(height.Int64),
		CreatedAt:   imgCreated.t,
	}
	if im.ID, err = idFromBytes(imgID); err != nil {
		return Post{}, err
	}
	if len(imgSum) != len(im.SHA256) {
		return Post{}, fmt.Errorf("stored sha256 has %d bytes", len(imgSum))
	}
	copy(im.SHA256[:], imgSum)
	p.Image = im
	return p, nil
}

// scanImage scans imageColumns into im, then any extra columns into extra.
func scanImage(row scanner, im *Image, extra ...any) error {
	var (
		id, sum []byte
		created timeColumn
	)
	dest := append([]any{&id, &im.ContentType, &im.Size, &sum, &im.Width, &im.Height, &created}, extra...)
	if err := row.Scan(dest...); err != nil {
		return err
	}
	var err error
	if im.ID, err = idFromBytes(id); err != nil {
		return err
	}
	if len(sum) != len(im.SHA256) {
		return fmt.Errorf("stored sha256 has %d bytes", len(sum))
	}
	copy(im.SHA256[:], sum)
	im.CreatedAt = created.t
	return nil
}

func idFromBytes(b []byte) (contract.ID, error) {
	var id contract.ID
	if len(b) != len(id) {
		return id, fmt.Errorf("stored id has %d bytes, want %d", len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}

// sqliteTimeLayout is how the embedded store writes times: UTC, fixed
// width, so the text sorts in time order and SQLite's date functions read it.
const sqliteTimeLayout = "2006-01-02 15:04:05.000000"

// timeColumn scans a creation time from either database: MySQL returns a
// time.Time (parseTime is on), SQLite the text the store wrote. NULL (a
// text-only post's image columns) leaves the zero time.
type timeColumn struct{ t time.Time }

func (c *timeColumn) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		c.t = time.Time{}
	case time.Time:
		c.t = v.UTC()
	case string:
		return c.parse(v)
	case []byte:
		return c.parse(string(v))
	default:
		return fmt.Errorf("store: cannot read a time from %T", v)
	}
	return nil
}

func (c *timeColumn) parse(s string) error {
	t, err := time.Parse(sqliteTimeLayout, s)
	if err != nil {
		return fmt.Errorf("store: stored time %q: %w", s, err)
	}
	c.t = t
	return nil
}
