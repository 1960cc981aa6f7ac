package store

import (
	"strings"
	"testing"
	"time"
)

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
