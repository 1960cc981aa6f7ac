package store

import (
	"strings"
	"testing"
	"time"
)

func TestMySQLConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, dsn string
		check     func(t *testing.T, dsn string)
	}{
		{"defaults", "app:secret@tcp(db:3306)/extagram", func(t *testing.T, dsn string) {
			cfg, err := mysqlConfig(dsn)
			if err != nil {
				t.Fatal(err)
			}
			if !cfg.ParseTime || cfg.Loc != time.UTC {
				t.Errorf("ParseTime %v, Loc %v: want true, UTC", cfg.ParseTime, cfg.Loc)
			}
			if cfg.Collation != "utf8mb4_bin" {
				t.Errorf("Collation %q, want utf8mb4_bin", cfg.Collation)
			}
			if cfg.Timeout != mysqlDialTimeout || cfg.ReadTimeout != mysqlIOTimeout || cfg.WriteTimeout != mysqlIOTimeout {
				t.Errorf("timeouts dial %v read %v write %v, want %v %v %v", cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout,
					mysqlDialTimeout, mysqlIOTimeout, mysqlIOTimeout)
			}
			if !strings.Contains(cfg.FormatDSN(), "charset=utf8mb4") {
				t.Errorf("DSN %q does not set charset utf8mb4", cfg.FormatDSN())
			}
		}},
		{"forced settings win, explicit timeouts stay", "app:secret@tcp(db)/extagram?parseTime=false&loc=Local&charset=latin1&collation=latin1_swedish_ci&timeout=1s&readTimeout=2s&writeTimeout=3s", func(t *testing.T, dsn string) {
			cfg, err := mysqlConfig(dsn)
			if err != nil {
				t.Fatal(err)
			}
			if !cfg.ParseTime || cfg.Loc != time.UTC || cfg.Collation != "utf8mb4_bin" {
				t.Errorf("ParseTime %v, Loc %v, Collation %q: want true, UTC, utf8mb4_bin", cfg.ParseTime, cfg.Loc, cfg.Collation)
			}
			if strings.Contains(cfg.FormatDSN(), "latin1") {
				t.Errorf("DSN %q still asks for latin1", cfg.FormatDSN())
			}
			if cfg.Timeout != time.Second || cfg.ReadTimeout != 2*time.Second || cfg.WriteTimeout != 3*time.Second {
				t.Errorf("timeouts %v %v %v, want the DSN's 1s 2s 3s", cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout)
			}
		}},
		{"no database", "app:secret@tcp(db:3306)/", func(t *testing.T, dsn string) {
			if _, err := mysqlConfig(dsn); err == nil {
				t.Error("accepted a DSN without a database")
			}
		}},
		{"malformed, password not echoed", "app:hunter2@tcp(db:3306/extagram", func(t *testing.T, dsn string) {
			_, err := mysqlConfig(dsn)
			if err == nil {
				t.Fatal("accepted a malformed DSN")
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the password", err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.check(t, c.dsn)
		})
	}
}

func TestMySQLLockerName(t *testing.T) {
	t.Parallel()
	if got := newMySQLLocker("extagram").name; got != "extagram.migrate.extagram" {
		t.Errorf("lock name %q", got)
	}
	long := newMySQLLocker(strings.Repeat("d", 64)).name
	if len(long) > 64 {
		t.Errorf("lock name %q is %d characters, MySQL allows 64", long, len(long))
	}
	if long == newMySQLLocker(strings.Repeat("e", 64)).name {
		t.Error("two long database names share a lock name")
	}
}
