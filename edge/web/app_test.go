package web

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/testutil"
)

// TestAppJS runs static/app.js in Node against a small fake DOM
// (testdata/app_harness.js): preview, remove, one post per click, bfcache.
func TestAppJS(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		testutil.NeedTool(t, "node not found, app.js behaviour not checked: %v", err)
	}
	f := filepath.Join(t.TempDir(), "app.js")
	if err := os.WriteFile(f, assets()["app.js"].body, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "testdata/app_harness.js", f).CombinedOutput()
	if err != nil {
		t.Fatalf("app.js: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
