package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

var urlRE = regexp.MustCompile(`Open (https://127\.0\.0\.1:\d+)/`)
var grpcRE = regexp.MustCompile(`(feed-1|upload|blob)\s+grpc://(127\.0\.0\.1:\d+)`)

// runCmd runs the extagram command line with args and returns its exit code and output.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestUp runs the whole site in one process, posts through it, and checks the services with the health
// subcommand over mutual TLS (plaintext and TLS without a client certificate are refused).
func TestUp(t *testing.T) {
	dataDir := t.TempDir()
	base, stdout, stderr := startUp(t, dataDir)
	for _, want := range []string{"feed-1", "feed-2", "upload", "blob", "edge", "grpcurl -cacert " + filepath.Join(dataDir, "mesh", "ca.pem")} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("up does not print %q (the addresses, the grpcurl command with the operator's certificate):\n%s", want, stdout.String())
		}
	}
	// The upload's request id is in the edge's access log line and in the upload service's line about the post.
	id := uploadWhenReady(t, base, "posted through up", nil).Header.Get("X-Request-Id")
	logged := func(parts ...string) bool {
		for line := range strings.Lines(stderr.String()) {
			all := strings.Contains(line, " request_id="+id)
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return true
			}
		}
		return false
	}
	if id == "" || !testutil.Within(5*time.Second, func() bool {
		return logged("msg=request", "method=POST", "path=/upload.php", "status=303", "duration=") && logged(`msg="post created"`, "service=upload")
	}) {
		t.Fatalf("the upload's request id %q is not in the edge's access log and the upload service's log:\n%s", id, stderr.String())
	}
	// A client's valid id is kept, an invalid one replaced.
	for sent, kept := range map[string]bool{"client-id-1.2_3": true, "id with spaces and (punctuation)": false, strings.Repeat("x", 65): false} {
		req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
		req.Header.Set("X-Request-Id", sent)
		r, err := insecureClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if got := r.Header.Get("X-Request-Id"); (got == sent) != kept || got == "" {
			t.Errorf("X-Request-Id %q answered with %q", sent, got)
		}
		if !strings.Contains(string(page), "posted through up") {
			t.Fatalf("the feed does not show the post:\n%s", page)
		}
	}

	for _, m := range grpcRE.FindAllStringSubmatch(stdout.String(), -1) {
		if code, out, errOut := runCmd(t, "health", "--grpc-addr", m[2], "--data-dir", dataDir); code != 0 || !strings.Contains(out, "SERVING") {
			t.Errorf("health of %s (%s): exit %d, %q %q", m[1], m[2], code, out, errOut)
		}
		for name, creds := range map[string]credentials.TransportCredentials{ // grpcurl -plaintext and -insecure
			"plaintext":                 insecure.NewCredentials(),
			"TLS without a certificate": credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}), //nolint:gosec // as grpcurl -insecure
		} {
			cc, err := grpc.NewClient("passthrough:///"+m[2], grpc.WithTransportCredentials(creds))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			if _, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
				t.Errorf("%s (%s) answered a client with %s", m[1], m[2], name)
			}
			cancel()
			cc.Close()
		}
	}
	if code, _, errOut := runCmd(t, "health", "--url", base+"/healthz", "--insecure"); code != 0 {
		t.Errorf("health --url: exit %d %s", code, errOut)
	}
}

// TestCommands: exit codes and output of the subcommands that need no site. A role without mesh certificates
// names the command that makes them; certs makes them once and keeps them.
func TestCommands(t *testing.T) {
	dir := t.TempDir()
	mesh := filepath.Join(dir, "mesh")
	for _, c := range []struct {
		args []string
		code int
		ok   func(stdout, stderr string) bool
	}{
		{[]string{"version"}, 0, func(out, _ string) bool { return strings.HasPrefix(out, "extagram ") }},
		{[]string{"frobnicate"}, 2, nil},
		{nil, 2, nil},
		{[]string{"health"}, 2, nil}, // no target
		{[]string{"health", "--grpc-addr", "127.0.0.1:1", "--timeout", "1s"}, 1, nil},
		{[]string{"feed", "--data-dir", dir, "--grpc-addr", "127.0.0.1:0"}, 1, func(_, errOut string) bool { return strings.Contains(errOut, "extagram certs --dir "+mesh) }},
		{[]string{"certs", "--dir", mesh}, 0, func(out, _ string) bool { return strings.Count(out, "wrote ") == 12 }},
		{[]string{"certs", "--dir", mesh}, 0, func(out, _ string) bool { return !strings.Contains(out, "wrote ") }},
	} {
		if code, out, errOut := runCmd(t, c.args...); code != c.code || (c.ok != nil && !c.ok(out, errOut)) {
			t.Fatalf("extagram %q: exit %d, want %d:\n%s%s", c.args, code, c.code, out, errOut)
		}
	}
}

func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("EXTAGRAM_FEED_TARGET", "dns:///feed:50051")
	t.Setenv("EXTAGRAM_DRAIN_PERIOD", "7s")
	fs := newFlagSet("edge", "", io.Discard)
	target, drain := fs.String("feed-target", "x", ""), fs.Duration("drain-period", time.Second, "")
	upload := fs.String("upload-target", "u", "")
	if err := parse(fs, []string{"--upload-target", "10.0.0.1:1"}); err != nil || *target != "dns:///feed:50051" || *drain != 7*time.Second || *upload != "10.0.0.1:1" {
		t.Fatalf("got %q %v %q (%v)", *target, *drain, *upload, err)
	}
	// A flag on the command line beats the environment.
	if err := parse(fs, []string{"--feed-target", "127.0.0.1:1"}); err != nil || *target != "127.0.0.1:1" {
		t.Fatalf("command line did not win: %q %v", *target, err)
	}
	t.Setenv("EXTAGRAM_DRAIN_PERIOD", "soon")
	fs = newFlagSet("x", "", io.Discard)
	fs.Duration("drain-period", time.Second, "")
	if err := parse(fs, nil); err == nil || !strings.Contains(err.Error(), "EXTAGRAM_DRAIN_PERIOD") {
		t.Fatalf("bad environment value: %v", err)
	}
}
