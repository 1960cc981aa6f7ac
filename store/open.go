package store

import (
	"context"
	"errors"
	"log/slog"
)

// ErrInvalid is returned, before the database is touched, for arguments no
// store accepts: a zero id, empty or over-long text, an image without bytes,
// a page size out of range.
var ErrInvalid = errors.New("store: invalid argument")

// MaxListLimit is the largest page ListPosts and ImageIDs return.
const MaxListLimit = 1000

// Config chooses and configures a store.
type Config struct {
	// MySQLDSN selects MySQL 8 or MariaDB 10.11+, in go-sql-driver/mysql
	// form: "user:password@tcp(host:3306)/extagram". It must name the
	// database. Connection settings the store depends on (parseTime, UTC,
	// utf8mb4_bin, timeouts) are set by the store.
	MySQLDSN string
	// DataDir holds the embedded database (extagram.db) when MySQLDSN is
	// empty. It is created if missing.
	DataDir string
	// Logger receives start-up, migration and driver messages; nil
	// discards them. The DSN's password is never logged.
	Logger *slog.Logger
	// SkipMigrations opens the store without running migrations, for
	// deployments that migrate in a separate step (see Migrate). Without
	// it, Open runs them; that is a read-only no-op when the schema is
	// already current.
	SkipMigrations bool
}

func (c Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Open opens the store cfg selects, checks that the database answers and,
// unless cfg.SkipMigrations, brings its schema up to date. A database that
// cannot be reached gives an error wrapping ErrUnavailable, at the latest
// when ctx ends.
func Open(ctx context.Context, cfg Config) (Store, error) {
	if cfg.MySQLDSN != "" {
		return openMySQL(ctx, cfg)
	}
	return openEmbedded(ctx, cfg)
}

// Migrate brings the schema of the database cfg selects up to date and
// closes it again: the one-shot step of a deployment that runs migrations
// with DDL rights before starting services that have data rights only.
// Several processes may run it at once against one MySQL database; they
// take turns.
func Migrate(ctx context.Context, cfg Config) error {
	cfg.SkipMigrations = false
	s, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	return s.Close()
}
