package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/go-sql-driver/mysql"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// wrap adds context to a database error and, when the error means a
// duplicate id or an unreachable database, the sentinel callers test with
// errors.Is. classify is the dialect's own rule for server error codes.
func wrap(op string, err error, classify func(error) error) error {
	kind := connectionKind(err)
	if kind == nil && classify != nil {
		kind = classify(err)
	}
	if kind != nil {
		return fmt.Errorf("store: %s: %w: %w", op, kind, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// connectionKind returns ErrUnavailable for failures to reach the database
// or to hear back from it in time, whatever the dialect.
func connectionKind(err error) error {
	// The caller gave up (a browser went away): that says nothing about the
	// database, and a dial cancelled by ctx looks like a net.Error too.
	if errors.Is(err, context.Canceled) {
		return nil
	}
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), // connecting or a query ran out of time
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, sql.ErrConnDone),
		errors.Is(err, mysql.ErrInvalidConn), // the server closed or broke the connection
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.As(err, &netErr): // dial errors, timeouts, DNS failures
		return ErrUnavailable
	}
	return nil
}

// MySQL server error numbers the store gives a meaning to.
const (
	mysqlDupEntry            = 1062 // ER_DUP_ENTRY
	mysqlDupEntryWithKeyName = 1586 // ER_DUP_ENTRY_WITH_KEY_NAME
	mysqlTooManyConnections  = 1040 // ER_CON_COUNT_ERROR
	mysqlServerShutdown      = 1053 // ER_SERVER_SHUTDOWN
	mysqlLockWaitTimeout     = 1205 // ER_LOCK_WAIT_TIMEOUT
	mysqlDeadlock            = 1213 // ER_LOCK_DEADLOCK
	mysqlReadOnly            = 1290 // ER_OPTION_PREVENTS_STATEMENT: --read-only, during a failover
	mysqlReadOnlyTx          = 1792 // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
	mysqlReadOnlyMode        = 1836 // ER_READ_ONLY_MODE
	mysqlConnectionKilled    = 1927 // ER_CONNECTION_KILLED (MariaDB)
	mysqlClientIdleTimeout   = 4031 // ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8)
)

// classifyMySQL maps MySQL server errors. Errors that a later attempt may
// not meet (too many connections, lock waits, deadlocks, a server shutting
// down or read-only during a failover) count as unavailable: the caller
// answers "try again later" rather than blaming the request.
func classifyMySQL(err error) error {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return nil
	}
	switch me.Number {
	case mysqlDupEntry, mysqlDupEntryWithKeyName:
		return ErrDuplicate
	case mysqlTooManyConnections, mysqlServerShutdown, mysqlLockWaitTimeout, mysqlDeadlock,
		mysqlReadOnly, mysqlReadOnlyTx, mysqlReadOnlyMode, mysqlConnectionKilled, mysqlClientIdleTimeout:
		return ErrUnavailable
	}
	return nil
}

// classifySQLite maps SQLite result codes. The driver reports extended
// codes, whose low byte is the primary code.
func classifySQLite(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return nil
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return ErrDuplicate
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM,
		sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN:
		return ErrUnavailable
	}
	return nil
}
