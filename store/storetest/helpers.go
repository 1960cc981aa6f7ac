package storetest

import (
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

	"github.com/extagram/extagram/store"
)

// DSNEnv names the environment variable holding the DSN of a MySQL or
// MariaDB server the tests may create databases on, for example
// root@tcp(127.0.0.1:3306)/ (the database part is ignored).
const DSNEnv = "EXTAGRAM_TEST_MYSQL_DSN"

// RequireMySQL returns the server DSN from DSNEnv. Without it the test is
// skipped, except under CI=true, where it fails: CI must never skip MySQL
// quietly.
func RequireMySQL(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(DSNEnv)
	if dsn == "" {
		msg := "MySQL tests need " + DSNEnv + ", a server the tests may create databases on, e.g. " +
			DSNEnv + "='root@tcp(127.0.0.1:3306)/'"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dsn
}

// MySQLDSN returns the DSN of a new, empty database on the test server,
// which is dropped when t's test ends. See RequireMySQL for a missing DSNEnv.
func MySQLDSN(t testing.TB) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(RequireMySQL(t))
	if err != nil {
		t.Fatalf("%s: %v", DSNEnv, err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	admin := cfg.Clone()
	admin.DBName = ""
	cfg.DBName = "extagram_test_" + rand.Text()[:16]
	exec := func(format string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		connector, err := mysql.NewConnector(admin)
		if err != nil {
			return err
		}
		db := sql.OpenDB(connector)
		defer db.Close()
		_, err = db.ExecContext(ctx, fmt.Sprintf(format, cfg.DBName))
		return err
	}
	if err := exec("CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		t.Fatalf("create test database on %s: %v", cfg.Addr, err)
	}
	// Registered after the database exists, so it runs after the cleanups
	// of whatever the test opens on it (t.Cleanup runs last-in first-out).
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
	var mu sync.Mutex
	out := t.Output()
	// Registered before anything the test opens with this logger, so it
	// runs after their cleanups: a connection the pool closes late must not
	// write to a finished test, which panics.
	t.Cleanup(func() {
		mu.Lock()
		out = nil
		mu.Unlock()
	})
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if out == nil {
			return len(p), nil
		}
		return out.Write(p)
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// MySQL opens a store on a new MySQL database (see MySQLDSN) and closes it
// when the test ends.
func MySQL(t testing.TB) store.Store {
	t.Helper()
	return open(t, store.Config{MySQLDSN: MySQLDSN(t), Logger: Logger(t)})
}

// Embedded opens an embedded store in a new temporary folder and closes it
// when the test ends.
func Embedded(t testing.TB) store.Store {
	t.Helper()
	return open(t, store.Config{DataDir: t.TempDir(), Logger: Logger(t)})
}

func open(t testing.TB, cfg store.Config) store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
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
