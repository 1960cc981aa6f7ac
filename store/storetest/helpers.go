package storetest

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/extagram/extagram/internal/testproxy"
	"github.com/extagram/extagram/store"
)

// DSNEnv names the variable holding the DSN of a MySQL or MariaDB server the
// tests may create databases on, e.g. root@tcp(127.0.0.1:3306)/.
const DSNEnv = "EXTAGRAM_TEST_MYSQL_DSN"

// MySQLDSN returns the DSN of a new, empty database on the test server,
// dropped when t's test ends. Without DSNEnv the test is skipped, except
// under CI=true, where it fails: CI must never skip MySQL quietly.
func MySQLDSN(t testing.TB) string {
	t.Helper()
	if os.Getenv(DSNEnv) == "" {
		msg := "MySQL tests need " + DSNEnv + ", e.g. " + DSNEnv + "='root@tcp(127.0.0.1:3306)/'"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cfg, err := mysql.ParseDSN(os.Getenv(DSNEnv))
	if err != nil {
		t.Fatalf("%s: %v", DSNEnv, err)
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, 5*time.Second)
	admin := cfg.Clone()
	admin.DBName = ""
	cfg.DBName = "extagram_test_" + rand.Text()[:16]
	exec := func(format string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sql.Open("mysql", admin.FormatDSN())
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.ExecContext(ctx, fmt.Sprintf(format, cfg.DBName))
		return err
	}
	if err := exec("CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		t.Fatalf("create test database on %s: %v", cfg.Addr, err)
	}
	// Runs after the cleanups of whatever the test opens on the database.
	t.Cleanup(func() {
		if err := exec("DROP DATABASE IF EXISTS `%s`"); err != nil {
			t.Errorf("drop test database %s: %v", cfg.DBName, err)
		}
	})
	return cfg.FormatDSN()
}

// Logger returns a logger for warnings and errors that writes into t's
// output, shown for failed tests and with -v.
func Logger(t testing.TB) *slog.Logger {
	w := &testWriter{out: t.Output()}
	// Runs after the cleanups of what the test opens with the logger: a
	// connection closed late must not write to a finished test (a panic).
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.out = nil
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	mu  sync.Mutex
	out interface{ Write([]byte) (int, error) }
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.out == nil {
		return len(p), nil
	}
	return w.out.Write(p)
}

// MySQL opens a store on a new MySQL database (see MySQLDSN), closed when
// the test ends.
func MySQL(t testing.TB) store.Store {
	t.Helper()
	return Open(t, store.Config{MySQLDSN: MySQLDSN(t)})
}

// Proxied is MySQL through a proxy the test can cut.
func Proxied(t testing.TB) (store.Store, *testproxy.Proxy) {
	t.Helper()
	cfg, proxy := ThroughProxy(t, MySQLDSN(t))
	cfg.Timeout = 2 * time.Second
	return Open(t, store.Config{MySQLDSN: cfg.FormatDSN()}), proxy
}

// ThroughProxy is dsn with its server reached through a proxy the test can
// cut, stopped when the test ends.
func ThroughProxy(t testing.TB, dsn string) (*mysql.Config, *testproxy.Proxy) {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testproxy.Start(t, cfg.Addr)
	cfg.Addr = proxy.Addr()
	return cfg, proxy
}

// Embedded opens an embedded store in a new temporary folder, closed when
// the test ends.
func Embedded(t testing.TB) store.Store {
	t.Helper()
	return Open(t, store.Config{DataDir: t.TempDir()})
}

// Open opens a store with cfg, logging to t (see Logger) unless
// cfg.Logger is set, and closes it when the test ends.
func Open(t testing.TB, cfg store.Config) store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg.Logger = cmp.Or(cfg.Logger, Logger(t))
	s, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}
