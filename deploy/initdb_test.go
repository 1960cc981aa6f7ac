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

// initdbEnv runs the init script with a MySQL client against the server of EXTAGRAM_TEST_MYSQL_DSN (with
// rights to create databases and users, as the Makefile sets it).
type initdbEnv struct {
	root   *mysql.Config
	admin  *sql.DB
	client string
	sfx    string // makes the test's names unique
}

func newInitdbEnv(t *testing.T) *initdbEnv {
	t.Helper()
	e := &initdbEnv{sfx: strings.ToLower(rand.Text()[:10])}
	for _, name := range []string{"mariadb", "mysql"} {
		if p, err := exec.LookPath(name); err == nil {
			e.client = p
		}
	}
	_, errBash := exec.LookPath("bash")
	root, err := mysql.ParseDSN(os.Getenv("EXTAGRAM_TEST_MYSQL_DSN"))
	if e.client == "" || errBash != nil || err != nil || root.Net != "tcp" {
		skipOrFail(t, "want bash, a mysql or mariadb client (%q), and EXTAGRAM_TEST_MYSQL_DSN with tcp(host:port): %v", e.client, err)
	}
	e.root, root.DBName = root, ""
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

// source runs the init script as the mysql image's entrypoint does a non-executable .sh file: sourced by
// bash with set -eo pipefail and docker_process_sql defined (here: the client as the test server's
// administrator). It reports whether the script succeeded and the entrypoint carried on after it.
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

// TestMySQLInitScript runs S7's init script against a real server: the services' account reads and writes
// rows and nothing else, the migrate account also changes the schema, and neither reaches another database,
// not even one whose name matches with '_' taken as a GRANT wildcard. Bad input is refused, and creates nothing.
func TestMySQLInitScript(t *testing.T) {
	t.Parallel()
	e := newInitdbEnv(t)
	db, lookalike := "xt_initdb_"+e.sfx, "xtXinitdbX"+e.sfx // lookalike matches db if _ were a wildcard
	appUser, migUser, injected := "xt_app_"+e.sfx, "xt_mig_"+e.sfx, "xt_injected_"+e.sfx
	// Quotes, backslashes and a dollar: the script must escape, not break.
	appPass, migPass := `app'pw"\`+e.sfx+`$HOME`, `mig\'pw`+e.sfx
	t.Cleanup(func() {
		e.exec(t, "DROP DATABASE IF EXISTS `"+db+"`", "DROP DATABASE IF EXISTS `"+lookalike+"`", "DROP DATABASE IF EXISTS `"+injected+"`",
			"DROP USER IF EXISTS '"+appUser+"'@'%'", "DROP USER IF EXISTS '"+migUser+"'@'%'", "DROP USER IF EXISTS 'x'@'%'")
	})
	env := map[string]string{"MYSQL_DATABASE": db, "EXTAGRAM_DB_USER": appUser, "EXTAGRAM_DB_PASSWORD": appPass,
		"EXTAGRAM_MIGRATE_USER": migUser, "EXTAGRAM_MIGRATE_PASSWORD": migPass}
	for name, change := range map[string][2]string{
		"no app password":     {"EXTAGRAM_DB_PASSWORD", ""},
		"no migrate password": {"EXTAGRAM_MIGRATE_PASSWORD", ""},
		// Were it injected, this would only create a database, which the test would then find (never a
		// destructive payload: a regression must not damage the server).
		"quote in user name": {"EXTAGRAM_DB_USER", "x'@'%'; CREATE DATABASE `" + injected + "`; -- "},
		"dot in database":    {"MYSQL_DATABASE", "a.b"},
	} {
		bad := maps.Clone(env)
		if bad[change[0]] = change[1]; change[1] == "" {
			delete(bad, change[0])
		}
		if out, ok := e.source(t, bad); ok {
			t.Fatalf("%s: the script accepted it:\n%s", name, out)
		}
		var accounts, schemas int
		check(t, e.admin.QueryRow("SELECT COUNT(*) FROM mysql.user WHERE user LIKE ?", "xt\\_%\\_"+e.sfx).Scan(&accounts) == nil && accounts == 0, "%s: %d accounts were created anyway", name, accounts)
		check(t, e.admin.QueryRow("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", injected).Scan(&schemas) == nil && schemas == 0, "%s: a user name was injected into the SQL", name)
	}

	// The image creates MYSQL_DATABASE before it runs the init scripts.
	e.exec(t, "CREATE DATABASE `"+db+"`", "CREATE DATABASE `"+lookalike+"`", "CREATE TABLE `"+lookalike+"`.t (id INT PRIMARY KEY)")
	// Twice: the script must be idempotent (it also rotates passwords).
	for i := range 2 {
		if out, ok := e.source(t, env); !ok {
			t.Fatalf("run %d failed:\n%s", i+1, out)
		}
	}
	conns := map[string]*sql.DB{"app": e.connect(t, appUser, appPass, db), "migrate": e.connect(t, migUser, migPass, db)}
	var body string
	for _, step := range []struct {
		who     string
		allow   bool
		queries []string
	}{
		{"app", false, []string{"CREATE TABLE posts (id INT PRIMARY KEY)"}},
		{"migrate", true, []string{"CREATE TABLE posts (id INT PRIMARY KEY, body TEXT)", "ALTER TABLE posts ADD COLUMN created_at TIMESTAMP NULL",
			"CREATE INDEX posts_created ON posts (created_at)", "CREATE TABLE images (id INT PRIMARY KEY, post_id INT, FOREIGN KEY (post_id) REFERENCES posts (id))"}},
		{"app", true, []string{"INSERT INTO posts (id, body) VALUES (1, 'hello')", "UPDATE posts SET body = 'hi' WHERE id = 1",
			"SELECT body FROM posts WHERE id = 1", "DELETE FROM posts WHERE id = 1"}},
		{"app", false, []string{"ALTER TABLE posts ADD COLUMN x INT", "CREATE INDEX posts_body ON posts (id, created_at)", "DROP TABLE images",
			"TRUNCATE TABLE posts", "GRANT SELECT ON `" + db + "`.* TO '" + migUser + "'@'%'", "CREATE DATABASE `" + db + "_x`",
			"SELECT * FROM `" + lookalike + "`.t", "SELECT user FROM mysql.user"}},
		{"migrate", false, []string{"SELECT * FROM `" + lookalike + "`.t", "CREATE TABLE `" + lookalike + "`.u (id INT)", "CREATE DATABASE `" + db + "_x`",
			"SELECT user FROM mysql.user", "CREATE USER 'xt_evil_" + e.sfx + "'@'%'"}},
		{"migrate", true, []string{"DROP TABLE images"}},
	} {
		for _, q := range step.queries {
			var err error
			if strings.HasPrefix(q, "SELECT body") {
				err = conns[step.who].QueryRow(q).Scan(&body)
				check(t, err != nil || body == "hi", "%s: %s = %q, want the updated row", step.who, q, body)
			} else {
				_, err = conns[step.who].Exec(q)
			}
			check(t, (err == nil) == step.allow, "%s: %s: allowed %v, want %v (%v)", step.who, q, err == nil, step.allow, err)
		}
	}
}
