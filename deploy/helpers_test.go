package deploy

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// repoRoot is the module root: the tests run in deploy/.
const repoRoot = ".."

// inCI reports whether the test runs in CI, where a missing tool is a
// failure rather than a reason to skip.
func inCI() bool { return os.Getenv("CI") == "true" }

// skipOrFail skips outside CI and fails in CI.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// flagValue returns the value of --name (or -name) in args, in either the
// "--name=value" or the "--name value" form, as Go's flag package accepts.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		a = strings.TrimLeft(a, "-")
		if k, v, ok := strings.Cut(a, "="); ok {
			if k == name {
				return v, true
			}
			continue
		}
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// flagNames returns the names of the flags in args (without dashes).
func flagNames(args []string) []string {
	var names []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		k, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		names = append(names, k)
	}
	return names
}

// envName is the environment variable that the binary reads for a flag.
func envName(flag string) string {
	return "EXTAGRAM_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// addrPort returns the port of a listen or dial address such as ":50051"
// or "127.0.0.1:50051".
func addrPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 || n > 65535 {
		t.Fatalf("address %q: bad port", addr)
	}
	return n
}

// dnsTarget matches a gRPC target that resolves a name to every address it
// has: dns:///NAME:PORT (NAME may be a longer DNS name such as
// feed.extagram.svc.cluster.local).
var dnsTarget = regexp.MustCompile(`^dns:///([a-z0-9]([-a-z0-9.]*[a-z0-9])?):([0-9]+)$`)

// parseDNSTarget splits dns:///NAME:PORT.
func parseDNSTarget(t *testing.T, target string) (name string, port int) {
	t.Helper()
	m := dnsTarget.FindStringSubmatch(target)
	if m == nil {
		t.Fatalf("target %q is not dns:///NAME:PORT", target)
	}
	p, _ := strconv.Atoi(m[3])
	return m[1], p
}

// varRef matches a Compose variable reference: ${NAME}, ${NAME:-default},
// ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt}; $$ escapes
// a dollar sign.
var varRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// yamlComment matches a YAML comment: '#' at the start of a line or after
// white space.
var yamlComment = regexp.MustCompile(`(^|\s)#.*$`)

// stripComments removes the comments of a YAML text, which Compose does not
// interpolate.
func stripComments(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = yamlComment.ReplaceAllString(l, "")
	}
	return strings.Join(lines, "\n")
}

type ref struct {
	Name string
	Op   string // "", ":-", "-", ":?", "?", ":+", "+"
	Arg  string
}

// refs returns the variable references in s.
func refs(s string) []ref {
	var out []ref
	for _, m := range varRef.FindAllStringSubmatch(s, -1) {
		switch {
		case m[0] == "$$":
		case m[1] != "":
			out = append(out, ref{Name: m[1], Op: m[2], Arg: m[3]})
		default:
			out = append(out, ref{Name: m[4]})
		}
	}
	return out
}

// required reports whether the reference makes Compose fail when the
// variable is unset or empty, so it can never fall back to a literal.
func (r ref) required() bool { return r.Op == ":?" }

// secretName matches names of settings that hold a secret.
var secretName = regexp.MustCompile(`(?i)pass(word|wd)?|secret|token|dsn|credential|private`)

// leakedLiterals are credentials known to have been committed by the
// original application; none may appear anywhere again.
var leakedLiterals = []string{"pass123", "extagram_admin"}

// parseEnvFile reads KEY=VALUE lines; commented-out assignments ("# KEY=")
// count as documented but are returned with commented set.
func parseEnvFile(t *testing.T, b []byte) map[string]envLine {
	t.Helper()
	out := map[string]envLine{}
	assign := regexp.MustCompile(`^(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$`)
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		m := assign.FindStringSubmatch(line)
		if m == nil {
			if line != "" && !strings.HasPrefix(line, "#") {
				t.Errorf(".env.example line %d is neither a comment nor KEY=VALUE: %q", i+1, line)
			}
			continue
		}
		out[m[2]] = envLine{Value: m[3], Commented: m[1] != ""}
	}
	return out
}

type envLine struct {
	Value     string
	Commented bool
}
