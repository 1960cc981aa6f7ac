package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The seed's servers and the subcommand each one runs. S6 (static assets)
// has no container: they are embedded in the edge.
var seedRoles = map[string]string{
	"s1":      "edge",
	"s2":      "feed",
	"s3":      "feed",
	"s4":      "upload",
	"s5":      "blob",
	"migrate": "migrate",
}

const (
	netName   = "extagram-net"
	dbService = "s7"
)

// goServices returns the services that run the extagram image, by name.
func goServices(c *composeFile) map[string]*composeService {
	out := map[string]*composeService{}
	for name, s := range c.Services {
		if s.role() != "" {
			out[name] = s
		}
	}
	return out
}

// longRunning reports whether a service is meant to stay up (everything
// but the one-shot migrate).
func longRunning(s *composeService) bool { return s.role() != "migrate" }

func TestComposeServicesAreTheSeedServers(t *testing.T) {
	c, raw := loadCompose(t)
	for name, role := range seedRoles {
		s, ok := c.Services[name]
		if !ok {
			t.Errorf("service %s (%s) is missing", name, role)
			continue
		}
		if got := s.role(); got != role {
			t.Errorf("service %s runs %q, want extagram %s", name, got, role)
		}
	}
	db, ok := c.Services[dbService]
	if !ok {
		t.Fatalf("service %s (MySQL) is missing", dbService)
	}
	if !strings.HasPrefix(db.Image, "mysql:8") {
		t.Errorf("s7 image = %q, want mysql:8.x", db.Image)
	}
	if _, ok := c.Services["s6"]; ok {
		t.Error("s6 exists, but the static assets are embedded in the edge")
	}
	for name := range c.Services {
		if _, known := seedRoles[name]; !known && name != dbService {
			t.Errorf("service %s is not one of the seed's servers", name)
		}
	}
	// Where S6 went must be written down for a reader of the seed: a
	// comment naming S6 that says (within three lines) "embedded".
	lines := strings.Split(raw, "\n")
	explained := false
	for i, line := range lines {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") || !regexp.MustCompile(`\bS6\b`).MatchString(line) {
			continue
		}
		if strings.Contains(strings.Join(lines[i:min(i+3, len(lines))], " "), "embedded") {
			explained = true
		}
	}
	if !explained {
		t.Error("no comment says that S6's static assets are embedded in the edge")
	}
	if regexp.MustCompile(`(?m)^version:`).MatchString(raw) {
		t.Error("the Compose specification has no top-level version key")
	}
}

func TestComposeOneImageForEveryRole(t *testing.T) {
	c, _ := loadCompose(t)
	var image string
	for name, s := range goServices(c) {
		if image == "" {
			image = s.Image
		}
		if s.Image == "" || s.Image != image {
			t.Errorf("%s: image %q, want the one extagram image %q", name, s.Image, image)
		}
		if s.Build == nil || filepath.Clean(s.Build.Context) != "." {
			t.Errorf("%s: want build context . (the repository's Dockerfile)", name)
			continue
		}
		if s.Build.Dockerfile != "" && s.Build.Dockerfile != "Dockerfile" {
			t.Errorf("%s: builds %s, want the Dockerfile", name, s.Build.Dockerfile)
		}
		for _, arg := range []string{"VERSION", "COMMIT"} {
			if _, ok := s.Build.Args[arg]; !ok {
				t.Errorf("%s: build arg %s is not passed", name, arg)
			}
		}
		if len(s.Entrypoint) > 0 {
			t.Errorf("%s: overrides the image's entrypoint", name)
		}
	}
}

func TestComposeEveryServiceOnExtagramNet(t *testing.T) {
	c, _ := loadCompose(t)
	n, ok := c.Networks[netName]
	if !ok {
		t.Fatalf("network %s is not declared", netName)
	}
	if n != nil && n.Name != "" && n.Name != netName {
		t.Errorf("network %s is named %q", netName, n.Name)
	}
	for name, s := range c.Services {
		if _, ok := s.Networks[netName]; !ok {
			t.Errorf("%s is not on %s", name, netName)
		}
	}
}

// The edge reaches each service through dns:///NAME:PORT, where NAME is a
// network alias: Docker's DNS answers with the address of every container
// that has it, so replicas added with --scale are found.
func TestComposeEdgeTargetsReachEveryReplica(t *testing.T) {
	c, _ := loadCompose(t)
	edge := c.Services["s1"]
	if edge == nil {
		t.Fatal("no s1")
	}
	for _, tc := range []struct {
		flag, role  string
		minReplicas int
	}{
		{"feed-target", "feed", 2},
		{"upload-target", "upload", 1},
		{"blob-target", "blob", 1},
	} {
		t.Run(tc.role, func(t *testing.T) {
			target, ok := edge.flag(tc.flag)
			if !ok {
				t.Fatalf("s1 has no --%s", tc.flag)
			}
			alias, port := parseDNSTarget(t, target)
			var members []string
			for name, s := range c.Services {
				if slices.Contains(s.Networks[netName].Aliases, alias) || name == alias {
					members = append(members, name)
				}
			}
			slices.Sort(members)
			var want []string
			for name, s := range c.Services {
				if s.role() == tc.role {
					want = append(want, name)
				}
			}
			slices.Sort(want)
			if !slices.Equal(members, want) {
				t.Errorf("%s resolves to %v, want every %s service %v", alias, members, tc.role, want)
			}
			if len(members) < tc.minReplicas {
				t.Errorf("%s has %d replicas, want at least %d", alias, len(members), tc.minReplicas)
			}
			for _, name := range members {
				s := c.Services[name]
				addr, ok := s.flag("grpc-addr")
				if !ok {
					t.Errorf("%s has no --grpc-addr", name)
					continue
				}
				if p := addrPort(t, addr); p != port {
					t.Errorf("%s listens on %d, but the edge dials %s", name, p, target)
				}
				// Connections end now and then, so clients re-resolve and
				// spread over replicas that appeared since.
				if _, ok := s.flag("max-connection-age"); !ok {
					t.Errorf("%s has no --max-connection-age: the edge would never see new replicas", name)
				}
				// --scale needs neither a fixed name nor a host port.
				if s.ContainerName != "" {
					t.Errorf("%s has container_name: it could not be scaled", name)
				}
				if len(s.Ports) > 0 {
					t.Errorf("%s publishes ports: it could not be scaled", name)
				}
			}
		})
	}
	// S2 and S3 by name: the seed's two balanced backends.
	for _, name := range []string{"s2", "s3"} {
		target, _ := edge.flag("feed-target")
		alias, _ := parseDNSTarget(t, target)
		if s := c.Services[name]; s == nil || !slices.Contains(s.Networks[netName].Aliases, alias) {
			t.Errorf("%s does not answer to the feed alias %q", name, alias)
		}
	}
}

func TestComposeUploadsVolumeShared(t *testing.T) {
	c, _ := loadCompose(t)
	volumeAt := func(name string) volumeMount {
		s := c.Services[name]
		if s == nil {
			t.Fatalf("no %s", name)
		}
		dir, ok := s.flag("uploads-dir")
		if !ok {
			t.Fatalf("%s has no --uploads-dir", name)
		}
		for _, m := range s.Volumes {
			if filepath.Clean(m.Target) == filepath.Clean(dir) {
				return m
			}
		}
		t.Fatalf("%s: nothing is mounted at its --uploads-dir %s", name, dir)
		return volumeMount{}
	}
	up, blob := volumeAt("s4"), volumeAt("s5")
	if up.Type != "volume" || up.Source == "" {
		t.Errorf("s4 uploads: want a named volume, got %+v", up)
	}
	if up.Source != blob.Source {
		t.Errorf("s4 mounts %q and s5 mounts %q: they must share one uploads volume", up.Source, blob.Source)
	}
	if _, ok := c.Volumes[up.Source]; !ok {
		t.Errorf("volume %q is not declared", up.Source)
	}
	// s4 writes new files; s5 rewrites missing or damaged ones from S7.
	if up.ReadOnly || blob.ReadOnly {
		t.Error("s4 and s5 both need the uploads volume read-write")
	}
	for name, s := range c.Services {
		if name == "s4" || name == "s5" {
			continue
		}
		for _, m := range s.Volumes {
			if m.Source == up.Source {
				t.Errorf("%s mounts the uploads volume too", name)
			}
		}
	}
}

func TestComposeHealthchecks(t *testing.T) {
	c, _ := loadCompose(t)
	for name, s := range c.Services {
		if !longRunning(s) {
			if s.Healthcheck != nil && !s.Healthcheck.Disable {
				t.Errorf("%s is one-shot and needs no health check", name)
			}
			continue
		}
		h := s.Healthcheck
		if h == nil || h.Disable || len(h.Test) < 2 {
			t.Errorf("%s has no health check", name)
			continue
		}
		switch s.role() {
		case "":
			if h.Test[0] != "CMD" && h.Test[0] != "CMD-SHELL" {
				t.Errorf("%s: health check %q", name, h.Test)
			}
		case "edge":
			want := []string{"CMD", "/extagram", "health"}
			if !slices.Equal(h.Test[:min(3, len(h.Test))], want) {
				t.Errorf("%s: health check %q, want %q...", name, h.Test, want)
				continue
			}
			u, ok := flagValue(h.Test[3:], "url")
			if !ok {
				t.Errorf("%s: health check has no --url", name)
				continue
			}
			https, _ := s.flag("https-addr")
			if !strings.HasPrefix(u, "https://") || !strings.Contains(u, ":"+strconv.Itoa(addrPort(t, https))+"/") {
				t.Errorf("%s: health check %s does not reach --https-addr %s", name, u, https)
			}
			if !slices.Contains(h.Test, "--insecure") && !slices.Contains(h.Test, "--insecure=true") {
				t.Errorf("%s: health check must skip verification of the self-signed certificate", name)
			}
		default:
			want := []string{"CMD", "/extagram", "health"}
			if !slices.Equal(h.Test[:min(3, len(h.Test))], want) {
				t.Errorf("%s: health check %q, want %q...", name, h.Test, want)
				continue
			}
			addr, ok := flagValue(h.Test[3:], "grpc-addr")
			listen, _ := s.flag("grpc-addr")
			if !ok || addrPort(t, addr) != addrPort(t, listen) {
				t.Errorf("%s: health check %q does not reach --grpc-addr %s", name, h.Test, listen)
			}
		}
	}
	if db := c.Services[dbService]; db != nil && db.Healthcheck != nil {
		if !strings.Contains(strings.Join(db.Healthcheck.Test, " "), "mysqladmin ping") {
			t.Errorf("s7: health check %q, want mysqladmin ping", db.Healthcheck.Test)
		}
	}
}

func TestComposeStartOrder(t *testing.T) {
	c, _ := loadCompose(t)
	want := map[string]map[string]string{
		"s1":      {"s2": "service_healthy", "s3": "service_healthy", "s4": "service_healthy", "s5": "service_healthy"},
		"s2":      {dbService: "service_healthy", "migrate": "service_completed_successfully"},
		"s3":      {dbService: "service_healthy", "migrate": "service_completed_successfully"},
		"s4":      {dbService: "service_healthy", "migrate": "service_completed_successfully"},
		"s5":      {dbService: "service_healthy", "migrate": "service_completed_successfully"},
		"migrate": {dbService: "service_healthy"},
		dbService: {},
	}
	for name, deps := range want {
		s := c.Services[name]
		if s == nil {
			t.Errorf("no %s", name)
			continue
		}
		for dep, cond := range deps {
			if got := s.DependsOn[dep].Condition; got != cond {
				t.Errorf("%s depends on %s with %q, want %q", name, dep, got, cond)
			}
		}
		for dep, d := range s.DependsOn {
			target := c.Services[dep]
			if target == nil {
				t.Errorf("%s depends on a missing service %s", name, dep)
				continue
			}
			switch d.Condition {
			case "service_healthy":
				if target.Healthcheck == nil || target.Healthcheck.Disable {
					t.Errorf("%s waits for %s to be healthy, but it has no health check", name, dep)
				}
			case "service_completed_successfully":
				if longRunning(target) {
					t.Errorf("%s waits for the long-running %s to complete", name, dep)
				}
			default:
				t.Errorf("%s depends on %s with %q: wait for health or completion", name, dep, d.Condition)
			}
		}
	}
}

func TestComposeHardening(t *testing.T) {
	c, _ := loadCompose(t)
	for name, s := range c.Services {
		if !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("%s: want cap_drop: [ALL]", name)
		}
		if len(s.CapAdd) > 0 {
			t.Errorf("%s: adds capabilities %v", name, s.CapAdd)
		}
		if !slices.Contains(s.SecurityOpt, "no-new-privileges:true") && !slices.Contains(s.SecurityOpt, "no-new-privileges") {
			t.Errorf("%s: want security_opt no-new-privileges:true", name)
		}
		if s.Privileged {
			t.Errorf("%s is privileged", name)
		}
		if u, _, _ := strings.Cut(s.User, ":"); u == "0" || u == "root" {
			t.Errorf("%s runs as root", name)
		}
		if len(s.EnvFile) > 0 {
			t.Errorf("%s: env_file would hand every variable of the file to the container; name each one", name)
		}
		if longRunning(s) {
			if s.Restart != "unless-stopped" {
				t.Errorf("%s: restart %q, want unless-stopped", name, s.Restart)
			}
		} else if s.Restart != "no" && s.Restart != "on-failure" {
			t.Errorf("%s is one-shot: restart %q, want \"no\"", name, s.Restart)
		}
	}
	for name, s := range goServices(c) {
		if !s.ReadOnly {
			t.Errorf("%s: want read_only: true", name)
		}
		if !slices.ContainsFunc(s.Tmpfs, func(m string) bool { return strings.HasPrefix(m, "/tmp") }) {
			t.Errorf("%s: want a tmpfs at /tmp", name)
		}
		for _, f := range []string{"data-dir", "uploads-dir"} {
			if dir, ok := s.flag(f); ok && !s.writable(dir) {
				t.Errorf("%s: --%s %s is on the read-only root file system", name, f, dir)
			}
		}
	}
}

func TestComposePorts(t *testing.T) {
	c, _ := loadCompose(t)
	for name, s := range c.Services {
		if name != "s1" && len(s.Ports) > 0 {
			t.Errorf("%s publishes %v: only the edge faces the browser", name, s.Ports)
		}
	}
	edge := c.Services["s1"]
	if edge == nil {
		t.Fatal("no s1")
	}
	published := map[string]string{}
	for _, p := range edge.Ports {
		published[p.Published] = p.Target
	}
	https, _ := edge.flag("https-addr")
	http, _ := edge.flag("http-addr")
	if got, want := published["443"], strconv.Itoa(addrPort(t, https)); got != want {
		t.Errorf("host port 443 goes to %q, want --https-addr's %s", got, want)
	}
	if got, want := published["80"], strconv.Itoa(addrPort(t, http)); got != want {
		t.Errorf("host port 80 goes to %q, want --http-addr's %s", got, want)
	}
	if rp, _ := edge.flag("redirect-port"); rp != "443" {
		t.Errorf("--redirect-port %q, want 443 (the published HTTPS port)", rp)
	}
	if len(edge.Ports) != 2 {
		t.Errorf("s1 publishes %v, want exactly 443 and 80", edge.Ports)
	}
}

// dsnPattern is go-sql-driver/mysql's user:password@tcp(host:port)/dbname.
var dsnPattern = regexp.MustCompile(`^([^:@]+):([^@]+)@tcp\(([^:()]+):([0-9]+)\)/([A-Za-z0-9_]+)(\?.*)?$`)

// splitDSN splits a DSN whose parts may be ${...} references (which may
// themselves contain ':' and '@').
func splitDSN(t *testing.T, dsn string) (user, password, host, port, db string) {
	t.Helper()
	var saved []string
	masked := regexp.MustCompile(`\$\{[^}]*\}`).ReplaceAllStringFunc(dsn, func(m string) string {
		saved = append(saved, m)
		return "\x00" + strconv.Itoa(len(saved)-1) + "\x00"
	})
	m := dsnPattern.FindStringSubmatch(masked)
	if m == nil {
		t.Fatalf("DSN %q is not user:password@tcp(host:port)/db", dsn)
	}
	unmask := func(s string) string {
		return regexp.MustCompile("\x00([0-9]+)\x00").ReplaceAllStringFunc(s, func(p string) string {
			i, _ := strconv.Atoi(strings.Trim(p, "\x00"))
			return saved[i]
		})
	}
	return unmask(m[1]), unmask(m[2]), m[3], m[4], m[5]
}

// requiredSecretRef reports whether v is exactly one required reference
// (${NAME:?message}) to a variable with a secret's name.
func requiredSecretRef(v string) bool {
	r := refs(v)
	return len(r) == 1 && r[0].required() && secretName.MatchString(r[0].Name) &&
		varRef.FindString(v) == v
}

func TestComposeNoLiteralSecrets(t *testing.T) {
	c, raw := loadCompose(t)
	for _, lit := range leakedLiterals {
		if strings.Contains(strings.ToLower(raw), lit) {
			t.Errorf("docker-compose.yml contains %q", lit)
		}
	}
	// Every reference to a secret variable is required: a default would
	// be a password written in the file.
	for _, r := range refs(stripComments(raw)) {
		if secretName.MatchString(r.Name) && !r.required() {
			t.Errorf("${%s%s%s}: a secret must be a required ${%s:?...} reference", r.Name, r.Op, r.Arg, r.Name)
		}
	}
	for name, s := range c.Services {
		for k, v := range s.Environment {
			switch {
			case strings.Contains(strings.ToUpper(k), "DSN"):
				_, pw, _, _, _ := splitDSN(t, v)
				if !requiredSecretRef(pw) {
					t.Errorf("%s: %s has the password %q, want a required ${...:?...} reference", name, k, pw)
				}
			case secretName.MatchString(k):
				if !requiredSecretRef(v) {
					t.Errorf("%s: %s = %q, want a required ${...:?...} reference", name, k, v)
				}
			}
		}
		args := append(slices.Clone(s.Command), s.Entrypoint...)
		if s.Healthcheck != nil {
			args = append(args, s.Healthcheck.Test...)
		}
		for _, a := range args {
			if strings.Contains(a, "@tcp(") || strings.Contains(a, "mysql-dsn") {
				t.Errorf("%s: a DSN on the command line (%q) shows in ps and logs; use EXTAGRAM_MYSQL_DSN", name, a)
			}
			if regexp.MustCompile(`(?i)(^-p.|--password|passw)`).MatchString(a) {
				t.Errorf("%s: a password on the command line: %q", name, a)
			}
		}
		if b := s.Build.argsString(); secretName.MatchString(b) {
			t.Errorf("%s: a build argument carries a secret into the image: %s", name, b)
		}
	}
}

func (b *composeBuild) argsString() string {
	if b == nil {
		return ""
	}
	var keys []string
	for k := range b.Args {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, " ")
}

// The services log in with the data-only account and migrate with the DDL
// account: the same names and passwords that s7's init script is given.
func TestComposeDatabaseAccounts(t *testing.T) {
	c, _ := loadCompose(t)
	db := c.Services[dbService]
	if db == nil {
		t.Fatal("no s7")
	}
	dbName := db.Environment["MYSQL_DATABASE"]
	check := func(name, userVar, passVar string) {
		s := c.Services[name]
		if s == nil {
			t.Errorf("no %s", name)
			return
		}
		dsn, ok := s.Environment["EXTAGRAM_MYSQL_DSN"]
		if !ok {
			t.Errorf("%s: no EXTAGRAM_MYSQL_DSN", name)
			return
		}
		user, pw, host, port, database := splitDSN(t, dsn)
		if user != db.Environment[userVar] {
			t.Errorf("%s logs in as %q, but s7 creates %s=%q", name, user, userVar, db.Environment[userVar])
		}
		if pw != db.Environment[passVar] {
			t.Errorf("%s's password %q is not s7's %s %q", name, pw, passVar, db.Environment[passVar])
		}
		if host != dbService || port != "3306" || database != dbName {
			t.Errorf("%s connects to %s:%s/%s, want %s:3306/%s", name, host, port, database, dbService, dbName)
		}
	}
	for name, s := range goServices(c) {
		switch s.role() {
		case "feed", "upload", "blob":
			check(name, "EXTAGRAM_DB_USER", "EXTAGRAM_DB_PASSWORD")
			if v, _ := s.flag("auto-migrate"); v != "false" {
				t.Errorf("%s: --auto-migrate=%q; with the data-only account it must be false", name, v)
			}
		case "migrate":
			check(name, "EXTAGRAM_MIGRATE_USER", "EXTAGRAM_MIGRATE_PASSWORD")
		case "edge":
			if _, ok := s.Environment["EXTAGRAM_MYSQL_DSN"]; ok {
				t.Errorf("%s: the edge talks only gRPC and gets no database credentials", name)
			}
		}
	}
	if db.Environment["EXTAGRAM_DB_PASSWORD"] == db.Environment["EXTAGRAM_MIGRATE_PASSWORD"] {
		t.Error("the data and migrate accounts share one password variable")
	}

	// S7's data lives in a named volume; the init script is mounted read-only
	// and is a shell script, since only a script can read the environment.
	var data, initdb *volumeMount
	for i, m := range db.Volumes {
		switch m.Target {
		case "/var/lib/mysql":
			data = &db.Volumes[i]
		case "/docker-entrypoint-initdb.d":
			initdb = &db.Volumes[i]
		}
	}
	if data == nil || data.Type != "volume" {
		t.Error("s7: /var/lib/mysql is not a named volume")
	}
	if initdb == nil || !initdb.ReadOnly {
		t.Fatal("s7: want the init scripts mounted read-only at /docker-entrypoint-initdb.d")
	}
	dir := filepath.Join(repoRoot, filepath.FromSlash(initdb.Source))
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var scripts int
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".sh":
			scripts++
			body := string(readFile(t, filepath.Join(dir, e.Name())))
			for _, m := range regexp.MustCompile(`\$\{?((?:EXTAGRAM|MYSQL)_[A-Z0-9_]+)`).FindAllStringSubmatch(body, -1) {
				if _, ok := db.Environment[m[1]]; !ok {
					t.Errorf("%s reads %s, which s7 is not given", e.Name(), m[1])
				}
			}
		case ".sql", ".gz", ".xz", ".zst":
			t.Errorf("%s: SQL files cannot read passwords from the environment", e.Name())
		}
	}
	if scripts == 0 {
		t.Errorf("%s has no .sh init script", dir)
	}
}

func TestEnvExampleDocumentsEveryVariable(t *testing.T) {
	_, raw := loadCompose(t)
	env := parseEnvFile(t, readFile(t, repoRoot+"/.env.example"))
	used := map[string]ref{}
	for _, r := range refs(stripComments(raw)) {
		used[r.Name] = r
	}
	for name, r := range used {
		line, ok := env[name]
		if !ok {
			t.Errorf(".env.example does not document %s", name)
			continue
		}
		if r.required() && (line.Commented || line.Value == "") {
			t.Errorf(".env.example: %s is required, so it must be set (to a placeholder)", name)
		}
	}
	for name, line := range env {
		if _, ok := used[name]; !ok && !strings.HasPrefix(name, "COMPOSE_") {
			t.Errorf(".env.example documents %s, which docker-compose.yml does not use", name)
		}
		if secretName.MatchString(name) && !strings.Contains(line.Value, "change-me") {
			t.Errorf(".env.example: %s = %q, want a change-me placeholder, never a real secret", name, line.Value)
		}
	}
	for _, lit := range leakedLiterals {
		if strings.Contains(strings.ToLower(string(readFile(t, repoRoot+"/.env.example"))), lit) {
			t.Errorf(".env.example contains %q", lit)
		}
	}
}

// The init script interpolates passwords into SQL only through its
// escaping helper, never as a literal.
func TestNoLiteralSecretsInDeployFiles(t *testing.T) {
	literal := regexp.MustCompile(`(?i)(identified\s+by\s+'[^'$]|password\s*[:=]\s*["']?[^\s"'$<{(%]|\w+:[^\s@${]+@tcp\()`)
	var files []string
	for _, pattern := range []string{"../Dockerfile", "../docker-compose.yml", "mysql/initdb.d/*", "kubernetes/*.yaml", "*.sh"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		if strings.HasSuffix(f, ".local.yaml") {
			continue // real secrets made from secret.example.yaml, ignored by git
		}
		body := string(readFile(t, f))
		for _, lit := range leakedLiterals {
			if strings.Contains(strings.ToLower(body), lit) {
				t.Errorf("%s contains %q", f, lit)
			}
		}
		for i, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			// A reference is not a literal, whatever its name says.
			masked := regexp.MustCompile(`\$\{[^}]*\}`).ReplaceAllString(line, "${}")
			if literal.MatchString(masked) && !strings.Contains(line, "change-me") {
				t.Errorf("%s:%d looks like a literal password: %s", f, i+1, strings.TrimSpace(line))
			}
		}
	}
}
