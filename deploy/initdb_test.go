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

	"github.com/extagram/extagram/internal/testutil"
	"github.com/go-sql-driver/mysql"
)

// TestMySQLInitScript runs S7's init script against the server of EXTAGRAM_TEST_MYSQL_DSN (an account that
// creates databases and users): the services' account reads and writes rows and nothing else, the migrate
// account also changes the schema, and neither reaches another database, not even one whose name matches
// with '_' taken as a GRANT wildcard. Bad input is refused, and creates nothing.
func TestMySQLInitScript(t *testing.T) {
	t.Parallel()
	var client string
	for _, name := range []string{"mariadb", "mysql"} {
		if p, err := exec.LookPath(name); err == nil {
			client = p
		}
	}
	_, errBash := exec.LookPath("bash")
	root, err := mysql.ParseDSN(os.Getenv("EXTAGRAM_TEST_MYSQL_DSN"))
	if client == "" || errBash != nil || err != nil || root.Net != "tcp" {
		testutil.NeedTool(t, "want bash, a mysql or mariadb client (%q), and EXTAGRAM_TEST_MYSQL_DSN with tcp(host:port): %v", client, err)
	}
	root.DBName = ""
	admin := must(sql.Open("mysql", root.FormatDSN()))
	t.Cleanup(func() { admin.Close() })
	if err := admin.Ping(); err != nil {
		testutil.NeedTool(t, "MySQL at %s: %v", root.Addr, err)
	}
	adminExec := func(queries ...string) {
		for _, q := range queries {
			_, err := admin.Exec(q)
			check(t, err == nil, "%s: %v", q, err)
		}
	}
	// source runs the script as the mysql image's entrypoint does a non-executable .sh file: sourced by bash
	// with set -eo pipefail and docker_process_sql defined (here: the client as the administrator). It
	// reports whether the script succeeded and the entrypoint carried on after it.
	host, port, _ := strings.Cut(root.Addr, ":")
	source := func(env map[string]string) (string, bool) {
		cmd := exec.Command("bash", "-c", `set -eo pipefail
docker_process_sql() {
	MYSQL_PWD="$TEST_PASSWORD" "$TEST_CLIENT" --protocol=tcp -h"$TEST_HOST" -P"$TEST_PORT" -u"$TEST_USER" "$@"
}
. "$TEST_SCRIPT"
# The script's options must not leak: the entrypoint reads unset variables.
echo "entrypoint goes on${SOME_UNSET_VARIABLE}"
`)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TEST_CLIENT=" + client, "TEST_HOST=" + host, "TEST_PORT=" + port,
			"TEST_USER=" + root.User, "TEST_PASSWORD=" + root.Passwd, "TEST_SCRIPT=" + must(filepath.Abs("mysql/initdb.d/10-extagram-users.sh"))}
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		return string(out), err == nil && strings.Contains(string(out), "entrypoint goes on")
	}

	sfx := strings.ToLower(rand.Text()[:10])            // makes the test's names unique
	db, lookalike := "xt_initdb_"+sfx, "xtXinitdbX"+sfx // lookalike matches db if _ were a wildcard
	appUser, migUser, injected := "xt_app_"+sfx, "xt_mig_"+sfx, "xt_injected_"+sfx
	appPass, migPass := `app'pw"\`+sfx+`$HOME`, `mig\'pw`+sfx // the script must escape, not break
	t.Cleanup(func() {
		adminExec("DROP DATABASE IF EXISTS `"+db+"`", "DROP DATABASE IF EXISTS `"+lookalike+"`", "DROP DATABASE IF EXISTS `"+injected+"`",
			"DROP USER IF EXISTS '"+appUser+"'@'%'", "DROP USER IF EXISTS '"+migUser+"'@'%'", "DROP USER IF EXISTS 'x'@'%'")
	})
	env := map[string]string{"MYSQL_DATABASE": db, "EXTAGRAM_DB_USER": appUser, "EXTAGRAM_DB_PASSWORD": appPass,
		"EXTAGRAM_MIGRATE_USER": migUser, "EXTAGRAM_MIGRATE_PASSWORD": migPass}
	for name, change := range map[string][2]string{
		"no app password":     {"EXTAGRAM_DB_PASSWORD", ""},
		"no migrate password": {"EXTAGRAM_MIGRATE_PASSWORD", ""},
		// Were it injected, this would only create a database, which the test would then find.
		"quote in user name": {"EXTAGRAM_DB_USER", "x'@'%'; CREATE DATABASE `" + injected + "`; -- "},
		"dot in database":    {"MYSQL_DATABASE", "a.b"},
	} {
		bad := maps.Clone(env)
		if bad[change[0]] = change[1]; change[1] == "" {
			delete(bad, change[0])
		}
		if out, ok := source(bad); ok {
			t.Fatalf("%s: the script accepted it:\n%s", name, out)
		}
		var accounts, schemas int
		check(t, admin.QueryRow("SELECT COUNT(*) FROM mysql.user WHERE user LIKE ?", "xt\\_%\\_"+sfx).Scan(&accounts) == nil && accounts == 0, "%s: %d accounts were created anyway", name, accounts)
		check(t, admin.QueryRow("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", injected).Scan(&schemas) == nil && schemas == 0, "%s: a user name was injected into the SQL", name)
	}

	// The image creates MYSQL_DATABASE before it runs the init scripts.
	adminExec("CREATE DATABASE `"+db+"`", "CREATE DATABASE `"+lookalike+"`", "CREATE TABLE `"+lookalike+"`.t (id INT PRIMARY KEY)")
	for i := range 2 { // idempotent (it also rotates passwords)
		if out, ok := source(env); !ok {
			t.Fatalf("run %d failed:\n%s", i+1, out)
		}
	}
	conns := map[string]*sql.DB{}
	for who, login := range map[string][2]string{"app": {appUser, appPass}, "migrate": {migUser, migPass}} {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = login[0], login[1], "tcp", root.Addr, db
		conns[who] = must(sql.Open("mysql", cfg.FormatDSN()))
		t.Cleanup(func() { conns[who].Close() })
		if err := conns[who].Ping(); err != nil {
			t.Fatalf("%s cannot log in with the password from the environment: %v", login[0], err)
		}
	}
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
			"SELECT user FROM mysql.user", "CREATE USER 'xt_evil_" + sfx + "'@'%'"}},
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
