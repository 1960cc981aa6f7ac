package deploy

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
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
	if !strings.HasPrefix(from, "golang:"+string(goVersion[1])) {
		t.Errorf("build stage FROM %s, want golang:%s like go.mod", from, goVersion[1])
	}

	// go.mod and go.sum alone, then the download, then the sources: editing
	// a .go file must not download the modules again.
	step := 0
	for _, in := range build {
		switch {
		case step == 0 && in.Cmd == "COPY" && strings.Contains(in.Args, "go.mod") && strings.Contains(in.Args, "go.sum") && !strings.Contains(in.Args, ". ."):
			step = 1
		case step == 1 && in.Cmd == "RUN" && strings.Contains(in.Args, "go mod download"):
			step = 2
		case step == 2 && in.Cmd == "COPY":
			step = 3
		}
	}
	if step != 3 {
		t.Error("the build stage does not download modules in a layer of their own (COPY go.mod go.sum, RUN go mod download, then COPY the sources)")
	}

	var scriptRuns int
	for _, stage := range stages {
		for _, in := range stage {
			if in.Cmd != "RUN" {
				continue
			}
			if strings.Contains(in.Args, "go build") {
				t.Errorf("Dockerfile:%d runs go build itself; build through deploy/build.sh so the test builds the same binary", in.Line)
			}
			if strings.Contains(in.Args, "deploy/build.sh") {
				scriptRuns++
				for _, v := range []string{"VERSION", "COMMIT"} {
					if !strings.Contains(in.Args, v+"=") {
						t.Errorf("Dockerfile:%d does not pass %s to deploy/build.sh", in.Line, v)
					}
				}
			}
		}
	}
	if scriptRuns != 1 {
		t.Errorf("Dockerfile runs deploy/build.sh %d times, want once", scriptRuns)
	}

	base := final[0].Args
	if !strings.HasPrefix(base, "gcr.io/distroless/static") && base != "scratch" {
		t.Errorf("final stage FROM %s, want distroless/static or scratch", base)
	}
	var user, entrypoint string
	labels := ""
	for _, in := range final {
		switch in.Cmd {
		case "USER":
			user = in.Args
		case "ENTRYPOINT":
			entrypoint = in.Args
		case "LABEL":
			labels += " " + in.Args
		case "RUN":
			t.Errorf("Dockerfile:%d: RUN in the final stage (it has no shell)", in.Line)
		}
	}
	if !nonRootUser(user) {
		t.Errorf("final stage USER %q, want a numeric non-zero uid or nonroot", user)
	}
	if entrypoint != `["/extagram"]` {
		t.Errorf("final stage ENTRYPOINT %s, want [\"/extagram\"]", entrypoint)
	}
	for _, l := range []string{"org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.revision"} {
		if !strings.Contains(labels, l+"=") {
			t.Errorf("final stage has no %s label", l)
		}
	}
}

// nonRootUser reports whether a Dockerfile USER value names a non-root
// user: a numeric uid other than 0 (Kubernetes' runAsNonRoot can check it
// without the image's /etc/passwd), or distroless' nonroot.
func nonRootUser(user string) bool {
	uid, _, _ := strings.Cut(user, ":")
	if uid == "nonroot" {
		return true
	}
	n, err := strconv.Atoi(uid)
	return err == nil && n > 0
}

// buildLikeImage builds the module holding script (deploy/build.sh) into
// out exactly as the Dockerfile does. CGO_ENABLED=1 in the environment
// proves that the script itself turns cgo off.
func buildLikeImage(t *testing.T, script, out, version, commit string) {
	t.Helper()
	cmd := exec.Command("sh", script)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "VERSION="+version, "COMMIT="+commit, "OUT="+out)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		t.Fatalf("sh %s: %v\n%s", script, err, log.String())
	}
}

// checkStatic fails unless the binary at path is a static, stripped ELF
// executable: no program interpreter, no dynamic section, no symbol table
// and no DWARF.
func checkStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s is not an ELF file: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			t.Error("the binary has a PT_INTERP header: it needs a dynamic loader, which the distroless/static image lacks")
		case elf.PT_DYNAMIC:
			t.Error("the binary has a PT_DYNAMIC header: it is dynamically linked")
		}
	}
	if f.Section(".dynamic") != nil || f.Section(".interp") != nil {
		t.Error("the binary has a .dynamic or .interp section")
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary imports %v", libs)
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: -ldflags -s was not applied")
	}
	if f.Section(".debug_info") != nil || f.Section(".zdebug_info") != nil {
		t.Error("the binary has DWARF: -ldflags -w was not applied")
	}
}

// checkVersion runs `BINARY version` and looks for the stamped values, which
// proves the -X flags name the variables that the binary prints.
func checkVersion(t *testing.T, bin, version, commit string) {
	t.Helper()
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, out)
	}
	for _, want := range []string{version, commit} {
		if !strings.Contains(string(out), want) {
			t.Errorf("`extagram version` printed %q, want it to contain %q", out, want)
		}
	}
}

// TestDockerfileBuildIsStatic builds ./cmd/extagram with deploy/build.sh,
// the script the Dockerfile runs, and checks the result can run alone in
// the distroless/static final stage, which has no C library and no loader.
func TestDockerfileBuildIsStatic(t *testing.T) {
	stages := parseDockerfile(t, readFile(t, repoRoot+"/Dockerfile"))
	var user string
	for _, in := range stages[len(stages)-1] {
		if in.Cmd == "USER" {
			user = in.Args
		}
	}
	if !nonRootUser(user) {
		t.Errorf("the final stage's USER is %q, want a numeric non-zero uid or nonroot", user)
	}

	list := exec.Command("go", "list", "./cmd/extagram")
	list.Dir = repoRoot
	if out, err := list.CombinedOutput(); err != nil {
		skipOrFail(t, "./cmd/extagram does not build yet: %v\n%s", err, out)
	}
	if testing.Short() {
		t.Skip("builds the whole binary")
	}
	const version, commit = "v0.0.0-deploytest", "c0ffee1"
	bin := filepath.Join(t.TempDir(), "extagram")
	script, err := filepath.Abs("build.sh")
	if err != nil {
		t.Fatal(err)
	}
	buildLikeImage(t, script, bin, version, commit)
	checkStatic(t, bin)
	checkVersion(t, bin, version, commit)
}

// dockerignored reports whether a .dockerignore pattern list excludes path
// (the subset of Docker's syntax used here: plain names, globs, a leading
// "**/", "!" exceptions; a pattern also excludes everything under a match).
func dockerignored(patterns []string, path string) bool {
	ignored := false
	for _, p := range patterns {
		negate := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		if matchDockerignore(p, path) {
			ignored = !negate
		}
	}
	return ignored
}

func matchDockerignore(pattern, path string) bool {
	parts := strings.Split(path, "/")
	for i := 1; i <= len(parts); i++ {
		prefix := strings.Join(parts[:i], "/")
		if rest, ok := strings.CutPrefix(pattern, "**/"); ok {
			for j := 0; j < i; j++ {
				if m, _ := filepath.Match(rest, strings.Join(parts[j:i], "/")); m {
					return true
				}
			}
			continue
		}
		if m, _ := filepath.Match(pattern, prefix); m {
			return true
		}
	}
	return false
}

// The build context keeps what the build needs and drops secrets and
// local state.
func TestDockerignore(t *testing.T) {
	var patterns []string
	for _, line := range strings.Split(string(readFile(t, repoRoot+"/.dockerignore")), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, strings.TrimPrefix(line, "/"))
		}
	}
	for _, p := range []string{".git/config", ".env", ".env.local", "data/extagram.db", "edge/testdata/server.key", "certs/tls.pem", ".bin/buf", "deploy/kubernetes/secret.local.yaml"} {
		if !dockerignored(patterns, p) {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
	for _, p := range []string{"go.mod", "go.sum", "deploy/build.sh", "cmd/extagram/main.go", "edge/web/static/style.css", "store/migrations/mysql/00001_posts_images.sql", "gen/extagram/feed/v1/feed_service.pb.go"} {
		if dockerignored(patterns, p) {
			t.Errorf(".dockerignore drops %s, which the build needs", p)
		}
	}
}
