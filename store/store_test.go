package store_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testproxy"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
)

var stores = map[string]func(testing.TB) store.Store{"mysql": storetest.MySQL, "embedded": storetest.Embedded}

// TestStore runs the conformance suite on both stores.
func TestStore(t *testing.T) {
	t.Parallel()
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, open)
		})
	}
}

// TestMySQLUnavailable: a store whose server is gone (open connections
// reset, new ones refused), and Open and Migrate on servers that cannot be
// reached or never answer, give up with ErrUnavailable (the services' 503)
// instead of hanging or blaming the request. The 2s contexts make them
// return; no time is asserted.
func TestMySQLUnavailable(t *testing.T) {
	t.Parallel()
	if _, err := store.Open(t.Context(), store.Config{}); err == nil {
		t.Error("Open with neither a DSN nor a data folder succeeded")
	}
	s, proxy := storetest.Proxied(t) // Open leaves a connection to be reset
	proxy.Cut()
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	garbage := listen()
	go func() {
		for c, err := garbage.Accept(); err == nil; c, err = garbage.Accept() {
			_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\n\r\n")
			c.Close()
		}
	}()
	calls := map[string]func(context.Context) error{
		"Ping":      s.Ping,
		"GetPost":   func(ctx context.Context) error { _, err := s.GetPost(ctx, contract.NewID()); return err },
		"ListPosts": func(ctx context.Context) error { _, err := s.ListPosts(ctx, store.ListOptions{Limit: 5}); return err },
		"CreatePost": func(ctx context.Context) error {
			_, err := s.CreatePost(ctx, store.NewPost{ID: contract.NewID(), Text: "during the outage"})
			return err
		},
	}
	for srv, addr := range map[string]string{
		// The kernel completes the handshake of a connection never accepted.
		"accepts and never answers": listen().Addr().String(),
		"accepts and hangs up":      testproxy.Start(t, proxy.Addr()).Addr(), // its target refuses
		"answers garbage":           garbage.Addr().String(),
		"closed port":               proxy.Addr(),
	} {
		cfg := store.Config{MySQLDSN: "extagram:secret@tcp(" + addr + ")/extagram", Logger: storetest.Logger(t)}
		calls[srv+"/Migrate"] = func(ctx context.Context) error { return store.Migrate(ctx, cfg) }
		calls[srv+"/Open"] = func(ctx context.Context) error {
			s, err := store.Open(ctx, cfg)
			if err == nil {
				s.Close()
			}
			return err
		}
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			if err := call(ctx); !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("%s = %v, want ErrUnavailable", name, err)
			}
		})
	}
}

// TestMySQLMigrationStep follows a deployment that migrates in a one-shot
// step with DDL rights and runs services with data rights only: before the
// step, a store opened with SkipMigrations finds no tables (it ran no DDL);
// several migrators start at once, as on a first deployment, and all
// succeed, each migration applied once; then a data-only user opens the
// store, migrations included, and posts.
func TestMySQLMigrationStep(t *testing.T) {
	t.Parallel()
	dsn, ctx := storetest.MySQLDSN(t), t.Context()
	skip := storetest.Open(t, store.Config{MySQLDSN: dsn, SkipMigrations: true})
	if _, err := skip.CreatePost(ctx, store.NewPost{ID: contract.NewID(), Text: "no table yet"}); err == nil {
		t.Error("CreatePost before migrating succeeded: Open with SkipMigrations must not create tables")
	}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			if err := store.Migrate(ctx, store.Config{MySQLDSN: dsn, Logger: storetest.Logger(t)}); err != nil {
				t.Errorf("migrator %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := func(cfg *mysql.Config) *sql.DB {
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	root := db(cfg)
	var versions, recorded int
	q := `SELECT COUNT(DISTINCT version_id), COUNT(*) FROM goose_db_version`
	if err := root.QueryRowContext(ctx, q).Scan(&versions, &recorded); err != nil {
		t.Fatal(err)
	}
	// Version 0 (goose's own) and at least the first migration, each once.
	if versions < 2 || recorded != versions {
		t.Errorf("goose_db_version holds %d versions in %d rows, want at least 2, each once", versions, recorded)
	}

	// A user with data rights only, on the test database, from both hosts:
	// an anonymous ''@'localhost', where one exists, would otherwise shadow
	// user@'%' for connections from 127.0.0.1.
	app := cfg.Clone()
	app.User, app.Passwd = "extagram_app_"+cfg.DBName[len(cfg.DBName)-8:], "pw-"+contract.NewID().String()
	for _, host := range []string{"%", "localhost"} {
		account := "'" + app.User + "'@'" + host + "'"
		for _, q := range []string{
			"CREATE USER " + account + " IDENTIFIED BY '" + app.Passwd + "'",
			"GRANT SELECT, INSERT, UPDATE, DELETE ON `" + cfg.DBName + "`.* TO " + account,
		} {
			if _, err := root.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		t.Cleanup(func() {
			if _, err := root.ExecContext(context.Background(), "DROP USER IF EXISTS "+account); err != nil {
				t.Errorf("drop user %s: %v", account, err)
			}
		})
	}
	if _, err := db(app).ExecContext(ctx, "CREATE TABLE not_allowed (a INT)"); err == nil {
		t.Fatal("the data-only user could create a table: the test proves nothing")
	}
	s := storetest.Open(t, store.Config{MySQLDSN: app.FormatDSN()})
	p, err := s.CreatePost(ctx, store.NewPost{ID: contract.NewID(), Text: "posted with data rights"})
	if err != nil {
		t.Fatalf("CreatePost as a data-only user: %v", err)
	}
	if _, err := s.GetPost(ctx, p.ID); err != nil {
		t.Fatalf("GetPost as a data-only user: %v", err)
	}
}

// TestEmbeddedReopen: the embedded store creates its folder and keeps
// posts across a restart; migrating again is harmless.
func TestEmbeddedReopen(t *testing.T) {
	t.Parallel()
	cfg := store.Config{DataDir: filepath.Join(t.TempDir(), "not", "yet", "there")}
	s := storetest.Open(t, cfg)
	p, err := s.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: "kept across restarts", Image: &store.NewImage{
		ID: contract.NewID(), ContentType: "image/png", Width: 2, Height: 3, Data: []byte("not really a png"),
	}})
	if err != nil {
		t.Fatalf("CreatePost: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, store.EmbeddedFile)); err != nil {
		t.Fatalf("database file: %v", err)
	}
	if err := store.Migrate(t.Context(), cfg); err != nil {
		t.Fatalf("Migrate an up-to-date database: %v", err)
	}
	got, err := storetest.Open(t, cfg).GetPost(t.Context(), p.ID)
	if err != nil || got.Text != p.Text || !got.CreatedAt.Equal(p.CreatedAt) || got.Image == nil || *got.Image != *p.Image {
		t.Errorf("after reopening got %+v, %v; want %+v", got, err, p)
	}
}

// BenchmarkListPosts reads feed pages of 20 from 10,000 posts. The feed
// uses keyset pagination on the primary key, so page 500 (the oldest posts)
// should cost about what page 1 does; OFFSET would read 9,980 rows first.
func BenchmarkListPosts(b *testing.B) {
	const posts, pageSize = 10_000, 20
	for name, open := range stores {
		b.Run(name, func(b *testing.B) {
			s := open(b)
			if err := store.BulkFill(b.Context(), s, posts); err != nil {
				b.Fatal(err)
			}
			// Each page's cursor, as a reader following "older posts" finds it.
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
			if len(cursors) < posts/pageSize {
				b.Fatalf("found %d full pages, want %d", len(cursors), posts/pageSize)
			}
			for _, n := range []int{1, posts / pageSize} {
				b.Run(fmt.Sprintf("page%d", n), func(b *testing.B) {
					for b.Loop() {
						page, err := s.ListPosts(b.Context(), store.ListOptions{Before: cursors[n-1], Limit: pageSize})
						if err != nil || len(page) != pageSize {
							b.Fatalf("page %d: %d posts, %v; want %d", n, len(page), err, pageSize)
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
	for name, open := range stores {
		b.Run(name, func(b *testing.B) {
			s := open(b)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				im := &store.NewImage{ID: contract.NewID(), ContentType: "image/png", Width: 200, Height: 200, Data: data}
				if _, err := s.CreatePost(b.Context(), store.NewPost{ID: contract.NewID(), Text: "benchmark", Image: im}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
