package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/pressly/goose/v3"
)

// Connection settings for MySQL. The pool is sized for one service process;
// connections are recycled well before a server's wait_timeout (8 hours by
// default, often lowered to minutes by managed databases and proxies) so
// the pool never hands out a connection the server has already dropped.
const (
	mysqlDialTimeout     = 5 * time.Second
	mysqlIOTimeout       = 30 * time.Second
	mysqlMaxOpenConns    = 20
	mysqlConnMaxLifetime = 3 * time.Minute
	mysqlConnMaxIdleTime = time.Minute
)

// mysqlConfig parses dsn and sets what the store relies on, whatever the
// DSN says: times as time.Time in UTC, utf8mb4 with a binary collation.
// Timeouts the DSN leaves unset get defaults, so that no dial, read or write
// can hang for ever.
func mysqlConfig(dsn string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		// The driver's message never repeats the DSN, so no password leaks.
		return nil, fmt.Errorf("store: mysql DSN: %w", err)
	}
	if cfg.DBName == "" {
		return nil, errors.New("store: mysql DSN names no database (want user:password@tcp(host:3306)/extagram)")
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	// The connection speaks utf8mb4 and compares by bytes: the collation
	// goes in the handshake, and SET NAMES on each new connection replaces
	// any charset= in the DSN (one round trip per connection, which the
	// pool keeps for minutes).
	if err := cfg.Apply(mysql.Charset("utf8mb4", "utf8mb4_bin")); err != nil {
		return nil, fmt.Errorf("store: mysql DSN: %w", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = mysqlDialTimeout
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = mysqlIOTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = mysqlIOTimeout
	}
	// Ask the server for its max_allowed_packet instead of assuming 64 MiB:
	// the driver then sends an image larger than the server's limit in
	// pieces, where a single oversized packet would make the server drop
	// the connection.
	cfg.MaxAllowedPacket = 0
	// During a failover the old primary turns read-only; the driver then
	// discards the connection and database/sql dials the new primary.
	cfg.RejectReadOnly = true
	return cfg, nil
}

// openMySQLDB opens a pool for dsn and waits, at most until ctx ends, for
// one working connection.
func openMySQLDB(ctx context.Context, dsn string, logger *slog.Logger) (*sql.DB, *mysql.Config, error) {
	cfg, err := mysqlConfig(dsn)
	if err != nil {
		return nil, nil, err
	}
	cfg.Logger = driverLogger{logger}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("store: mysql DSN: %w", err)
	}
	db := openDBTraced(connector, systemMySQL)
	db.SetMaxOpenConns(mysqlMaxOpenConns)
	db.SetMaxIdleConns(mysqlMaxOpenConns)
	db.SetConnMaxLifetime(mysqlConnMaxLifetime)
	db.SetConnMaxIdleTime(mysqlConnMaxIdleTime)
	// The dial timeout bounds connecting, the driver closes a connection
	// whose handshake outlives ctx, and ctx bounds the whole Ping, so a
	// server that accepts and never answers cannot hang start-up.
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, nil, wrap(fmt.Sprintf("connect to mysql %s/%s", cfg.Addr, cfg.DBName), err, classifyMySQL)
	}
	return db, cfg, nil
}

func openMySQL(ctx context.Context, c Config) (Store, error) {
	logger := c.logger()
	db, cfg, err := openMySQLDB(ctx, c.MySQLDSN, logger)
	if err != nil {
		return nil, err
	}
	if !c.SkipMigrations {
		if err := migrate(ctx, db, goose.DialectMySQL, "mysql", newMySQLLocker(cfg.DBName), logger); err != nil {
			db.Close()
			return nil, wrap("migrate mysql "+cfg.DBName, err, classifyMySQL)
		}
	}
	logger.LogAttrs(ctx, slog.LevelInfo, "store: opened mysql",
		slog.String("addr", cfg.Addr), slog.String("database", cfg.DBName))
	s := newSQLStore(db, db, func(t time.Time) any { return t }, classifyMySQL)
	// Claims lock the rows they take and skip those another claimer holds
	// (MySQL 8.0, MariaDB 10.6+), in READ COMMITTED so that the locking
	// read takes no gap locks that would hold up CreatePost's insert.
	s.claimLock = " FOR UPDATE SKIP LOCKED"
	s.claimTx = &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	return s, nil
}

// driverLogger sends the driver's own messages (a connection that broke
// mid-read, say) to the store's structured log rather than to the standard
// logger on stderr.
type driverLogger struct{ l *slog.Logger }

func (d driverLogger) Print(v ...any) {
	d.l.LogAttrs(context.Background(), slog.LevelWarn, "store: mysql driver", slog.String("detail", fmt.Sprint(v...)))
}
