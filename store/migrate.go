package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrations holds one folder of goose SQL migrations per dialect. Both
// folders describe the same schema and gain a file together.
//
//go:embed migrations/mysql/*.sql migrations/sqlite/*.sql
var migrations embed.FS

// migrate brings the schema up to date. When it already is, it only reads
// goose's version table (and, for MySQL, takes a named lock, which needs no
// privilege), so services running with data-only rights can call it safely.
func migrate(ctx context.Context, db *sql.DB, dialect goose.Dialect, dir string, locker *mysqlLocker, logger *slog.Logger) error {
	fsys, err := fs.Sub(migrations, "migrations/"+dir)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	opts := []goose.ProviderOption{
		goose.WithSlog(logger),
		// Go migrations registered globally by other packages (or goose's
		// own tests) must never run against this schema.
		goose.WithDisableGlobalRegistry(true),
	}
	if locker != nil {
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db, fsys, opts...)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	// Up starts with HasPending, which never takes the session lock and
	// creates goose's version table when it is missing. On MySQL that
	// CREATE TABLE commits at once, before the version-0 row is inserted,
	// so a migrator holding the lock could find the table without its
	// first row and fail with "missing zero version migration". Reading
	// the version first does the same creation under the lock, and the
	// provider creates its version table once, so by the time HasPending
	// runs, the table and its first row are there.
	if _, err := p.GetDBVersion(ctx); err != nil {
		return err
	}
	// Not p.Close: it would close db, which belongs to the caller. Goose
	// logs each migration it applies through logger.
	if _, err := p.Up(ctx); err != nil {
		return err
	}
	return nil
}

// mysqlLocker serialises migrations between processes that start at the
// same time against one database (feed replicas, upload, blob): each takes
// a MySQL named lock on its own connection before goose reads the version
// table. The server drops the lock if that connection dies, so a crashed
// migrator never blocks the others for good.
type mysqlLocker struct {
	name string
	// wait is how long one GET_LOCK call may block on the server. It stays
	// well under the connection's read timeout, and SessionLock calls again
	// until ctx ends, so a long migration elsewhere is waited out.
	wait time.Duration
}

var _ lock.SessionLocker = (*mysqlLocker)(nil)

// newMySQLLocker returns a locker for database dbName. Named locks are
// server-wide, so the name includes the database: migrations of different
// databases on one server (test databases, say) do not wait for each other.
// MySQL limits lock names to 64 characters.
func newMySQLLocker(dbName string) *mysqlLocker {
	name := "extagram.migrate." + dbName
	if len(name) > 64 {
		sum := sha256.Sum256([]byte(dbName))
		name = "extagram.migrate." + hex.EncodeToString(sum[:16])
	}
	return &mysqlLocker{name: name, wait: 5 * time.Second}
}

// SessionLock implements goose's lock.SessionLocker.
func (l *mysqlLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	for {
		// GET_LOCK returns 1 when the lock is taken, 0 when the wait ran
		// out, NULL on an error (such as the thread being killed).
		var got sql.NullInt64
		err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", l.name, int(l.wait/time.Second)).Scan(&got)
		if err != nil {
			return fmt.Errorf("migration lock %q: %w", l.name, err)
		}
		if got.Valid && got.Int64 == 1 {
			return nil
		}
		if !got.Valid {
			return fmt.Errorf("migration lock %q: GET_LOCK returned NULL", l.name)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("migration lock %q: %w", l.name, err)
		}
	}
}

// SessionUnlock implements goose's lock.SessionLocker.
func (l *mysqlLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	// RELEASE_LOCK returns 1 when released, 0 when another session holds
	// the lock, NULL when nobody does.
	var released sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", l.name).Scan(&released); err != nil {
		return fmt.Errorf("migration unlock %q: %w", l.name, err)
	}
	if !released.Valid || released.Int64 != 1 {
		return fmt.Errorf("migration unlock %q: this session did not hold the lock", l.name)
	}
	return nil
}
