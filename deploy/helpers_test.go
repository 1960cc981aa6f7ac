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

// repoRoot is the module root: the tests run in deploy/.
const repoRoot = ".."

// skipOrFail skips outside CI and fails in CI (CI=true), where a missing
// tool or server is a failure rather than a reason to skip.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// check reports a failure unless ok.
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

// writeFile writes a file in a temporary folder of the test.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// flagValue returns the value of --name (or -name) in args, in either the
// "--name=value" or the "--name value" form, as Go's flag package accepts.
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

// parseDNSTarget splits a gRPC target that resolves a name to every address
// it has: dns:///NAME:PORT (NAME may be a longer DNS name such as
// feed.extagram.svc.cluster.local).
func parseDNSTarget(t *testing.T, target string) (name string, port int) {
	t.Helper()
	m := regexp.MustCompile(`^dns:///([a-z0-9]([-a-z0-9.]*[a-z0-9])?:[0-9]+)$`).FindStringSubmatch(target)
	if m == nil {
		t.Fatalf("target %q is not dns:///NAME:PORT", target)
	}
	name, _, _ = strings.Cut(m[1], ":")
	return name, addrPort(t, m[1])
}

// secretName matches names of settings that hold a secret.
var secretName = regexp.MustCompile(`(?i)pass(word|wd)?|secret|token|dsn|credential|private`)

// checkNoLeakedLiterals fails if body holds a credential that the original
// application committed.
func checkNoLeakedLiterals(t *testing.T, name, body string) {
	t.Helper()
	for _, lit := range []string{"pass123", "extagram_admin"} {
		check(t, !strings.Contains(strings.ToLower(body), lit), "%s contains %q", name, lit)
	}
}
