package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
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

// TestUp runs the whole site in one process on ephemeral ports, posts
// through it, checks the services with the health subcommand (over mutual
// TLS, with the certificates up made; plaintext and TLS without a client
// certificate are refused), and stops it as SIGTERM would.
func TestUp(t *testing.T) {
	dataDir := t.TempDir()
	base, stdout, stderr := startUp(t, dataDir)
	for _, want := range []string{"feed-1", "feed-2", "upload", "blob", "edge"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("up does not print the %s address:\n%s", want, stdout.String())
		}
	}
	client := insecureClient
	resp := uploadWhenReady(t, base, "posted through up", nil)
	// The upload's request id is in the edge's access log line and in
	// the upload service's line about the post.
	id := resp.Header.Get("X-Request-Id")
	if id == "" {
		t.Fatal("the upload's answer has no X-Request-Id")
	}
	logged := func(id string, parts ...string) bool {
		for line := range strings.Lines(stderr.String()) {
			if !strings.Contains(line, " request_id="+id) {
				continue
			}
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return true
			}
		}
		return false
	}
	if !testutil.Within(5*time.Second, func() bool {
		return logged(id, "msg=request", "method=POST", "path=/upload.php", "status=303", "duration=") &&
			logged(id, `msg="post created"`, "service=upload")
	}) {
		t.Fatalf("the upload's request id %s is not in the edge's access log and the upload service's log:\n%s", id, stderr.String())
	}

	// A client's valid id is kept, an invalid one replaced.
	for sent, kept := range map[string]bool{"client-id-1.2_3": true, "id with spaces and (punctuation)": false, strings.Repeat("x", 65): false} {
		req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
		req.Header.Set("X-Request-Id", sent)
		r, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if got := r.Header.Get("X-Request-Id"); (got == sent) != kept || got == "" {
			t.Errorf("X-Request-Id %q answered with %q", sent, got)
		}
	}
	resp, err := client.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "posted through up") {
		t.Fatalf("the feed does not show the post:\n%s", page)
	}

	if !strings.Contains(stdout.String(), "grpcurl -cacert "+filepath.Join(dataDir, "mesh", "ca.pem")) {
		t.Errorf("up does not print the grpcurl command with the operator's certificate:\n%s", stdout.String())
	}
	for _, m := range grpcRE.FindAllStringSubmatch(stdout.String(), -1) {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"health", "--grpc-addr", m[2], "--data-dir", dataDir}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "SERVING") {
			t.Errorf("health of %s (%s): exit %d, %q %q", m[1], m[2], code, out.String(), errOut.String())
		}
		// grpcurl -plaintext, and grpcurl -insecure (TLS without a client
		// certificate): refused.
		for name, creds := range map[string]credentials.TransportCredentials{
			"plaintext":                 insecure.NewCredentials(),
			"TLS without a certificate": credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}), //nolint:gosec // as grpcurl -insecure
		} {
			cc, err := grpc.NewClient("passthrough:///"+m[2], grpc.WithTransportCredentials(creds))
			if err != nil {
				t.Fatal(err)
			}
			hctx, hcancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = healthpb.NewHealthClient(cc).Check(hctx, &healthpb.HealthCheckRequest{})
			hcancel()
			cc.Close()
			if err == nil {
				t.Errorf("%s (%s) answered a client with %s", m[1], m[2], name)
			}
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"health", "--url", base + "/healthz", "--insecure"}, &out, &errOut); code != 0 {
		t.Errorf("health --url: exit %d %s", code, errOut.String())
	}
}

func TestHealthFailsWhenNothingListens(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"health", "--grpc-addr", "127.0.0.1:1", "--timeout", "1s"}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if code := run(context.Background(), []string{"health"}, &out, &errOut); code != 2 {
		t.Fatalf("no target: exit %d, want 2", code)
	}
}

func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("EXTAGRAM_FEED_TARGET", "dns:///feed:50051")
	t.Setenv("EXTAGRAM_DRAIN_PERIOD", "7s")
	fs := newFlagSet("edge", "", io.Discard)
	target := fs.String("feed-target", "x", "")
	drain := fs.Duration("drain-period", time.Second, "")
	upload := fs.String("upload-target", "u", "")
	if err := parse(fs, []string{"--upload-target", "10.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	if *target != "dns:///feed:50051" || *drain != 7*time.Second || *upload != "10.0.0.1:1" {
		t.Fatalf("got %q %v %q", *target, *drain, *upload)
	}
	// A flag on the command line beats the environment.
	if err := parse(fs, []string{"--feed-target", "127.0.0.1:1"}); err != nil || *target != "127.0.0.1:1" {
		t.Fatalf("command line did not win: %q %v", *target, err)
	}
	t.Setenv("EXTAGRAM_DRAIN_PERIOD", "soon")
	if err := parse(newFlagSetWith(t), nil); err == nil || !strings.Contains(err.Error(), "EXTAGRAM_DRAIN_PERIOD") {
		t.Fatalf("bad environment value: %v", err)
	}
}

func newFlagSetWith(t *testing.T) *flag.FlagSet {
	fs := newFlagSet("x", "", io.Discard)
	fs.Duration("drain-period", time.Second, "")
	return fs
}

func TestVersionAndUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "extagram ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errOut); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
	if code := run(context.Background(), nil, &out, &errOut); code != 2 {
		t.Fatalf("no command: exit %d", code)
	}
}

// TestCertsAndRefusalWithoutThem: a role without mesh certificates refuses
// to start and names the command that makes them; certs makes them once
// and keeps them after.
func TestCertsAndRefusalWithoutThem(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"feed", "--data-dir", dir, "--grpc-addr", "127.0.0.1:0"}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "extagram certs --dir "+filepath.Join(dir, "mesh")) {
		t.Fatalf("feed without certificates: exit %d, %q", code, errOut.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"certs", "--dir", filepath.Join(dir, "mesh")}, &out, &errOut); code != 0 || strings.Count(out.String(), "wrote ") != 12 {
		t.Fatalf("certs: exit %d:\n%s", code, out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"certs", "--dir", filepath.Join(dir, "mesh")}, &out, &errOut); code != 0 || strings.Contains(out.String(), "wrote ") {
		t.Fatalf("certs again: exit %d:\n%s", code, out.String())
	}
}
