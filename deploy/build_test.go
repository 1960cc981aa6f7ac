package deploy

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	Cmd  string // upper case: FROM, RUN, USER...
	Args string
	Line int
}

// parseDockerfile returns the instructions of a Dockerfile grouped by build
// stage; stage 0 holds the ARGs before the first FROM.
func parseDockerfile(t *testing.T, b []byte) [][]instruction {
	t.Helper()
	stages := [][]instruction{nil}
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start}
		if in.Cmd == "FROM" {
			stages = append(stages, nil)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if cur.Len() > 0 {
		t.Fatal("Dockerfile ends inside a continued line")
	}
	if len(stages) < 3 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a final stage", len(stages)-1)
	}
	return stages
}

// TestDockerfile checks the image's recipe: a Go build stage whose module
// download is its own cached layer, a build through deploy/build.sh only
// (the script TestDockerfileBuildIsStatic runs), and a minimal final stage
// that runs /extagram as a non-root user.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, readFile(t, repoRoot+"/Dockerfile"))
	build, final := stages[1], stages[len(stages)-1]

	goVersion := regexp.MustCompile(`(?m)^go ([0-9]+\.[0-9]+)`).FindSubmatch(readFile(t, repoRoot+"/go.mod"))
	if goVersion == nil {
		t.Fatal("go.mod has no go directive")
	}
	from := build[0].Args
	for _, in := range stages[0] {
		if k, v, ok := strings.Cut(in.Args, "="); in.Cmd == "ARG" && ok {
			from = strings.ReplaceAll(from, "${"+k+"}", v)
		}
	}
	check(t, strings.HasPrefix(from, "golang:"+string(goVersion[1])), "build stage FROM %s, want golang:%s like go.mod", from, goVersion[1])

	// go.mod and go.sum alone, then the download, then the sources: editing
	// a .go file must not download the modules again.
	step := 0
	for _, in := range build {
		switch {
		case step == 0 && in.Cmd == "COPY" && strings.Contains(in.Args, "go.mod") && strings.Contains(in.Args, "go.sum") && !strings.Contains(in.Args, ". ."),
			step == 1 && in.Cmd == "RUN" && strings.Contains(in.Args, "go mod download"),
			step == 2 && in.Cmd == "COPY":
			step++
		}
	}
	check(t, step == 3, "the build stage does not download modules in a layer of their own (COPY go.mod go.sum, RUN go mod download, then COPY the sources)")

	var scriptRuns int
	for _, in := range slices.Concat(stages...) {
		if in.Cmd != "RUN" {
			continue
		}
		check(t, !strings.Contains(in.Args, "go build"), "Dockerfile:%d runs go build itself; build through deploy/build.sh so the test builds the same binary", in.Line)
		if strings.Contains(in.Args, "deploy/build.sh") {
			scriptRuns++
			check(t, strings.Contains(in.Args, "VERSION=") && strings.Contains(in.Args, "COMMIT="), "Dockerfile:%d does not pass VERSION and COMMIT to deploy/build.sh", in.Line)
		}
	}
	check(t, scriptRuns == 1, "Dockerfile runs deploy/build.sh %d times, want once", scriptRuns)

	base := final[0].Args
	check(t, strings.HasPrefix(base, "gcr.io/distroless/static") || base == "scratch", "final stage FROM %s, want distroless/static or scratch", base)
	last, labels := map[string]string{}, ""
	for _, in := range final {
		if last[in.Cmd] = in.Args; in.Cmd == "LABEL" {
			labels += " " + in.Args
		}
		check(t, in.Cmd != "RUN", "Dockerfile:%d: RUN in the final stage (it has no shell)", in.Line)
	}
	// A numeric uid other than 0 (Kubernetes' runAsNonRoot can check it
	// without the image's /etc/passwd), or distroless' nonroot.
	uid, _, _ := strings.Cut(last["USER"], ":")
	n, err := strconv.Atoi(uid)
	check(t, uid == "nonroot" || (err == nil && n > 0), "final stage USER %q, want a numeric non-zero uid or nonroot", last["USER"])
	check(t, last["ENTRYPOINT"] == `["/extagram"]`, "final stage ENTRYPOINT %s, want [\"/extagram\"]", last["ENTRYPOINT"])
	for _, l := range []string{"source", "version", "revision"} {
		check(t, strings.Contains(labels, "org.opencontainers.image."+l+"="), "final stage has no org.opencontainers.image.%s label", l)
	}
}

// TestDockerfileBuildIsStatic builds ./cmd/extagram with deploy/build.sh,
// the script the Dockerfile runs, and checks the result can run alone in
// the distroless/static final stage, which has no C library and no loader.
// It runs beside the other tests: a first build takes minutes.
func TestDockerfileBuildIsStatic(t *testing.T) {
	t.Parallel()
	list := exec.Command("go", "list", "./cmd/extagram")
	list.Dir = repoRoot
	if out, err := list.CombinedOutput(); err != nil {
		skipOrFail(t, "./cmd/extagram does not build yet: %v\n%s", err, out)
	}
	if testing.Short() {
		t.Skip("builds the whole binary")
	}
	// CGO_ENABLED=1 in the environment proves that the script itself turns
	// cgo off.
	const version, commit = "v0.0.0-deploytest", "c0ffee1"
	bin := filepath.Join(t.TempDir(), "extagram")
	cmd := exec.Command("sh", "build.sh")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "VERSION="+version, "COMMIT="+commit, "OUT="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sh build.sh: %v\n%s", err, out)
	}

	// Static and stripped: no program interpreter, no dynamic section, no
	// symbol table and no DWARF.
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("%s is not an ELF file: %v", bin, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		check(t, p.Type != elf.PT_INTERP, "the binary has a PT_INTERP header: it needs a dynamic loader, which the distroless/static image lacks")
		check(t, p.Type != elf.PT_DYNAMIC, "the binary has a PT_DYNAMIC header: it is dynamically linked")
	}
	check(t, f.Section(".dynamic") == nil && f.Section(".interp") == nil, "the binary has a .dynamic or .interp section")
	libs, _ := f.ImportedLibraries()
	check(t, len(libs) == 0, "the binary imports %v", libs)
	check(t, f.Section(".symtab") == nil, "the binary has a symbol table: -ldflags -s was not applied")
	check(t, f.Section(".debug_info") == nil && f.Section(".zdebug_info") == nil, "the binary has DWARF: -ldflags -w was not applied")

	// The stamped values prove that the -X flags name the variables that
	// the binary prints.
	out, err := exec.Command(bin, "version").CombinedOutput()
	check(t, err == nil && strings.Contains(string(out), version) && strings.Contains(string(out), commit), "`extagram version` printed %q (%v), want %s and %s", out, err, version, commit)
}

// The build context keeps what the build needs and drops secrets and
// local state, as Docker reads .dockerignore.
func TestDockerignore(t *testing.T) {
	f, err := os.Open(repoRoot + "/.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	ignored := func(p string) bool {
		m, err := pm.MatchesOrParentMatches(p)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, p := range []string{".git/config", ".env", ".env.local", "data/extagram.db", "edge/testdata/server.key", "certs/tls.pem", ".bin/buf", "deploy/kubernetes/secret.local.yaml"} {
		check(t, ignored(p), ".dockerignore lets %s into the build context", p)
	}
	for _, p := range []string{"go.mod", "go.sum", "deploy/build.sh", "cmd/extagram/main.go", "edge/web/static/style.css", "store/migrations/mysql/00001_posts_images.sql", "gen/extagram/feed/v1/feed_service.pb.go"} {
		check(t, !ignored(p), ".dockerignore drops %s, which the build needs", p)
	}
}
