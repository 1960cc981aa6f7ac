package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/store"
	"github.com/go-sql-driver/mysql"
	_ "modernc.org/sqlite" // the embedded store's driver, for its ceiling
)

// photoPosts is the number of photo posts: one feed page.
const photoPosts = 20

// photoSide is the side of the photos: 200×200 RGB noise, about 118 KiB
// as PNG (noise does not compress).
const photoSide = 200

// noisePNG returns a PNG of random pixels, the same for the same seed.
func noisePNG(seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 0x65787461))
	img := image.NewNRGBA(image.Rect(0, 0, photoSide, photoSide))
	for i := 0; i < len(img.Pix); i += 4 {
		v := rng.Uint32()
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = byte(v), byte(v>>8), byte(v>>16), 0xff
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err) // encoding to memory does not fail
	}
	return buf.Bytes()
}

// makePhotos returns the photo posts, each with its own image, oldest
// first. The ids are random but the same in every database they are
// stored in.
func makePhotos() []store.NewPost {
	out := make([]store.NewPost, photoPosts)
	for i := range out {
		out[i] = store.NewPost{
			ID:   contract.NewID(),
			Text: fmt.Sprintf("Photo %d of %d of the HTTP benchmark: noise, %d×%d pixels.", i+1, photoPosts, photoSide, photoSide),
			Image: &store.NewImage{
				ID: contract.NewID(), ContentType: "image/png", Width: photoSide, Height: photoSide,
				Data: noisePNG(uint64(i + 1)),
			},
		}
	}
	return out
}

// bulkText is the text of the i-th text post (from 0).
func bulkText(i int) string {
	return fmt.Sprintf("Post %d of the HTTP benchmark: one line of text, as most posts are.", i+1)
}

// seeded tells where the text posts went.
type seeded struct {
	// keyOf[i] is the key of the i-th text post.
	keyOf []int64
}

// seed stores n text posts with workers goroutines, then the photo posts
// one by one in order, so that they are the newest posts, in the same
// order in every database.
func seed(ctx context.Context, cfg store.Config, n int, photos []store.NewPost, workers int) (seeded, error) {
	st, err := store.Open(ctx, cfg)
	if err != nil {
		return seeded{}, fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	res := seeded{keyOf: make([]int64, n)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				p, err := st.CreatePost(ctx, store.NewPost{ID: contract.NewID(), Text: bulkText(i)})
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("seed post %d: %w", i+1, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				res.keyOf[i] = p.Key
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	for _, p := range photos {
		if _, err := st.CreatePost(ctx, p); err != nil {
			return res, fmt.Errorf("seed photo post: %w", err)
		}
	}
	return res, nil
}

// newestKey returns the key of the newest post (0 when there is none).
func newestKey(ctx context.Context, st store.Store) (int64, error) {
	posts, err := st.ListPosts(ctx, store.ListOptions{Limit: 1})
	if err != nil || len(posts) == 0 {
		return 0, err
	}
	return posts[0].Key, nil
}

// countNewer returns the number of posts with a key above after.
func countNewer(ctx context.Context, st store.Store, after int64) (int, error) {
	n := 0
	before := int64(0)
	for {
		posts, err := st.ListPosts(ctx, store.ListOptions{Before: before, Limit: store.MaxListLimit})
		if err != nil {
			return n, err
		}
		for _, p := range posts {
			if p.Key <= after {
				return n, nil
			}
			n++
		}
		if len(posts) < store.MaxListLimit {
			return n, nil
		}
		before = posts[len(posts)-1].Key
	}
}

// ceiling is the database's own rate of 120 KB inserts.
type ceiling struct {
	inserts int
	elapsed time.Duration
	how     string
}

func (c ceiling) perSecond() float64 {
	if c.elapsed <= 0 {
		return 0
	}
	return float64(c.inserts) / c.elapsed.Seconds()
}

// ceilingMySQL inserts row into a scratch table of the database of dsn
// for d, from conns connections each running BEGIN, INSERT (a prepared
// statement), COMMIT in a loop, and drops the table.
func ceilingMySQL(ctx context.Context, dsn string, conns int, d time.Duration, row []byte) (ceiling, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return ceiling{}, err
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return ceiling{}, err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	db.SetMaxOpenConns(conns + 1)
	db.SetMaxIdleConns(conns + 1)
	const table = "bench_insert_ceiling"
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+" (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, data LONGBLOB NOT NULL) ENGINE=InnoDB"); err != nil {
		return ceiling{}, fmt.Errorf("create scratch table: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(dctx, "DROP TABLE IF EXISTS "+table); err != nil {
			logf("drop scratch table: %v", err)
		}
	}()
	n, elapsed, err := hammer(ctx, conns, d, func(ctx context.Context) (func() error, func(), error) {
		c, err := db.Conn(ctx)
		if err != nil {
			return nil, nil, err
		}
		stmt, err := c.PrepareContext(ctx, "INSERT INTO "+table+" (data) VALUES (?)")
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		insert := func() error {
			if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
				return err
			}
			if _, err := stmt.ExecContext(ctx, row); err != nil {
				return err
			}
			_, err := c.ExecContext(ctx, "COMMIT")
			return err
		}
		return insert, func() { stmt.Close(); c.Close() }, nil
	})
	return ceiling{inserts: n, elapsed: elapsed, how: fmt.Sprintf("%d connections, BEGIN; INSERT %s; COMMIT", conns, contract.FormatBytes(int64(len(row))))}, err
}

// ceilingSQLite does the same in a scratch SQLite file opened as the
// embedded store opens its own (WAL, synchronous=NORMAL, one write
// connection that the goroutines queue on, BEGIN IMMEDIATE).
func ceilingSQLite(ctx context.Context, path string, conns int, d time.Duration, row []byte) (ceiling, error) {
	u := url.URL{Scheme: "file", Path: path, RawQuery: url.Values{
		"_pragma": {"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)"},
		"_txlock": {"immediate"},
	}.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return ceiling{}, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "CREATE TABLE scratch (id INTEGER PRIMARY KEY, data BLOB NOT NULL)"); err != nil {
		return ceiling{}, fmt.Errorf("create scratch table: %w", err)
	}
	n, elapsed, err := hammer(ctx, conns, d, func(ctx context.Context) (func() error, func(), error) {
		insert := func() error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO scratch (data) VALUES (?)", row); err != nil {
				_ = tx.Rollback()
				return err
			}
			return tx.Commit()
		}
		return insert, func() {}, nil
	})
	return ceiling{inserts: n, elapsed: elapsed, how: fmt.Sprintf("%d goroutines over one write connection, BEGIN IMMEDIATE; INSERT %s; COMMIT", conns, contract.FormatBytes(int64(len(row))))}, err
}

// hammer runs workers goroutines, each calling the insert function open
// gives it in a loop for d, and returns the inserts done and the time
// taken.
func hammer(ctx context.Context, workers int, d time.Duration, open func(context.Context) (func() error, func(), error)) (int, time.Duration, error) {
	var inserts []func() error
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for range workers {
		ins, closer, err := open(ctx)
		if err != nil {
			return 0, 0, err
		}
		inserts = append(inserts, ins)
		closers = append(closers, closer)
	}
	var done atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	start := time.Now()
	deadline := start.Add(d)
	for _, ins := range inserts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := ins(); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	return int(done.Load()), elapsed, errors.Join(errs...)
}
