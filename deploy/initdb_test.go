package deploy

import (
	"crypto/rand"
	"database/sql"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

const initScript = "mysql/initdb.d/10-extagram-users.sh"

// initdbEnv runs the init script against a real server: the one of
// EXTAGRAM_TEST_MYSQL_DSN (with rights to create databases and users, as
// the Makefile sets it), with a MySQL client.
type initdbEnv struct {
	root   *mysql.Config
	admin  *sql.DB
	client string
	sfx    string // makes the test's names unique
}

func newInitdbEnv(t *testing.T) *initdbEnv {
	t.Helper()
	dsn := os.Getenv("EXTAGRAM_TEST_MYSQL_DSN")
	if dsn == "" {
		skipOrFail(t, "EXTAGRAM_TEST_MYSQL_DSN is empty: no MySQL server to run the init script against")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		skipOrFail(t, "bash not found")
	}
	e := &initdbEnv{sfx: strings.ToLower(rand.Text()[:10])}
	for _, name := range []string{"mariadb", "mysql"} {
		if p, err := exec.LookPath(name); err == nil {
			e.client = p
		}
	}
	if e.client == "" {
		skipOrFail(t, "no mysql or mariadb client found")
	}
	var err error
	if e.root, err = mysql.ParseDSN(dsn); err != nil {
		t.Fatalf("EXTAGRAM_TEST_MYSQL_DSN: %v", err)
	}
	if e.root.Net != "tcp" {
		skipOrFail(t, "EXTAGRAM_TEST_MYSQL_DSN must use tcp(host:port)")
	}
	e.root.DBName = ""
	e.admin = must(sql.Open("mysql", e.root.FormatDSN()))
	t.Cleanup(func() { e.admin.Close() })
	if err := e.admin.Ping(); err != nil {
		skipOrFail(t, "MySQL at %s: %v", e.root.Addr, err)
	}
	return e
}

// exec runs statements as the server's administrator.
func (e *initdbEnv) exec(t *testing.T, queries ...string) {
	t.Helper()
	for _, q := range queries {
		_, err := e.admin.Exec(q)
		check(t, err == nil, "%s: %v", q, err)
	}
}

// source runs the init script the way the mysql image's entrypoint does
// for a non-executable .sh file: sourced by bash running with set -eo
// pipefail, with docker_process_sql defined (here: the client against the
// test server, as its administrator). It fails unless the script succeeds
// and the entrypoint carries on after it.
func (e *initdbEnv) source(t *testing.T, env map[string]string) (string, bool) {
	t.Helper()
	host, port, _ := strings.Cut(e.root.Addr, ":")
	cmd := exec.Command("bash", "-c", `set -eo pipefail
docker_process_sql() {
	MYSQL_PWD="$TEST_PASSWORD" "$TEST_CLIENT" --protocol=tcp -h"$TEST_HOST" -P"$TEST_PORT" -u"$TEST_USER" "$@"
}
. "$TEST_SCRIPT"
# The script's options must not leak: the entrypoint reads unset variables.
echo "entrypoint goes on${SOME_UNSET_VARIABLE}"
`)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TEST_CLIENT=" + e.client, "TEST_HOST=" + host, "TEST_PORT=" + port,
		"TEST_USER=" + e.root.User, "TEST_PASSWORD=" + e.root.Passwd, "TEST_SCRIPT=" + must(filepath.Abs(initScript))}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err == nil && strings.Contains(string(out), "entrypoint goes on")
}

// connect logs in as user to the test server.
func (e *initdbEnv) connect(t *testing.T, user, pass, db string) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, pass, "tcp", e.root.Addr, db
	conn := must(sql.Open("mysql", cfg.FormatDSN()))
	t.Cleanup(func() { conn.Close() })
	if err := conn.Ping(); err != nil {
		t.Fatalf("%s cannot log in with the password from the environment: %v", user, err)
	}
	return conn
}

// TestMySQLInitScriptGrantsLeastPrivilege runs S7's init script against a
// real server and checks what each account can do: the services' account
// reads and writes rows and nothing else, the migrate account also changes
// the schema, and neither reaches another database, not even one whose name
// matches with '_' taken as a GRANT wildcard.
func TestMySQLInitScriptGrantsLeastPrivilege(t *testing.T) {
	t.Parallel()
	e := newInitdbEnv(t)
	db, lookalike := "xt_initdb_"+e.sfx, "xtXinitdbX"+e.sfx // lookalike matches db if _ were a wildcard
	appUser, migUser := "xt_app_"+e.sfx, "xt_mig_"+e.sfx
	// Quotes, backslashes and a dollar: the script must escape, not break.
	appPass, migPass := `app'pw"\`+e.sfx+`$HOME`, `mig\'pw`+e.sfx
	t.Cleanup(func() {
		e.exec(t, "DROP DATABASE IF EXISTS `"+db+"`", "DROP DATABASE IF EXISTS `"+lookalike+"`",
			"DROP USER IF EXISTS '"+appUser+"'@'%'", "DROP USER IF EXISTS '"+migUser+"'@'%'")
	})
	// The image creates MYSQL_DATABASE before it runs the init scripts.
	e.exec(t, "CREATE DATABASE `"+db+"`", "CREATE DATABASE `"+lookalike+"`", "CREATE TABLE `"+lookalike+"`.t (id INT PRIMARY KEY)")
	env := map[string]string{"MYSQL_DATABASE": db, "EXTAGRAM_DB_USER": appUser, "EXTAGRAM_DB_PASSWORD": appPass,
		"EXTAGRAM_MIGRATE_USER": migUser, "EXTAGRAM_MIGRATE_PASSWORD": migPass}
	// Twice: the script must be idempotent (it also rotates passwords).
	for i := range 2 {
		if out, ok := e.source(t, env); !ok {
			t.Fatalf("run %d failed:\n%s", i+1, out)
		}
	}
	conns := map[string]*sql.DB{"app": e.connect(t, appUser, appPass, db), "migrate": e.connect(t, migUser, migPass, db)}
	var body string
	for _, step := range []struct {
		who   string
		allow bool
		query string
	}{
		{"app", false, "CREATE TABLE posts (id INT PRIMARY KEY)"},
		{"migrate", true, "CREATE TABLE posts (id INT PRIMARY KEY, body TEXT)"},
		{"migrate", true, "ALTER TABLE posts ADD COLUMN created_at TIMESTAMP NULL"},
		{"migrate", true, "CREATE INDEX posts_created ON posts (created_at)"},
		{"migrate", true, "CREATE TABLE images (id INT PRIMARY KEY, post_id INT, FOREIGN KEY (post_id) REFERENCES posts (id))"},
		{"app", true, "INSERT INTO posts (id, body) VALUES (1, 'hello')"},
		{"app", true, "UPDATE posts SET body = 'hi' WHERE id = 1"},
		{"app", true, "SELECT body FROM posts WHERE id = 1"},
		{"app", true, "DELETE FROM posts WHERE id = 1"},
		{"app", false, "ALTER TABLE posts ADD COLUMN x INT"},
		{"app", false, "CREATE INDEX posts_body ON posts (id, created_at)"},
		{"app", false, "DROP TABLE images"},
		{"app", false, "TRUNCATE TABLE posts"},
		{"app", false, "GRANT SELECT ON `" + db + "`.* TO '" + migUser + "'@'%'"},
		{"app", false, "CREATE DATABASE `" + db + "_x`"},
		{"app", false, "SELECT * FROM `" + lookalike + "`.t"},
		{"app", false, "SELECT user FROM mysql.user"},
		{"migrate", false, "SELECT * FROM `" + lookalike + "`.t"},
		{"migrate", false, "CREATE TABLE `" + lookalike + "`.u (id INT)"},
		{"migrate", false, "CREATE DATABASE `" + db + "_x`"},
		{"migrate", false, "SELECT user FROM mysql.user"},
		{"migrate", false, "CREATE USER 'xt_evil_" + e.sfx + "'@'%'"},
		{"migrate", true, "DROP TABLE images"},
	} {
		var err error
		if strings.HasPrefix(step.query, "SELECT body") {
			err = conns[step.who].QueryRow(step.query).Scan(&body)
			check(t, err != nil || body == "hi", "%s: %s = %q, want the updated row", step.who, step.query, body)
		} else {
			_, err = conns[step.who].Exec(step.query)
		}
		check(t, (err == nil) == step.allow, "%s: %s: allowed %v, want %v (%v)", step.who, step.query, err == nil, step.allow, err)
	}
}

func TestMySQLInitScriptRefusesBadInput(t *testing.T) {
	t.Parallel()
	e := newInitdbEnv(t)
	injected := "xt_injected_" + e.sfx
	base := map[string]string{"MYSQL_DATABASE": "xt_initdb_" + e.sfx, "EXTAGRAM_DB_USER": "xt_app_" + e.sfx, "EXTAGRAM_DB_PASSWORD": "p",
		"EXTAGRAM_MIGRATE_USER": "xt_mig_" + e.sfx, "EXTAGRAM_MIGRATE_PASSWORD": "p"}
	t.Cleanup(func() {
		e.exec(t, "DROP DATABASE IF EXISTS `"+injected+"`", "DROP USER IF EXISTS 'x'@'%'",
			"DROP USER IF EXISTS '"+base["EXTAGRAM_DB_USER"]+"'@'%'", "DROP USER IF EXISTS '"+base["EXTAGRAM_MIGRATE_USER"]+"'@'%'")
	})
	for name, change := range map[string][2]string{
		"no app password":     {"EXTAGRAM_DB_PASSWORD", ""},
		"no migrate password": {"EXTAGRAM_MIGRATE_PASSWORD", ""},
		// Were it injected, this would only create a database, which the
		// test would then find (never a destructive payload: a regression
		// must not damage the server).
		"quote in user name": {"EXTAGRAM_DB_USER", "x'@'%'; CREATE DATABASE `" + injected + "`; -- "},
		"dot in database":    {"MYSQL_DATABASE", "a.b"},
	} {
		t.Run(name, func(t *testing.T) {
			env := maps.Clone(base)
			if env[change[0]] = change[1]; change[1] == "" {
				delete(env, change[0])
			}
			if out, ok := e.source(t, env); ok {
				t.Fatalf("the script accepted it:\n%s", out)
			}
			var accounts, schemas int
			check(t, e.admin.QueryRow("SELECT COUNT(*) FROM mysql.user WHERE user LIKE ?", "xt\\_%\\_"+e.sfx).Scan(&accounts) == nil && accounts == 0, "%d accounts were created anyway", accounts)
			check(t, e.admin.QueryRow("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", injected).Scan(&schemas) == nil && schemas == 0, "a user name was injected into the SQL")
		})
	}
}
