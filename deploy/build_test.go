package deploy

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/extagram/extagram/internal/testutil"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// TestDockerfile checks the image's recipe: a Go build stage like go.mod's whose module download is its own
// cached layer, a build through deploy/build.sh only (the script TestDockerfileBuildIsStatic runs), and a
// minimal final stage that runs /extagram as a non-root user.
func TestDockerfile(t *testing.T) {
	type instruction struct{ Cmd, Args string } // Cmd in upper case, continuation lines joined
	stages := [][]instruction{nil}              // stage 0: the ARGs before the first FROM
	var cur string
	for line := range strings.Lines(string(readFile(t, repoRoot+"/Dockerfile"))) {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if cur += line; strings.HasSuffix(cur, "\\") {
			cur = strings.TrimSuffix(cur, "\\") + " "
			continue
		}
		cmd, args, _ := strings.Cut(cur, " ")
		if cur = ""; strings.EqualFold(cmd, "FROM") {
			stages = append(stages, nil)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
	}
	if cur != "" || len(stages) < 3 {
		t.Fatalf("Dockerfile ends inside a continued line, or has %d stages: want a build and a final stage", len(stages)-1)
	}
	build, final := stages[1], stages[len(stages)-1]
	goVersion := regexp.MustCompile(`(?m)^go ([0-9]+\.[0-9]+)`).FindSubmatch(readFile(t, repoRoot+"/go.mod"))
	from := build[0].Args
	for _, in := range stages[0] {
		if k, v, ok := strings.Cut(in.Args, "="); in.Cmd == "ARG" && ok {
			from = strings.ReplaceAll(from, "${"+k+"}", v)
		}
	}
	check(t, goVersion != nil && strings.HasPrefix(from, "golang:"+string(goVersion[1])), "build stage FROM %s, want golang:%s like go.mod", from, goVersion)
	// go.mod and go.sum alone, the download, then the sources: editing a .go file downloads nothing.
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
		if in.Cmd == "RUN" && strings.Contains(in.Args, "deploy/build.sh") {
			scriptRuns++
			check(t, strings.Contains(in.Args, "VERSION=") && strings.Contains(in.Args, "COMMIT="), "%q does not pass VERSION and COMMIT to deploy/build.sh", in.Args)
		}
		check(t, in.Cmd != "RUN" || !strings.Contains(in.Args, "go build"), "%q runs go build itself; build through deploy/build.sh, as the test does", in.Args)
	}
	check(t, scriptRuns == 1, "Dockerfile runs deploy/build.sh %d times, want once", scriptRuns)

	base := final[0].Args
	check(t, strings.HasPrefix(base, "gcr.io/distroless/static") || base == "scratch", "final stage FROM %s, want distroless/static or scratch", base)
	last, labels := map[string]string{}, ""
	for _, in := range final {
		if last[in.Cmd] = in.Args; in.Cmd == "LABEL" {
			labels += " " + in.Args
		}
		check(t, in.Cmd != "RUN", "%q: RUN in the final stage (it has no shell)", in.Args)
	}
	// A numeric uid other than 0 (runAsNonRoot can check it without /etc/passwd), or nonroot.
	uid, _, _ := strings.Cut(last["USER"], ":")
	n, err := strconv.Atoi(uid)
	check(t, uid == "nonroot" || (err == nil && n > 0), "final stage USER %q, want a numeric non-zero uid or nonroot", last["USER"])
	check(t, last["ENTRYPOINT"] == `["/extagram"]`, "final stage ENTRYPOINT %s, want [\"/extagram\"]", last["ENTRYPOINT"])
	for _, l := range []string{"source", "version", "revision"} {
		check(t, strings.Contains(labels, "org.opencontainers.image."+l+"="), "final stage has no org.opencontainers.image.%s label", l)
	}
}

// TestDockerfileBuildIsStatic builds ./cmd/extagram with deploy/build.sh, as the Dockerfile does, and checks
// that the result runs alone in distroless/static (no C library, no loader). A first build takes minutes.
func TestDockerfileBuildIsStatic(t *testing.T) {
	t.Parallel()
	list := exec.Command("go", "list", "./cmd/extagram")
	list.Dir = repoRoot
	if out, err := list.CombinedOutput(); err != nil {
		testutil.NeedTool(t, "./cmd/extagram does not build yet: %v\n%s", err, out)
	}
	if testing.Short() {
		t.Skip("builds the whole binary")
	}
	// CGO_ENABLED=1 in the environment proves that the script itself turns cgo off.
	const version, commit = "v0.0.0-deploytest", "c0ffee1"
	bin := filepath.Join(t.TempDir(), "extagram")
	cmd := exec.Command("sh", "build.sh")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "VERSION="+version, "COMMIT="+commit, "OUT="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sh build.sh: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("%s is not an ELF file: %v", bin, err)
	}
	defer f.Close()
	// Static and stripped: no program interpreter, no dynamic section, no symbol table and no DWARF.
	for _, p := range f.Progs {
		check(t, p.Type != elf.PT_INTERP && p.Type != elf.PT_DYNAMIC, "the binary has a %v header: it is dynamically linked", p.Type)
	}
	libs, _ := f.ImportedLibraries()
	check(t, f.Section(".dynamic") == nil && f.Section(".interp") == nil && len(libs) == 0, "the binary has a .dynamic or .interp section, or imports %v", libs)
	check(t, f.Section(".symtab") == nil, "the binary has a symbol table: -ldflags -s was not applied")
	check(t, f.Section(".debug_info") == nil && f.Section(".zdebug_info") == nil, "the binary has DWARF: -ldflags -w was not applied")
	// The stamped values prove that the -X flags name the variables that the binary prints.
	out, err := exec.Command(bin, "version").CombinedOutput()
	check(t, err == nil && strings.Contains(string(out), version) && strings.Contains(string(out), commit), "`extagram version` printed %q (%v), want %s and %s", out, err, version, commit)
}

// The build context keeps what the build needs and drops secrets and local state, as Docker reads .dockerignore.
func TestDockerignore(t *testing.T) {
	patterns, err := ignorefile.ReadAll(bytes.NewReader(readFile(t, repoRoot+"/.dockerignore")))
	if err != nil {
		t.Fatal(err)
	}
	pm := must(patternmatcher.New(patterns))
	for p, want := range map[string]bool{".git/config": true, ".env": true, ".env.local": true, "data/extagram.db": true,
		"edge/testdata/server.key": true, "certs/tls.pem": true, ".bin/buf": true, "deploy/kubernetes/secret.local.yaml": true,
		"go.mod": false, "go.sum": false, "deploy/build.sh": false, "cmd/extagram/main.go": false, "edge/web/static/style.css": false,
		"store/migrations/mysql/00001_posts_images.sql": false, "gen/extagram/feed/v1/feed_service.pb.go": false} {
		ignored, err := pm.MatchesOrParentMatches(p)
		check(t, err == nil && ignored == want, ".dockerignore: %s ignored %v (%v), want %v", p, ignored, err, want)
	}
}
