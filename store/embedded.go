package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// EmbeddedFile is the name of the embedded database in Config.DataDir.
const EmbeddedFile = "extagram.db"

// sqliteBusyTimeout is how long a connection waits for a lock held by
// another connection before SQLITE_BUSY. Writers already queue on the one
// write connection; this covers readers meeting a checkpoint and a second
// process opening the same file.
const sqliteBusyTimeout = 10 * time.Second

// sqliteDSN returns the driver's name for the database file at path. The
// "file:" URI form keeps a '?' or '#' in the path from being read as the
// start of the parameters.
func sqliteDSN(path string, params url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: params.Encode()}
	if runtime.GOOS == "windows" {
		u.Path = "/" + u.Path // file:///C:/...
	}
	return u.String()
}

func openEmbedded(ctx context.Context, c Config) (Store, error) {
	logger := c.logger()
	if c.DataDir == "" {
		return nil, errors.New("store: no MySQL DSN and no data folder for the embedded store")
	}
	dir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return nil, fmt.Errorf("store: data folder: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: data folder: %w", err)
	}
	path := filepath.Join(dir, EmbeddedFile)
	busy := fmt.Sprint(sqliteBusyTimeout.Milliseconds())

	// The write pool has one connection: SQLite allows one writer at a
	// time, and queueing writers in database/sql is fairer and cheaper than
	// letting them collide on the file lock. BEGIN IMMEDIATE takes the write
	// lock when the transaction starts, so a transaction never has to
	// upgrade a read lock half-way (which fails at once with SQLITE_BUSY,
	// whatever the busy timeout).
	w, err := openTraced("sqlite", sqliteDSN(path, url.Values{
		"_pragma": {
			"busy_timeout(" + busy + ")",
			"journal_mode(WAL)", // readers never block the writer, nor it them
			"synchronous(NORMAL)",
			"foreign_keys(1)",
		},
		"_txlock": {"immediate"},
	}), systemSQLite)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, wrap("open "+path, err, classifySQLite)
	}
	if !c.SkipMigrations {
		// Through the write pool: migrations write, and goose holds one
		// connection for the whole run.
		if err := migrate(ctx, w, goose.DialectSQLite3, "sqlite", nil, logger); err != nil {
			w.Close()
			return nil, wrap("migrate "+path, err, classifySQLite)
		}
	}

	// Readers share a pool of read-only connections; in WAL mode they see
	// the last commit and never wait for the writer.
	r, err := openTraced("sqlite", sqliteDSN(path, url.Values{
		"_pragma": {
			"busy_timeout(" + busy + ")",
			"foreign_keys(1)",
			"query_only(1)",
		},
	}), systemSQLite)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	r.SetConnMaxLifetime(0)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, wrap("open "+path, err, classifySQLite)
	}
	logger.LogAttrs(ctx, slog.LevelInfo, "store: opened embedded database", slog.String("path", path))
	return newSQLStore(r, w, func(t time.Time) any { return t.UTC().Format(sqliteTimeLayout) }, classifySQLite), nil
}
