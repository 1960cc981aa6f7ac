package deploy

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/go-sql-driver/mysql"
)

const (
	envExample = repoRoot + "/.env.example"
	netName    = "extagram-net"
	dbService  = "s7"
)

// The seed's servers (S6 is embedded in the edge, S7 is MySQL) by the role each runs, and the one-shots.
var seedRoles = map[string]string{"s1": "edge", "s2": "feed", "s3": "feed", "s4": "upload", "s5": "blob", "migrate": "migrate", "certs": "certs"}

var grpcRoles = []string{"edge", "feed", "upload", "blob"} // the roles on the mesh

func oneShot(s types.ServiceConfig) bool { return role(s) == "migrate" || role(s) == "certs" }

// loadCompose loads docker-compose.yml as `docker compose --env-file ENVFILE config` does, env winning over
// the env file; it also returns the strings with a ${...} that interpolation met.
func loadCompose(envFile string, env map[string]string) (*types.Project, []string, error) {
	root := must(filepath.Abs(repoRoot))
	var templates, environ []string
	record := func(o *loader.Options) {
		if o.Interpolate != nil { // nil while the files are only read
			o.Interpolate.Substitute = func(s string, m template.Mapping) (string, error) {
				if len(template.ExtractVariables(map[string]any{"": s}, nil)) > 0 {
					templates = append(templates, s)
				}
				return template.Substitute(s, m)
			}
		}
	}
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithEnv(environ), cli.WithEnvFiles(envFile), cli.WithDotEnv,
		cli.WithResolvedPaths(true), cli.WithLoadOptions(record))
	if err != nil {
		return nil, nil, err
	}
	p, err := opts.LoadProject(context.Background())
	return p, templates, err
}

// composeModel is docker-compose.yml loaded with .env.example (p; obs with --profile observability), and
// with the profile and every variable it reads set to sentinel(NAME) (s): a value shows its variable.
type composeModel struct {
	p, obs, s *types.Project
	templates []string
	vars      map[string]template.Variable // every variable read, by name
}

func sentinel(name string) string { return "v-" + strings.ToLower(name) }

var composeOnce = sync.OnceValues(func() (m *composeModel, err error) {
	m = &composeModel{vars: map[string]template.Variable{}}
	if m.p, m.templates, err = loadCompose(envExample, nil); err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, s := range m.templates {
		for name, v := range template.ExtractVariables(map[string]any{"": s}, nil) {
			v.Required = v.Required || m.vars[name].Required
			m.vars[name], env[name] = v, sentinel(name)
		}
	}
	if m.obs, err = m.p.WithProfiles([]string{"observability"}); err != nil {
		return nil, err
	}
	if m.s, _, err = loadCompose(envExample, env); err != nil {
		return nil, err
	}
	m.s, err = m.s.WithProfiles([]string{"observability"})
	return m, err
})

func loadComposeModel(t *testing.T) *composeModel {
	t.Helper()
	m, err := composeOnce()
	if err != nil {
		t.Fatalf("docker-compose.yml with .env.example: %v", err)
	}
	return m
}

// role is the extagram subcommand a service runs, or "" for another image.
func role(s types.ServiceConfig) string {
	if len(s.Command) == 0 || strings.HasPrefix(s.Command[0], "-") {
		return ""
	}
	return s.Command[0]
}

// flag returns a flag of the service's command, or the EXTAGRAM_ variable that stands for it.
func flag(s types.ServiceConfig, name string) (string, bool) {
	if v, ok := flagValue(s.Command, name); ok {
		return v, true
	}
	return getenv(s, "EXTAGRAM_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_")))
}

func getenv(s types.ServiceConfig, name string) (string, bool) {
	if v := s.Environment[name]; v != nil {
		return *v, true
	}
	return "", false
}

// TestComposeConfig: Compose itself (docker's plugin, or Debian's docker-compose; `config` needs no engine)
// validates the file with .env.example and the observability profile, and lists what compose-go sees.
func TestComposeConfig(t *testing.T) {
	t.Parallel()
	tools := map[string][]string{}
	if path, err := exec.LookPath("docker"); err == nil && exec.Command(path, "compose", "version").Run() == nil {
		tools["docker_compose"] = []string{path, "compose"}
	}
	if path, err := exec.LookPath("docker-compose"); err == nil {
		tools["docker-compose"] = []string{path}
	}
	if len(tools) == 0 {
		testutil.NeedTool(t, "no `docker compose` or `docker-compose`; apt-get install -y --no-install-recommends docker-compose")
	}
	m := loadComposeModel(t)
	root, want := must(filepath.Abs(repoRoot)), slices.Sorted(maps.Keys(m.obs.Services))
	var environ []string // only the env file may set what the Compose file reads
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); m.vars[k].Name == "" && !strings.HasPrefix(k, "COMPOSE_") {
			environ = append(environ, kv)
		}
	}
	for label, tool := range tools {
		t.Run(label, func(t *testing.T) {
			t.Parallel()
			// `config --services` validates the whole file, as `config -q` does.
			cmd := exec.Command(tool[0], slices.Concat(tool[1:], []string{"--project-directory", root, "--env-file", must(filepath.Abs(envExample)),
				"-f", filepath.Join(root, "docker-compose.yml"), "--profile", "observability", "config", "--services"})...)
			cmd.Env, cmd.Dir = environ, t.TempDir()
			out, err := cmd.CombinedOutput()
			got := slices.Sorted(slices.Values(strings.Fields(string(out))))
			check(t, err == nil && slices.Equal(got, want), "config: %v: services %v, compose-go sees %v\n%s", err, got, want, out)
		})
	}
}

// TestComposeTopology: the seed's servers, each extagram role from the one image, on extagram-net; only the
// edge publishes ports; the gRPC roles speak mutual TLS with the certificates certs writes into the mesh
// volume; the edge reaches every replica of each service; s4 and s5 share one uploads volume.
func TestComposeTopology(t *testing.T) {
	p := loadComposeModel(t).p
	root, image := must(filepath.Abs(repoRoot)), p.Services["s1"].Image
	mount := func(s types.ServiceConfig, match func(types.ServiceVolumeConfig) bool) *types.ServiceVolumeConfig {
		if i := slices.IndexFunc(s.Volumes, match); i >= 0 {
			return &s.Volumes[i]
		}
		return &types.ServiceVolumeConfig{}
	}
	isMesh := func(v types.ServiceVolumeConfig) bool { return v.Source == "mesh" }
	for name, s := range p.Services {
		r, seed := seedRoles[name]
		check(t, (seed && role(s) == r) || (name == dbService && strings.HasPrefix(s.Image, "mysql:8")),
			"service %s (image %s) runs %q: not one of the seed's servers", name, s.Image, role(s))
		_, onNet := s.Networks[netName] // certs writes files and talks to no one
		check(t, onNet == (role(s) != "certs") && (role(s) != "certs" || s.NetworkMode == "none"),
			"%s: network_mode %q, networks %v; want %s, or none for certs", name, s.NetworkMode, s.Networks, netName)
		check(t, name == "s1" || len(s.Ports) == 0, "%s publishes %v: only the edge faces the browser", name, s.Ports)
		if role(s) != "" {
			check(t, s.Image != "" && s.Image == image && len(s.Entrypoint) == 0, "%s: image %q entrypoint %v, want %q and its entrypoint", name, s.Image, s.Entrypoint, image)
			check(t, s.Build != nil && s.Build.Context == root && s.Build.Dockerfile == "Dockerfile" && s.Build.Args["VERSION"] != nil && s.Build.Args["COMMIT"] != nil,
				"%s: want a build of the repository's Dockerfile with VERSION and COMMIT, got %+v", name, s.Build)
		}
		m := mount(s, isMesh)
		if !slices.Contains(grpcRoles, role(s)) {
			check(t, role(s) == "certs" || m.Source == "", "%s mounts the mesh's keys but speaks no gRPC", name)
			continue
		}
		check(t, m.ReadOnly && m.Target == "/mesh", "%s: the mesh volume at %q (read-only %v), want read-only at /mesh", name, m.Target, m.ReadOnly)
		for f, want := range map[string]string{"mesh-ca": "/mesh/ca.pem", "mesh-cert": "/mesh/" + role(s) + ".pem", "mesh-key": "/mesh/" + role(s) + "-key.pem"} {
			got, _ := flag(s, f)
			check(t, got == want, "%s: --%s %q, want %q", name, f, got, want)
		}
		v, set := flag(s, "mesh-insecure")
		check(t, !set || v == "false", "%s runs with --mesh-insecure", name)
	}
	check(t, len(p.Services) == len(seedRoles)+1, "services %v, want the seed's %v and s7", p.ServiceNames(), seedRoles)
	check(t, p.Networks[netName].Name == netName, "network %s is not declared with that name", netName)
	check(t, regexp.MustCompile(`(?m)^\s*#.*\bS6\b(.*\n){0,2}.*embedded`).Match(readFile(t, repoRoot+"/docker-compose.yml")),
		"no comment says where S6 went: its static assets are embedded in the edge")
	certs := mount(p.Services["certs"], isMesh)
	dir, _ := flagValue(p.Services["certs"].Command, "dir")
	check(t, !certs.ReadOnly && dir == certs.Target && dir == "/mesh", "certs: writes %q into the mesh volume at %q (read-only %v), want /mesh", dir, certs.Target, certs.ReadOnly)

	edge, published := p.Services["s1"], map[string]int{}
	for _, port := range edge.Ports {
		published[port.Published] = int(port.Target)
	}
	https, _ := flag(edge, "https-addr")
	http, _ := flag(edge, "http-addr")
	rp, _ := flag(edge, "redirect-port")
	check(t, len(edge.Ports) == 2 && published["443"] == addrPort(t, https) && published["80"] == addrPort(t, http),
		"s1 publishes %v, want exactly 443 on --https-addr %s and 80 on --http-addr %s", edge.Ports, https, http)
	check(t, rp == "443", "--redirect-port %q, want 443 (the published HTTPS port)", rp)

	// The edge dials dns:///ALIAS:PORT, which Docker resolves to every container with the alias.
	for r, minReplicas := range map[string]int{"feed": 2, "upload": 1, "blob": 1} {
		target, ok := flag(edge, r+"-target")
		check(t, ok, "s1 has no --%s-target", r)
		alias, port := parseDNSTarget(t, target)
		var members, want []string
		for _, name := range p.ServiceNames() { // sorted
			if n := p.Services[name].Networks[netName]; (n != nil && slices.Contains(n.Aliases, alias)) || name == alias {
				members = append(members, name)
			}
			if role(p.Services[name]) == r {
				want = append(want, name)
			}
		}
		check(t, slices.Equal(members, want) && len(members) >= minReplicas, "%s resolves to %v, want every %s service %v, at least %d", alias, members, r, want, minReplicas)
		check(t, r != "feed" || slices.Equal(members, []string{"s2", "s3"}), "s2 and s3 are not the feed replicas %v", members)
		for _, name := range members {
			s := p.Services[name]
			addr, _ := flag(s, "grpc-addr")
			_, maxAge := flag(s, "max-connection-age") // clients re-resolve when connections end
			check(t, addrPort(t, addr) == port, "%s listens on %q, but the edge dials %s", name, addr, target)
			check(t, maxAge, "%s has no --max-connection-age: the edge would never see new replicas", name)
			check(t, s.ContainerName == "" && len(s.Ports) == 0, "%s has a container_name or ports: it could not be scaled", name)
		}
	}

	// s4 writes new files and s5 rewrites missing or damaged ones from S7, in one named volume.
	var up [2]*types.ServiceVolumeConfig
	for i, name := range []string{"s4", "s5"} {
		dir, _ := flag(p.Services[name], "uploads-dir")
		up[i] = mount(p.Services[name], func(v types.ServiceVolumeConfig) bool {
			return dir != "" && filepath.Clean(v.Target) == filepath.Clean(dir)
		})
	}
	_, declared := p.Volumes[up[0].Source]
	check(t, up[0].Type == types.VolumeTypeVolume && declared && up[0].Source == up[1].Source && up[1].Type == up[0].Type && !up[0].ReadOnly && !up[1].ReadOnly,
		"s4 mounts %+v and s5 %+v at their --uploads-dir: want one declared named volume, read-write in both", up[0], up[1])
	for name, s := range p.Services {
		check(t, name == "s4" || name == "s5" || mount(s, func(v types.ServiceVolumeConfig) bool { return v.Source == up[0].Source }).Source == "",
			"%s mounts the uploads volume too", name)
	}
}

// Every long-running service has a health check on its own listener (the binary speaks gRPC health and
// HTTPS); the start order waits for those, and for the one-shots to complete.
func TestComposeHealthchecksAndStartOrder(t *testing.T) {
	p := loadComposeModel(t).p
	const healthy, done = types.ServiceConditionHealthy, types.ServiceConditionCompletedSuccessfully
	afterMigrate := map[string]string{dbService: healthy, "migrate": done, "certs": done}
	order := map[string]map[string]string{
		"s1": {"certs": done, "s2": healthy, "s3": healthy, "s4": healthy, "s5": healthy},
		"s2": afterMigrate, "s3": afterMigrate, "s4": afterMigrate, "s5": afterMigrate,
		"migrate": {dbService: healthy}, "certs": {}, dbService: {},
	}
	hasHealth := func(s types.ServiceConfig) bool { return s.HealthCheck != nil && !s.HealthCheck.Disable }
	for name, s := range p.Services {
		got := map[string]string{}
		for dep, d := range s.DependsOn {
			got[dep] = d.Condition
			check(t, (d.Condition == healthy && hasHealth(p.Services[dep])) || (d.Condition == done && oneShot(p.Services[dep])),
				"%s waits for %s to be %q: wait for a health check or for a one-shot", name, dep, d.Condition)
		}
		want, ok := order[name]
		check(t, ok && maps.Equal(got, want), "%s depends on %v, want %v", name, got, want)
		if oneShot(s) || !hasHealth(s) || len(s.HealthCheck.Test) < 2 {
			check(t, oneShot(s) && !hasHealth(s), "%s: a health check %v, want one unless it is a one-shot", name, s.HealthCheck)
			continue
		}
		test, probe := s.HealthCheck.Test, []string{"CMD", "/extagram", "health"}
		ok = slices.Equal(test[:min(3, len(test))], probe)
		switch role(s) {
		case "":
			check(t, strings.Contains(strings.Join(test, " "), "mysqladmin ping") && (test[0] == "CMD" || test[0] == "CMD-SHELL"), "%s: health check %q, want mysqladmin ping", name, test)
		case "edge":
			u, _ := flagValue(test, "url")
			https, _ := flag(s, "https-addr")
			check(t, ok && strings.HasPrefix(u, "https://") && strings.Contains(u, ":"+strconv.Itoa(addrPort(t, https))+"/"),
				"%s: health check %q does not run %q on --https-addr %s", name, test, probe, https)
			check(t, slices.Contains(test, "--insecure") || slices.Contains(test, "--insecure=true"), "%s: health check must skip verification of the self-signed certificate", name)
		default:
			// Mutual TLS as the operator, from the mesh volume: --data-dir / finds /mesh.
			addr, _ := flagValue(test, "grpc-addr")
			listen, _ := flag(s, "grpc-addr")
			dataDir, _ := flagValue(test, "data-dir")
			check(t, ok && addr != "" && addrPort(t, addr) == addrPort(t, listen), "%s: health check %q does not run %q on --grpc-addr %s", name, test, probe, listen)
			check(t, dataDir == "/", "%s: the health check finds no certificate (--data-dir %q, want / for /mesh)", name, dataDir)
		}
	}
}

// Every service, the observability profile's too, runs with least privilege.
func TestComposeHardening(t *testing.T) {
	m := loadComposeModel(t)
	for name, s := range m.obs.Services {
		u, _, _ := strings.Cut(s.User, ":")
		writable := func(dir string) bool {
			return slices.ContainsFunc(s.Tmpfs, func(m string) bool { m, _, _ = strings.Cut(m, ":"); return under(dir, m) }) ||
				slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool { return !v.ReadOnly && under(dir, v.Target) })
		}
		cmdline := slices.Concat(m.s.Services[name].Command, m.s.Services[name].Entrypoint) // the values of the secret variables
		if hc := m.s.Services[name].HealthCheck; hc != nil {
			cmdline = append(cmdline, hc.Test...)
		}
		nnp := slices.Contains(s.SecurityOpt, "no-new-privileges:true") || slices.Contains(s.SecurityOpt, "no-new-privileges")
		checkLeastPrivilege(t, name, privileges{dropsAll: slices.Contains(s.CapDrop, "ALL"), added: len(s.CapAdd), noNewPrivileges: nnp,
			privileged: s.Privileged, root: u == "0" || u == "root", readOnlyRoot: s.ReadOnly || name == dbService, writable: writable,
			flag: func(f string) (string, bool) { return flag(s, f) }, cmdline: cmdline})
		check(t, len(s.EnvFiles) == 0, "%s: env_file would hand every variable of the file to the container; name each one", name)
		wantRestart := []string{types.RestartPolicyUnlessStopped}
		if oneShot(s) {
			wantRestart = []string{types.RestartPolicyNo, types.RestartPolicyOnFailure}
		}
		check(t, slices.Contains(wantRestart, s.Restart), "%s: restart %q, want one of %q", name, s.Restart, wantRestart)
		check(t, role(s) == "" || slices.ContainsFunc(s.Tmpfs, func(m string) bool { return strings.HasPrefix(m, "/tmp") }), "%s: want a tmpfs at /tmp", name)
	}
}

// TestComposeSecrets: secrets come only from required (or optional, empty) variables, never in the image
// (nor on a command line: TestComposeHardening); the services log in with s7's data-only account, migrate
// with its DDL one.
func TestComposeSecrets(t *testing.T) {
	m := loadComposeModel(t)
	// A default would be a secret written in the file.
	for _, s := range m.templates {
		for _, r := range regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}?`).FindAllStringSubmatch(s, -1) {
			if name := r[1]; secretName.MatchString(name) {
				only := func(k string) (string, bool) { return map[bool]string{false: "x"}[k == name], true } // name alone is empty
				_, err := template.Substitute(s, only)
				check(t, err != nil || r[2] == ":-", "%q: a secret must be a required ${%s:?...} reference, or ${%s:-} when it is optional", s, name, name)
			}
		}
	}
	_, _, err := loadCompose(os.DevNull, nil)
	var missing *template.MissingRequiredError
	check(t, errors.As(err, &missing) && secretName.MatchString(missing.Variable), "without .env the file loads, or fails for another reason than a password: %v", err)

	secrets := map[string]bool{}
	for name := range m.vars {
		secrets[sentinel(name)] = secretName.MatchString(name)
	}
	for name, s := range m.s.Services {
		for k := range s.Environment {
			v, _ := getenv(s, k)
			if strings.Contains(strings.ToUpper(k), "DSN") {
				cfg, err := mysql.ParseDSN(v)
				check(t, err == nil && secrets[cfg.Passwd], "%s: %s does not take its password from a secret variable: %v", name, k, err)
			} else {
				check(t, !secretName.MatchString(k) || secrets[v], "%s: %s does not come from a secret variable", name, k)
			}
		}
		if s.Build != nil {
			for k := range s.Build.Args {
				check(t, !secretName.MatchString(k), "%s: build argument %s carries a secret into the image", name, k)
			}
		}
	}

	db := m.s.Services[dbService]
	dbEnv := func(k string) string { v, _ := getenv(db, k); return v }
	app := [2]string{"EXTAGRAM_DB_USER", "EXTAGRAM_DB_PASSWORD"}
	accounts := map[string][2]string{"feed": app, "upload": app, "blob": app, "migrate": {"EXTAGRAM_MIGRATE_USER", "EXTAGRAM_MIGRATE_PASSWORD"}}
	for name, s := range m.s.Services {
		dsn, ok := getenv(s, "EXTAGRAM_MYSQL_DSN")
		acct, wantDSN := accounts[role(s)]
		check(t, ok == wantDSN, "%s: EXTAGRAM_MYSQL_DSN set: %v; only the services and migrate log in (the edge talks gRPC)", name, ok)
		if !ok || !wantDSN {
			continue
		}
		cfg, err := mysql.ParseDSN(dsn)
		check(t, err == nil && cfg.User == dbEnv(acct[0]) && cfg.Passwd == dbEnv(acct[1]), "%s logs in as %s, but s7 creates %s and %s", name, dsn, acct[0], acct[1])
		check(t, err == nil && cfg.Net == "tcp" && cfg.Addr == dbService+":3306" && cfg.DBName == dbEnv("MYSQL_DATABASE"), "%s connects to %s, want s7:3306/%s", name, dsn, dbEnv("MYSQL_DATABASE"))
		v, _ := flag(s, "auto-migrate")
		check(t, role(s) == "migrate" || v == "false", "%s: --auto-migrate=%q; with the data-only account it must be false", name, v)
	}
	check(t, dbEnv("EXTAGRAM_DB_PASSWORD") != dbEnv("EXTAGRAM_MIGRATE_PASSWORD"), "the data and migrate accounts share one password variable")

	// S7's init scripts are bound read-only, and shell scripts: only a script can read the environment.
	mounts := map[string]types.ServiceVolumeConfig{}
	for _, v := range db.Volumes {
		mounts[v.Target] = v
	}
	initdb := mounts["/docker-entrypoint-initdb.d"]
	check(t, mounts["/var/lib/mysql"].Type == types.VolumeTypeVolume, "s7: /var/lib/mysql is not a named volume")
	check(t, initdb.Type == types.VolumeTypeBind && initdb.ReadOnly, "s7: want the init scripts bound read-only at /docker-entrypoint-initdb.d")
	entries, err := os.ReadDir(initdb.Source)
	check(t, err == nil, "s7's init scripts: %v", err)
	var scripts int
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".sh":
			scripts++
			for _, m := range regexp.MustCompile(`\$\{?((?:EXTAGRAM|MYSQL)_[A-Z0-9_]+)`).FindAllStringSubmatch(string(readFile(t, filepath.Join(initdb.Source, e.Name()))), -1) {
				_, ok := getenv(db, m[1])
				check(t, ok, "%s reads %s, which s7 is not given", e.Name(), m[1])
			}
		case ".sql", ".gz", ".xz", ".zst":
			t.Errorf("%s: SQL files cannot read passwords from the environment", e.Name())
		}
	}
	check(t, scripts > 0, "%s has no .sh init script", initdb.Source)
}

// .env.example sets every variable docker-compose.yml reads (optional ones maybe empty), and no real secret.
func TestEnvExampleDocumentsEveryVariable(t *testing.T) {
	m, raw := loadComposeModel(t), string(readFile(t, envExample))
	set := must(dotenv.Read(envExample))
	for name, v := range m.vars {
		_, listed := set[name]
		documented := listed || regexp.MustCompile(`(?m)^#\s*`+name+`=`).MatchString(raw)
		check(t, set[name] != "" || (documented && !v.Required), ".env.example does not set %s (a required variable must be set, to a placeholder)", name)
	}
	for name, value := range set {
		_, used := m.vars[name]
		check(t, used || strings.HasPrefix(name, "COMPOSE_"), ".env.example documents %s, which docker-compose.yml does not use", name)
		check(t, !secretName.MatchString(name) || strings.Contains(value, "change-me") || (value == "" && !m.vars[name].Required),
			".env.example: %s = %q, want a change-me placeholder (or nothing, for an optional secret), never a real secret", name, value)
	}
}

// No deploy file writes a password down, nor the original application's credentials.
func TestNoLiteralSecretsInDeployFiles(t *testing.T) {
	literal := regexp.MustCompile(`(?i)(identified\s+by\s+'[^'$]|password\s*[:=]\s*["']?[^\s"'$<{(%]|\w+:[^\s@${]+@tcp\()`)
	var files []string
	for _, pattern := range []string{"../Dockerfile", "../docker-compose.yml", "../.env.example", "mysql/initdb.d/*", "kubernetes/*.yaml", "*.sh"} {
		files = append(files, must(filepath.Glob(pattern))...)
	}
	check(t, len(files) >= 6, "found only %v", files)
	for _, f := range slices.DeleteFunc(files, func(f string) bool { return strings.HasSuffix(f, ".local.yaml") }) { // real secrets, ignored by git
		body := string(readFile(t, f))
		for _, lit := range []string{"pass123", "extagram_admin"} {
			check(t, !strings.Contains(strings.ToLower(body), lit), "%s contains %q", f, lit)
		}
		for i, line := range strings.Split(body, "\n") {
			masked := regexp.MustCompile(`\$\{[^}]*\}`).ReplaceAllString(line, "${}") // a reference is no literal
			check(t, strings.HasPrefix(strings.TrimSpace(line), "#") || !literal.MatchString(masked) || strings.Contains(line, "change-me"),
				"%s:%d looks like a literal password: %s", f, i+1, strings.TrimSpace(line))
		}
	}
}

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
