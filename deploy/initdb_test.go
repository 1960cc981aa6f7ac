package deploy

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

const initScript = "mysql/initdb.d/10-extagram-users.sh"

// initdbEnv is what the test needs to run the init script against a real
// server: the server (EXTAGRAM_TEST_MYSQL_DSN, with rights to create
// databases and users, as the Makefile sets it) and a MySQL client.
type initdbEnv struct {
	root   *mysql.Config
	admin  *sql.DB
	client string
	cnf    string // option file with root's password
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
	var e initdbEnv
	for _, name := range []string{"mysql", "mariadb"} {
		if p, err := exec.LookPath(name); err == nil {
			e.client = p
			break
		}
	}
	if e.client == "" {
		skipOrFail(t, "no mysql or mariadb client found")
	}
	root, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("EXTAGRAM_TEST_MYSQL_DSN: %v", err)
	}
	if root.Net != "tcp" {
		skipOrFail(t, "EXTAGRAM_TEST_MYSQL_DSN must use tcp(host:port)")
	}
	root.DBName = ""
	e.root = root
	e.admin, err = sql.Open("mysql", root.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.admin.Close() })
	if err := e.admin.Ping(); err != nil {
		skipOrFail(t, "MySQL at %s: %v", root.Addr, err)
	}
	e.cnf = filepath.Join(t.TempDir(), "root.cnf")
	cnf := "[client]\nuser=\"" + optionString(root.User) + "\"\n"
	if root.Passwd != "" {
		cnf += "password=\"" + optionString(root.Passwd) + "\"\n"
	}
	if err := os.WriteFile(e.cnf, []byte(cnf), 0o600); err != nil {
		t.Fatal(err)
	}
	return &e
}

func optionString(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// source runs the init script the way the mysql image's entrypoint does
// for a non-executable .sh file: sourced by bash running with set -eo
// pipefail, with docker_process_sql defined (here: the client against the
// test server, as root). It returns the output and whether the entrypoint
// carried on after the script.
func (e *initdbEnv) source(t *testing.T, env map[string]string) (string, error) {
	t.Helper()
	script, err := filepath.Abs(initScript)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(e.root.Addr, ":")
	wrapper := `set -eo pipefail
docker_process_sql() {
	"$TEST_CLIENT" --defaults-extra-file="$TEST_CNF" --protocol=tcp -h"$TEST_HOST" -P"$TEST_PORT" "$@"
}
. "$TEST_SCRIPT"
# The script's options must not leak: the entrypoint reads unset variables.
echo "entrypoint goes on${SOME_UNSET_VARIABLE}"
`
	cmd := exec.Command("bash", "-c", wrapper)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"TEST_CLIENT=" + e.client, "TEST_CNF=" + e.cnf, "TEST_HOST=" + host, "TEST_PORT=" + port,
		"TEST_SCRIPT=" + script,
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if err == nil && !strings.Contains(out.String(), "entrypoint goes on") {
		err = errors.New("the entrypoint stopped after the script")
	}
	return out.String(), err
}

func randomSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestMySQLInitScriptGrantsLeastPrivilege runs S7's init script against a
// real server and checks what each account can do: the services' account
// reads and writes rows and nothing else, the migrate account also changes
// the schema, and neither reaches another database, not even one whose name
// matches with '_' taken as a GRANT wildcard.
func TestMySQLInitScriptGrantsLeastPrivilege(t *testing.T) {
	e := newInitdbEnv(t)
	sfx := randomSuffix(t)
	db := "xt_initdb_" + sfx
	lookalike := "xtXinitdbX" + sfx // matches xt_initdb_... if _ were a wildcard
	appUser, migUser := "xt_app_"+sfx, "xt_mig_"+sfx
	// Quotes, backslashes and a dollar: the script must escape, not break.
	appPass, migPass := `app'pw"\`+sfx+`$HOME`, `mig\'pw`+sfx

	admin := func(q string) {
		t.Helper()
		if _, err := e.admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		for _, q := range []string{
			"DROP DATABASE IF EXISTS `" + db + "`",
			"DROP DATABASE IF EXISTS `" + lookalike + "`",
			"DROP USER IF EXISTS '" + appUser + "'@'%'",
			"DROP USER IF EXISTS '" + migUser + "'@'%'",
		} {
			if _, err := e.admin.Exec(q); err != nil {
				t.Errorf("cleanup: %s: %v", q, err)
			}
		}
	})
	// The image creates MYSQL_DATABASE before it runs the init scripts.
	admin("CREATE DATABASE `" + db + "`")
	admin("CREATE DATABASE `" + lookalike + "`")
	admin("CREATE TABLE `" + lookalike + "`.t (id INT PRIMARY KEY)")

	env := map[string]string{
		"MYSQL_DATABASE":            db,
		"EXTAGRAM_DB_USER":          appUser,
		"EXTAGRAM_DB_PASSWORD":      appPass,
		"EXTAGRAM_MIGRATE_USER":     migUser,
		"EXTAGRAM_MIGRATE_PASSWORD": migPass,
	}
	// Twice: the script must be idempotent (it also rotates passwords).
	for i := 0; i < 2; i++ {
		if out, err := e.source(t, env); err != nil {
			t.Fatalf("run %d: %v\n%s", i+1, err, out)
		}
	}

	connect := func(user, pass, dbName string) *sql.DB {
		t.Helper()
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, pass, "tcp", e.root.Addr, dbName
		conn, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if err := conn.Ping(); err != nil {
			t.Fatalf("%s cannot log in with the password from the environment: %v", user, err)
		}
		return conn
	}
	app := connect(appUser, appPass, db)
	mig := connect(migUser, migPass, db)

	mustExec := func(who string, conn *sql.DB, q string) {
		t.Helper()
		if _, err := conn.Exec(q); err != nil {
			t.Errorf("%s: %s: %v", who, q, err)
		}
	}
	mustDeny := func(who string, conn *sql.DB, q string) {
		t.Helper()
		if _, err := conn.Exec(q); err == nil {
			t.Errorf("%s may %s", who, q)
		}
	}

	mustDeny("app", app, "CREATE TABLE posts (id INT PRIMARY KEY)")
	mustExec("migrate", mig, "CREATE TABLE posts (id INT PRIMARY KEY, body TEXT)")
	mustExec("migrate", mig, "ALTER TABLE posts ADD COLUMN created_at TIMESTAMP NULL")
	mustExec("migrate", mig, "CREATE INDEX posts_created ON posts (created_at)")
	mustExec("migrate", mig, "CREATE TABLE images (id INT PRIMARY KEY, post_id INT, FOREIGN KEY (post_id) REFERENCES posts (id))")

	mustExec("app", app, "INSERT INTO posts (id, body) VALUES (1, 'hello')")
	mustExec("app", app, "UPDATE posts SET body = 'hi' WHERE id = 1")
	var body string
	if err := app.QueryRow("SELECT body FROM posts WHERE id = 1").Scan(&body); err != nil || body != "hi" {
		t.Errorf("app: SELECT = %q, %v", body, err)
	}
	mustExec("app", app, "DELETE FROM posts WHERE id = 1")
	for _, q := range []string{
		"ALTER TABLE posts ADD COLUMN x INT",
		"CREATE INDEX posts_body ON posts (id, created_at)",
		"DROP TABLE images",
		"TRUNCATE TABLE posts",
		"GRANT SELECT ON `" + db + "`.* TO '" + migUser + "'@'%'",
		"CREATE DATABASE `" + db + "_x`",
		"SELECT * FROM `" + lookalike + "`.t",
		"SELECT user FROM mysql.user",
	} {
		mustDeny("app", app, q)
	}
	for _, q := range []string{
		"SELECT * FROM `" + lookalike + "`.t",
		"CREATE TABLE `" + lookalike + "`.u (id INT)",
		"CREATE DATABASE `" + db + "_x`",
		"SELECT user FROM mysql.user",
		"CREATE USER 'xt_evil_" + sfx + "'@'%'",
	} {
		mustDeny("migrate", mig, q)
	}
	mustExec("migrate", mig, "DROP TABLE images")
}

func TestMySQLInitScriptRefusesBadInput(t *testing.T) {
	e := newInitdbEnv(t)
	sfx := randomSuffix(t)
	base := map[string]string{
		"MYSQL_DATABASE":            "xt_initdb_" + sfx,
		"EXTAGRAM_DB_USER":          "xt_app_" + sfx,
		"EXTAGRAM_DB_PASSWORD":      "p",
		"EXTAGRAM_MIGRATE_USER":     "xt_mig_" + sfx,
		"EXTAGRAM_MIGRATE_PASSWORD": "p",
	}
	t.Cleanup(func() {
		for _, q := range []string{
			"DROP DATABASE IF EXISTS `xt_injected_" + sfx + "`",
			"DROP USER IF EXISTS 'x'@'%'",
			"DROP USER IF EXISTS 'xt_app_" + sfx + "'@'%'",
			"DROP USER IF EXISTS 'xt_mig_" + sfx + "'@'%'",
		} {
			if _, err := e.admin.Exec(q); err != nil {
				t.Errorf("cleanup: %s: %v", q, err)
			}
		}
	})
	for name, change := range map[string][2]string{
		"no app password":     {"EXTAGRAM_DB_PASSWORD", ""},
		"no migrate password": {"EXTAGRAM_MIGRATE_PASSWORD", ""},
		// Were it injected, this would only create a database, which the
		// test would then find (never a destructive payload: a regression
		// must not damage the server).
		"quote in user name": {"EXTAGRAM_DB_USER", "x'@'%'; CREATE DATABASE `xt_injected_" + sfx + "`; -- "},
		"dot in database":    {"MYSQL_DATABASE", "a.b"},
	} {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			if change[1] == "" {
				delete(env, change[0])
			} else {
				env[change[0]] = change[1]
			}
			out, err := e.source(t, env)
			if err == nil {
				t.Fatalf("the script accepted it:\n%s", out)
			}
			var n int
			if err := e.admin.QueryRow("SELECT COUNT(*) FROM mysql.user WHERE user LIKE ?", "xt\\_%\\_"+sfx).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("%d accounts were created anyway", n)
			}
			var injected int
			if err := e.admin.QueryRow("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", "xt_injected_"+sfx).Scan(&injected); err != nil {
				t.Fatal(err)
			}
			if injected != 0 {
				t.Error("a user name was injected into the SQL")
			}
		})
	}
}
