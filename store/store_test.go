package store_test

import (
	"context"
	"database/sql"
	"errors"
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

// TestStore runs the conformance suite on both stores.
func TestStore(t *testing.T) {
	t.Parallel()
	t.Run("mysql", func(t *testing.T) {
		t.Parallel()
		storetest.RequireMySQL(t)
		storetest.Run(t, func(t *testing.T) store.Store { return storetest.MySQL(t) })
	})
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) store.Store { return storetest.Embedded(t) })
	})
}

// TestOpenUnreachableMySQL checks that Open and Migrate give up with
// ErrUnavailable instead of hanging when the server cannot be reached or
// never answers. The 2s context is what makes them return; the test
// asserts no time.
func TestOpenUnreachableMySQL(t *testing.T) {
	t.Parallel()
	if _, err := store.Open(t.Context(), store.Config{}); err == nil {
		t.Error("Open with neither a DSN nor a data folder succeeded")
	}
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
	closed := testproxy.Start(t, "127.0.0.1:1")
	closed.Cut() // refuses connections from now on
	servers := map[string]string{
		// The kernel completes the handshake of a connection never accepted.
		"accepts and never answers": listen().Addr().String(),
		"accepts and hangs up":      testproxy.Start(t, closed.Addr()).Addr(), // its target refuses
		"answers garbage":           garbage.Addr().String(),
		"closed port":               closed.Addr(),
	}
	ops := map[string]func(ctx context.Context, cfg store.Config) error{
		"Open": func(ctx context.Context, cfg store.Config) error {
			s, err := store.Open(ctx, cfg)
			if err == nil {
				s.Close()
			}
			return err
		},
		"Migrate": store.Migrate,
	}
	for srv, addr := range servers {
		for op, run := range ops {
			t.Run(srv+"/"+op, func(t *testing.T) {
				t.Parallel()
				cfg := store.Config{MySQLDSN: "extagram:secret@tcp(" + addr + ")/extagram", Logger: storetest.Logger(t)}
				ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
				defer cancel()
				if err := run(ctx, cfg); !errors.Is(err, store.ErrUnavailable) {
					t.Fatalf("%s = %v, want ErrUnavailable", op, err)
				}
			})
		}
	}
}

// TestMySQLServerGone checks that a store whose server disappears answers
// ErrUnavailable (the services' 503) rather than hanging or blaming the
// request. A TCP proxy stands in for the server so the test can cut it off.
func TestMySQLServerGone(t *testing.T) {
	t.Parallel()
	cfg, err := mysql.ParseDSN(storetest.MySQLDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := testproxy.Start(t, cfg.Addr)
	cfg.Addr = proxy.Addr()
	s, err := store.Open(t.Context(), store.Config{MySQLDSN: cfg.FormatDSN(), Logger: storetest.Logger(t)})
	if err != nil {
		t.Fatalf("Open through the proxy: %v", err)
	}
	defer s.Close()
	p, err := s.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: "before the outage"})
	if err != nil {
		t.Fatalf("CreatePost: %v", err)
	}

	// Open connections are reset, new ones refused.
	proxy.Cut()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for name, call := range map[string]func() error{
		"Ping":      func() error { return s.Ping(ctx) },
		"GetPost":   func() error { _, err := s.GetPost(ctx, p.ID); return err },
		"ListPosts": func() error { _, err := s.ListPosts(ctx, store.ListOptions{Limit: 5}); return err },
		"CreatePost": func() error {
			_, err := s.CreatePost(ctx, store.NewPost{ID: contract.NewID(), Text: "during the outage"})
			return err
		},
	} {
		if err := call(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s = %v, want ErrUnavailable", name, err)
		}
	}
}

func openSQL(t *testing.T, cfg *mysql.Config) *sql.DB {
	t.Helper()
	cfg.Timeout = 5 * time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	return db
}

// TestMySQLMigrationStep follows a deployment that migrates in a one-shot
// step with DDL rights and runs services with data rights only: before the
// step, a store opened with SkipMigrations finds no tables (so it ran no
// DDL); then several migrators start at once, as two feed replicas, upload
// and blob do on a first deployment: all must succeed, each migration
// applied once; after that a data-only user opens the store, migrations
// included, and posts.
func TestMySQLMigrationStep(t *testing.T) {
	t.Parallel()
	dsn := storetest.MySQLDSN(t)
	ctx := t.Context()
	logger := storetest.Logger(t)

	skip, err := store.Open(ctx, store.Config{MySQLDSN: dsn, SkipMigrations: true, Logger: logger})
	if err != nil {
		t.Fatalf("Open with SkipMigrations: %v", err)
	}
	if _, err := skip.CreatePost(ctx, store.NewPost{ID: contract.NewID(), Text: "no table yet"}); err == nil {
		t.Error("CreatePost before migrating succeeded: Open with SkipMigrations must not create tables")
	}
	skip.Close()

	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			if err := store.Migrate(ctx, store.Config{MySQLDSN: dsn, Logger: logger}); err != nil {
				t.Errorf("migrator %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	root := openSQL(t, cfg.Clone())
	var versions, recorded int
	q := `SELECT COUNT(DISTINCT version_id), COUNT(*) FROM goose_db_version`
	if err := root.QueryRowContext(ctx, q).Scan(&versions, &recorded); err != nil {
		t.Fatal(err)
	}
	// Version 0 (goose's own) and at least the first migration, each once.
	if versions < 2 || recorded != versions {
		t.Errorf("goose_db_version holds %d versions in %d rows, want at least 2, each once", versions, recorded)
	}

	// A user with data rights only, on the test database.
	user, password := "extagram_app_"+cfg.DBName[len(cfg.DBName)-8:], "pw-"+contract.NewID().String()
	// Both hosts: an anonymous ''@'localhost' account, where one exists,
	// would otherwise shadow user@'%' for connections from 127.0.0.1.
	for _, host := range []string{"%", "localhost"} {
		account := "'" + user + "'@'" + host + "'"
		for _, q := range []string{
			"CREATE USER " + account + " IDENTIFIED BY '" + password + "'",
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
	app := cfg.Clone()
	app.User, app.Passwd = user, password
	if _, err := openSQL(t, app.Clone()).ExecContext(ctx, "CREATE TABLE not_allowed (a INT)"); err == nil {
		t.Fatal("the data-only user could create a table: the test proves nothing")
	}
	s, err := store.Open(ctx, store.Config{MySQLDSN: app.FormatDSN(), Logger: logger})
	if err != nil {
		t.Fatalf("Open as a data-only user, with migrations already applied: %v", err)
	}
	defer s.Close()
	p, err := s.CreatePost(ctx, store.NewPost{ID: contract.NewID(), Text: "posted with data rights"})
	if err != nil {
		t.Fatalf("CreatePost as a data-only user: %v", err)
	}
	if _, err := s.GetPost(ctx, p.ID); err != nil {
		t.Fatalf("GetPost as a data-only user: %v", err)
	}
}

// TestEmbeddedReopen checks that the embedded store creates its folder,
// keeps posts across a restart, and that migrating again is harmless.
func TestEmbeddedReopen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "not", "yet", "there")
	cfg := store.Config{DataDir: dir, Logger: storetest.Logger(t)}
	s, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	p, err := s.CreatePost(ctx, store.NewPost{ID: contract.NewID(), Text: "kept across restarts", Image: &store.NewImage{
		ID: contract.NewID(), ContentType: "image/png", Width: 2, Height: 3, Data: []byte("not really a png"),
	}})
	if err != nil {
		t.Fatalf("CreatePost: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, store.EmbeddedFile)); err != nil {
		t.Fatalf("database file: %v", err)
	}
	if err := store.Migrate(ctx, cfg); err != nil {
		t.Fatalf("Migrate an up-to-date database: %v", err)
	}
	if s, err = store.Open(ctx, cfg); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	got, err := s.GetPost(ctx, p.ID)
	if err != nil || got.Text != p.Text || !got.CreatedAt.Equal(p.CreatedAt) || got.Image == nil || *got.Image != *p.Image {
		t.Errorf("after reopening got %+v, %v; want %+v", got, err, p)
	}
}
