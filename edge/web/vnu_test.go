package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/testutil"
)

// defaultVNUJar is where `npm install --prefix /opt/extagram-tools vnu-jar`
// puts the Nu Html Checker.
const defaultVNUJar = "/opt/extagram-tools/node_modules/vnu-jar/build/dist/vnu.jar"

func vnuCommand(t *testing.T) (java, jar string) {
	t.Helper()
	jar = os.Getenv("EXTAGRAM_VNU_JAR")
	if jar != "" {
		if _, err := os.Stat(jar); err != nil {
			t.Fatalf("EXTAGRAM_VNU_JAR: %v", err)
		}
	} else if _, err := os.Stat(defaultVNUJar); err == nil {
		jar = defaultVNUJar
	} else {
		testutil.NeedTool(t, "Nu Html Checker not found: install it with `npm install --prefix /opt/extagram-tools vnu-jar` or set EXTAGRAM_VNU_JAR to vnu.jar")
	}
	java, err := exec.LookPath("java")
	if err != nil {
		testutil.NeedTool(t, "java not found (the Nu Html Checker needs Java 11 or later): %v", err)
	}
	return java, jar
}

type vnuMessage struct {
	Type     string `json:"type"`
	SubType  string `json:"subType"`
	URL      string `json:"url"`
	LastLine int    `json:"lastLine"`
	Message  string `json:"message"`
	Extract  string `json:"extract"`
}

// runVNU checks files with vnu and returns its error messages. vnu writes its
// JSON report to stderr and exits 1 when it found errors.
func runVNU(t *testing.T, extra []string, files ...string) []vnuMessage {
	t.Helper()
	java, jar := vnuCommand(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	args := append([]string{"-jar", jar, "--errors-only", "--format", "json"}, extra...)
	cmd := exec.CommandContext(ctx, java, append(args, files...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		t.Fatalf("vnu: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	var report struct {
		Messages []vnuMessage `json:"messages"`
	}
	if jerr := json.Unmarshal(stderr.Bytes(), &report); jerr != nil {
		t.Fatalf("vnu report: %v\nstdout: %s\nstderr: %s", jerr, stdout.String(), stderr.String())
	}
	if err != nil && len(report.Messages) == 0 {
		t.Fatalf("vnu failed with no message: %v", err)
	}
	return report.Messages
}

func TestHTMLValidWithVNU(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	feeds := sampleFeeds()
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range feeds {
			if !yield(n) {
				return
			}
		}
	})
	var files []string
	for _, name := range names {
		var buf bytes.Buffer
		if err := RenderFeed(&buf, feeds[name]); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, name+".html")
		if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	msgs := runVNU(t, nil, files...)
	for _, m := range msgs {
		t.Errorf("%s:%d: %s %s: %s\n\t%s", filepath.Base(m.URL), m.LastLine, m.Type, m.SubType, m.Message, m.Extract)
	}
	if len(msgs) == 0 {
		t.Logf("vnu: no errors in %d pages", len(files))
	}
}

func TestCSSValidWithVNU(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "style.css")
	if err := os.WriteFile(f, assets()["style.css"].body, 0o644); err != nil {
		t.Fatal(err)
	}
	msgs := runVNU(t, []string{"--css"}, f)
	for _, m := range msgs {
		t.Errorf("style.css:%d: %s: %s\n\t%s", m.LastLine, m.Type, m.Message, m.Extract)
	}
}

func TestSVGValidWithVNU(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var files []string
	for _, name := range []string{"preview.svg", "favicon.svg"} {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, assets()[name].body, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	msgs := runVNU(t, []string{"--svg"}, files...)
	for _, m := range msgs {
		t.Errorf("%s:%d: %s: %s", filepath.Base(m.URL), m.LastLine, m.Type, m.Message)
	}
}
