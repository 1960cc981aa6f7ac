package deploy

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const repoRoot = ".." // the tests run in deploy/

func check(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Errorf(format, args...)
	}
}

// must returns v, for calls that fail only when the machine does.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// flagValue returns the value of --name (or -name) in args, as "--name=value" or "--name value".
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		k, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && k == name && (hasValue || i+1 < len(args)) {
			if !hasValue {
				v = args[i+1]
			}
			return v, true
		}
	}
	return "", false
}

// flagSet returns the flags of args by name, but those in ignore.
func flagSet(args []string, ignore ...string) map[string]string {
	out := map[string]string{}
	for _, a := range args {
		if k, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && !slices.Contains(ignore, k) {
			out[k], _ = flagValue(args, k)
		}
	}
	return out
}

// addrPort returns the port of a listen or dial address such as ":50051".
func addrPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	n, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil || n <= 0 || n > 65535 {
		t.Fatalf("address %q has no valid port", addr)
	}
	return n
}

// parseDNSTarget splits a gRPC target that resolves to every address of a name: dns:///NAME:PORT.
func parseDNSTarget(t *testing.T, target string) (name string, port int) {
	t.Helper()
	m := regexp.MustCompile(`^dns:///([a-z0-9]([-a-z0-9.]*[a-z0-9])?:[0-9]+)$`).FindStringSubmatch(target)
	if m == nil {
		t.Fatalf("target %q is not dns:///NAME:PORT", target)
	}
	name, _, _ = strings.Cut(m[1], ":")
	return name, addrPort(t, m[1])
}

// under reports whether dir is mount or inside it.
func under(dir, mount string) bool {
	return dir == mount || strings.HasPrefix(dir, strings.TrimSuffix(mount, "/")+"/")
}

// secretName matches names of settings that hold a secret.
var secretName = regexp.MustCompile(`(?i)pass(word|wd)?|secret|token|dsn|credential|private`)

// passwordArg matches a command-line argument that passes a password.
var passwordArg = regexp.MustCompile(`(?i)(^-p.|--password|passw)`)

// privileges is what a container of either platform may do, in the terms both checks share.
type privileges struct {
	dropsAll                          bool // every Linux capability
	added                             int  // capabilities added back
	noNewPrivileges, privileged, root bool
	readOnlyRoot                      bool
	writable                          func(dir string) bool // on a tmpfs or a read-write volume
	flag                              func(name string) (string, bool)
	cmdline                           []string // what ps and the logs show
}

// checkLeastPrivilege: no capability, no privilege gain and no root; every folder the binary writes lies in a
// writable mount; no DSN nor password on the command line.
func checkLeastPrivilege(t *testing.T, name string, p privileges) {
	t.Helper()
	check(t, p.dropsAll && p.added == 0, "%s: drops every capability %v, adds %d; want all dropped and none added", name, p.dropsAll, p.added)
	check(t, p.noNewPrivileges && !p.privileged && !p.root, "%s may gain privileges (no-new-privileges %v), is privileged or runs as root", name, p.noNewPrivileges)
	check(t, p.readOnlyRoot, "%s: want a read-only root file system", name)
	for _, f := range []string{"data-dir", "uploads-dir"} {
		dir, ok := p.flag(f)
		check(t, !ok || p.writable(dir), "%s: --%s %s is on the read-only root file system", name, f, dir)
	}
	for _, a := range p.cmdline {
		check(t, !strings.Contains(a, "@tcp(") && !strings.Contains(a, "mysql-dsn"), "%s: a DSN on the command line (%q) shows in ps and logs; use EXTAGRAM_MYSQL_DSN", name, a)
		check(t, !passwordArg.MatchString(a), "%s: a password on the command line: %q", name, a)
	}
}
