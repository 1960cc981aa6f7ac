package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/extagram/extagram/internal/contract"
)

func TestWrapClassifies(t *testing.T) {
	t.Parallel()
	// The SQLite driver's errors cannot be built outside its package: these
	// come from a real database.
	db, err := sql.Open("sqlite", sqliteDSN(t.TempDir()+"/classify.db", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string) error { _, err := db.ExecContext(t.Context(), q); return err }
	if err := errors.Join(exec("CREATE TABLE t (id BLOB PRIMARY KEY, u TEXT UNIQUE, n INTEGER NOT NULL)"),
		exec("INSERT INTO t VALUES (x'01', 'a', 1)")); err != nil {
		t.Fatal(err)
	}
	dialRefused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	cases := []struct {
		name     string
		err      error
		classify func(error) error
		want     error // nil: neither ErrDuplicate nor ErrUnavailable
	}{
		{"mysql duplicate entry", &mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}, classifyMySQL, ErrDuplicate},
		{"mysql duplicate, wrapped", fmt.Errorf("exec: %w", &mysql.MySQLError{Number: 1062}), classifyMySQL, ErrDuplicate},
		{"mysql too many connections", &mysql.MySQLError{Number: 1040}, classifyMySQL, ErrUnavailable},
		{"mysql deadlock", &mysql.MySQLError{Number: 1213}, classifyMySQL, ErrUnavailable},
		{"mysql read-only", &mysql.MySQLError{Number: 1290}, classifyMySQL, ErrUnavailable},
		{"mysql syntax error", &mysql.MySQLError{Number: 1064}, classifyMySQL, nil},
		{"mysql no such table", &mysql.MySQLError{Number: 1146}, classifyMySQL, nil},
		{"invalid connection", mysql.ErrInvalidConn, classifyMySQL, ErrUnavailable},
		{"bad connection", driver.ErrBadConn, classifyMySQL, ErrUnavailable},
		{"connection done", sql.ErrConnDone, classifySQLite, ErrUnavailable},
		{"connection refused", dialRefused, classifyMySQL, ErrUnavailable},
		{"bare ECONNREFUSED", syscall.ECONNREFUSED, classifyMySQL, ErrUnavailable},
		{"i/o timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, classifyMySQL, ErrUnavailable},
		{"deadline", context.DeadlineExceeded, classifySQLite, ErrUnavailable},
		{"canceled", context.Canceled, classifyMySQL, nil},
		{"dial canceled", &net.OpError{Op: "dial", Net: "tcp", Err: context.Canceled}, classifyMySQL, nil},
		{"no rows", sql.ErrNoRows, classifyMySQL, nil},
		{"anything else", errors.New("boom"), classifySQLite, nil},
		{"sqlite primary key", exec("INSERT INTO t VALUES (x'01', 'b', 1)"), classifySQLite, ErrDuplicate},
		{"sqlite unique", exec("INSERT INTO t VALUES (x'02', 'a', 1)"), classifySQLite, ErrDuplicate},
		{"sqlite not null: a bug", exec("INSERT INTO t VALUES (x'03', 'c', NULL)"), classifySQLite, nil},
		{"sqlite no such table", exec("INSERT INTO missing VALUES (1)"), classifySQLite, nil},
	}
	for _, c := range cases {
		if c.err == nil {
			t.Errorf("%s: no error to classify", c.name)
		}
		err := wrap("op", c.err, c.classify)
		if !errors.Is(err, c.err) {
			t.Errorf("%s: wrap(%v) = %v, which no longer wraps the cause", c.name, c.err, err)
		}
		for _, sentinel := range []error{ErrDuplicate, ErrUnavailable} {
			if got, want := errors.Is(err, sentinel), sentinel == c.want; got != want {
				t.Errorf("%s: errors.Is(wrap(%v), %v) = %v, want %v", c.name, c.err, sentinel, got, want)
			}
		}
	}
}

func TestMySQLConfig(t *testing.T) {
	t.Parallel()
	// Forced settings win over the DSN's; its timeouts stay, defaults fill in.
	for dsn, timeouts := range map[string][3]time.Duration{
		"app:secret@tcp(db:3306)/extagram": {mysqlDialTimeout, mysqlIOTimeout, mysqlIOTimeout},
		"app:secret@tcp(db)/extagram?parseTime=false&loc=Local&charset=latin1&collation=latin1_swedish_ci" +
			"&timeout=1s&readTimeout=2s&writeTimeout=3s": {time.Second, 2 * time.Second, 3 * time.Second},
	} {
		cfg, err := mysqlConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if !cfg.ParseTime || cfg.Loc != time.UTC || cfg.Collation != "utf8mb4_bin" {
			t.Errorf("%s: ParseTime %v, Loc %v, Collation %q: want true, UTC, utf8mb4_bin", dsn, cfg.ParseTime, cfg.Loc, cfg.Collation)
		}
		if f := cfg.FormatDSN(); strings.Contains(f, "latin1") || !strings.Contains(f, "charset=utf8mb4") {
			t.Errorf("DSN %q does not ask for charset utf8mb4 (only)", f)
		}
		if got := [3]time.Duration{cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout}; got != timeouts {
			t.Errorf("%s: timeouts dial, read, write %v, want %v", dsn, got, timeouts)
		}
	}
	if _, err := mysqlConfig("app:secret@tcp(db:3306)/"); err == nil {
		t.Error("accepted a DSN without a database")
	}
	if _, err := mysqlConfig("app:hunter2@tcp(db:3306/extagram"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("malformed DSN: %v, want an error that does not show the password", err)
	}
}

func TestMySQLLockerName(t *testing.T) {
	t.Parallel()
	if got := newMySQLLocker("extagram").name; got != "extagram.migrate.extagram" {
		t.Errorf("lock name %q", got)
	}
	long := newMySQLLocker(strings.Repeat("d", 64)).name
	if len(long) > 64 || long == newMySQLLocker(strings.Repeat("e", 64)).name {
		t.Errorf("lock name %q is %d characters (MySQL allows 64) or shared by two long database names", long, len(long))
	}
}

// BulkFill adds n posts to s in one transaction with multi-row inserts,
// every second one with a small image: benchmarks need thousands of posts,
// and CreatePost's one transaction per post would make the setup slow.
func BulkFill(ctx context.Context, s Store, n int) error {
	ss, ok := s.(*sqlStore)
	if !ok {
		return fmt.Errorf("BulkFill: %T is not an SQL store", s)
	}
	const batch = 250 // rows per INSERT, far below both databases' placeholder limits
	now := time.Now().UTC().Truncate(time.Microsecond)
	data := make([]byte, 1024)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	return ss.inTx(ctx, func(tx *sql.Tx) error {
		for start := 0; start < n; start += batch {
			var imageArgs, postArgs []any
			for i := start; i < min(start+batch, n); i++ {
				postID := contract.NewID()
				var imageID any
				if i%2 == 0 {
					id := contract.NewID()
					imageArgs = append(imageArgs, id[:], "image/jpeg", len(data), sum[:], 320, 240, data, ss.timeArg(now))
					imageID = id[:]
				}
				postArgs = append(postArgs, postID[:], fmt.Sprintf("bulk post %d", i), imageID, ss.timeArg(now))
			}
			if len(imageArgs) > 0 {
				q := `INSERT INTO images (id, content_type, size_bytes, sha256, width, height, data, created_at) VALUES ` +
					values(len(imageArgs)/8, "(?, ?, ?, ?, ?, ?, ?, ?)")
				if _, err := tx.ExecContext(ctx, q, imageArgs...); err != nil {
					return fmt.Errorf("BulkFill images: %w", err)
				}
			}
			q := `INSERT INTO posts (id, body, image_id, created_at) VALUES ` + values(len(postArgs)/4, "(?, ?, ?, ?)")
			if _, err := tx.ExecContext(ctx, q, postArgs...); err != nil {
				return fmt.Errorf("BulkFill posts: %w", err)
			}
		}
		return nil
	})
}

func values(rows int, row string) string {
	return strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ")
}
