package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// composeTools returns the Compose implementations found: the docker CLI's
// plugin (Compose v2) and Debian's docker-compose (1.29). `config` only
// parses and validates; neither needs a Docker engine.
func composeTools() map[string][]string {
	tools := map[string][]string{}
	if path, err := exec.LookPath("docker"); err == nil {
		if exec.Command(path, "compose", "version").Run() == nil {
			tools["docker compose"] = []string{path, "compose"}
		}
	}
	if path, err := exec.LookPath("docker-compose"); err == nil {
		tools["docker-compose"] = []string{path}
	}
	return tools
}

// composeEnv is the test's environment without any variable that the
// Compose file reads, so only the given env file sets them.
func composeEnv(t *testing.T) []string {
	t.Helper()
	_, raw := loadCompose(t)
	drop := map[string]bool{}
	for _, r := range refs(stripComments(raw)) {
		drop[r.Name] = true
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] && !strings.HasPrefix(k, "COMPOSE_") {
			env = append(env, kv)
		}
	}
	return env
}

func runCompose(t *testing.T, tool []string, envFile string, args ...string) (string, error) {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	argv := append(slices.Clone(tool[1:]),
		"--project-directory", root,
		"--env-file", envFile,
		"-f", filepath.Join(root, "docker-compose.yml"))
	argv = append(argv, args...)
	cmd := exec.Command(tool[0], argv...)
	cmd.Env = composeEnv(t)
	cmd.Dir = t.TempDir()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err
}

// TestComposeConfig has Compose itself parse and validate docker-compose.yml
// with a .env made from .env.example, and checks that without it Compose
// refuses to run (every password is a required variable).
//
// CI installs Debian's docker-compose (apt-get install -y
// --no-install-recommends docker-compose); elsewhere the test is skipped when
// no Compose is found.
func TestComposeConfig(t *testing.T) {
	tools := composeTools()
	if len(tools) == 0 {
		skipOrFail(t, "neither `docker compose` nor `docker-compose` found; install one with: apt-get install -y --no-install-recommends docker-compose")
	}
	c, _ := loadCompose(t)
	var names []string
	for name := range c.Services {
		names = append(names, name)
	}
	slices.Sort(names)

	dir := t.TempDir()
	filled := filepath.Join(dir, ".env")
	if err := os.WriteFile(filled, readFile(t, repoRoot+"/.env.example"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.env")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	for label, tool := range tools {
		t.Run(strings.ReplaceAll(label, " ", "_"), func(t *testing.T) {
			if out, err := runCompose(t, tool, filled, "config", "-q"); err != nil {
				t.Fatalf("%s config -q: %v\n%s", label, err, out)
			}
			out, err := runCompose(t, tool, filled, "config", "--services")
			if err != nil {
				t.Fatalf("%s config --services: %v\n%s", label, err, out)
			}
			got := strings.Fields(out)
			slices.Sort(got)
			if !slices.Equal(got, names) {
				t.Errorf("%s sees services %v, the YAML has %v", label, got, names)
			}
			out, err = runCompose(t, tool, empty, "config", "-q")
			if err == nil {
				t.Errorf("%s accepted the file without .env: some password has a default", label)
			} else if !strings.Contains(out, "PASSWORD") {
				t.Errorf("%s failed without .env, but not for a missing password:\n%s", label, out)
			}
		})
	}
}
