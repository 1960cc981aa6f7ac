package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/testutil"
)

// TestValidWithVNU checks the sample pages, style.css and the SVGs with the
// Nu Html Checker (EXTAGRAM_VNU_JAR, else where `npm install --prefix
// /opt/extagram-tools vnu-jar` puts it), in one Java run.
func TestValidWithVNU(t *testing.T) {
	t.Parallel()
	jar := os.Getenv("EXTAGRAM_VNU_JAR")
	if jar == "" {
		jar = "/opt/extagram-tools/node_modules/vnu-jar/build/dist/vnu.jar"
	}
	if _, err := os.Stat(jar); err != nil {
		if os.Getenv("EXTAGRAM_VNU_JAR") != "" {
			t.Fatalf("EXTAGRAM_VNU_JAR: %v", err)
		}
		testutil.NeedTool(t, "Nu Html Checker not found: install it with `npm install --prefix /opt/extagram-tools vnu-jar` or set EXTAGRAM_VNU_JAR to vnu.jar")
	}
	java, err := exec.LookPath("java")
	if err != nil {
		testutil.NeedTool(t, "java not found (the Nu Html Checker needs Java 11 or later): %v", err)
	}
	dir := t.TempDir()
	files := map[string][]byte{}
	for name, f := range sampleFeeds() {
		files[name+".html"] = []byte(render(t, f))
	}
	for _, name := range []string{"style.css", "preview.svg", "favicon.svg"} {
		files[name] = assets()[name].body
	}
	args := []string{"-jar", jar, "--errors-only", "--format", "json", "--also-check-css", "--also-check-svg"}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, filepath.Join(dir, name))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	// vnu writes its JSON report to stderr and exits 1 when it found errors.
	cmd := exec.CommandContext(ctx, java, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		t.Fatalf("vnu: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	var report struct {
		Messages []struct {
			Type, SubType, URL, Message, Extract string
			LastLine                             int
		}
	}
	if jerr := json.Unmarshal(stderr.Bytes(), &report); jerr != nil {
		t.Fatalf("vnu report: %v\nstdout: %s\nstderr: %s", jerr, stdout.String(), stderr.String())
	}
	if err != nil && len(report.Messages) == 0 {
		t.Fatalf("vnu failed with no message: %v", err)
	}
	for _, m := range report.Messages {
		t.Errorf("%s:%d: %s %s: %s\n\t%s", filepath.Base(m.URL), m.LastLine, m.Type, m.SubType, m.Message, m.Extract)
	}
	t.Logf("vnu: %d errors in %d files", len(report.Messages), len(files))
}
