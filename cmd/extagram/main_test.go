package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/telegram/telegramtest"
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

// TestUp runs the whole site in one process with Telegram configured
// (`up --telegram-token T --telegram-chat 42 --telegram-api-url URL
// --telegram-allowed-chats 7`, debug logging), posts through it, and checks
// the services with the health subcommand over mutual TLS (plaintext and TLS
// without a client certificate are refused). Uploads are announced within
// 5 s, a photo from chat 7 becomes a post within 10 s, and the token is
// never logged, whatever fails.
func TestUp(t *testing.T) {
	const token = "987654321:SECRET-bot-token_xyz"
	tg := telegramtest.Start(t, token)
	dataDir := t.TempDir()
	base, stdout, stderr := startUp(t, dataDir, "--log-level", "debug", "--telegram-token", token, "--telegram-chat", "42",
		"--telegram-api-url", tg.URL, "--telegram-allowed-chats", "7")
	for _, want := range []string{"feed-1", "feed-2", "upload", "blob", "edge", "grpcurl -cacert " + filepath.Join(dataDir, "mesh", "ca.pem")} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("up does not print %q (the addresses, the grpcurl command with the operator's certificate):\n%s", want, stdout.String())
		}
	}
	wait := func(d time.Duration, what string, cond func() bool) {
		t.Helper()
		if !testutil.Within(d, cond) {
			t.Fatalf("%s within %s; sent %+v; stderr:\n%s", what, d, tg.Sent(), stderr.String())
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
	wait(5*time.Second, "the upload's request id "+id+" not in the edge's access log and the upload service's log", func() bool {
		return id != "" && logged("msg=request", "method=POST", "path=/upload.php", "status=303", "duration=") && logged(`msg="post created"`, "service=upload")
	})
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

	sent := func(ok func(c telegramtest.Call) bool) func() bool {
		return func() bool { return slices.ContainsFunc(tg.Sent(), ok) }
	}
	uploadWhenReady(t, base, "announced from up", testutil.PNG(t, 16, 12))
	wait(5*time.Second, "no announcement", sent(func(c telegramtest.Call) bool {
		return c.Method == "sendPhoto" && c.Params["chat_id"] == "42" && strings.HasPrefix(c.Params["caption"], "announced from up\n\n"+base+"/posts/")
	}))
	tg.UserPhoto(7, 7, testutil.PNG(t, 16, 12), "sent from chat 7")
	wait(10*time.Second, "the photo from chat 7 not in the feed", func() bool {
		resp, err := insecureClient.Get(base + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		page, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(page), "sent from chat 7")
	})
	wait(5*time.Second, "no reply with the post's link to chat 7", sent(func(c telegramtest.Call) bool {
		return c.Params["chat_id"] == "7" && strings.HasPrefix(c.Params["text"], "Posted: "+base+"/posts/") && strings.Contains(c.Params["reply_parameters"], `"message_id":`)
	}))

	tg.SetFault("sendPhoto", telegramtest.Fault{Status: 500})
	tg.SetFault("getUpdates", telegramtest.Fault{Status: 502})
	tg.SetFault("file", telegramtest.Fault{Drop: true})
	photos := len(tg.Calls("sendPhoto"))
	uploadWhenReady(t, base, "fails to announce", testutil.PNG(t, 16, 12))
	wait(10*time.Second, "no failed announcement", func() bool { return len(tg.Calls("sendPhoto")) >= photos+2 })
	if !strings.Contains(stderr.String(), "announcement not sent") {
		t.Errorf("no failed send logged:\n%s", stderr.String())
	}
	tg.SetFault("getUpdates", telegramtest.Fault{})
	files, replies := len(tg.Calls("file")), len(tg.Sent())
	tg.UserPhoto(7, 7, testutil.PNG(t, 16, 12), "cannot be fetched")
	wait(10*time.Second, "the failed download was not answered", func() bool {
		return len(tg.Calls("file")) > files && len(tg.Sent()) > replies
	})
	// Connections dropped: the poll's errors (after the update that ends
	// the poll in flight) and the reply's are logged.
	polls := len(tg.Calls("getUpdates"))
	tg.SetFault("", telegramtest.Fault{Drop: true})
	tg.UserText(7, 7, "/help")
	wait(10*time.Second, "no poll after the drop", func() bool { return len(tg.Calls("getUpdates")) >= polls+2 })
	for _, out := range []string{stdout.String(), stderr.String()} {
		if strings.Contains(out, token) || strings.Contains(out, "SECRET-bot") {
			t.Fatalf("the token is in the output:\n%s", out)
		}
	}
}

// startUp runs `extagram up` with args on ephemeral ports until the test
// ends, and returns its base URL and its output.
func startUp(t *testing.T, dataDir string, args ...string) (base string, stdout, stderr *testutil.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr = &testutil.Buffer{}, &testutil.Buffer{}
	done := make(chan int, 1)
	all := append([]string{"up", "--data-dir", dataDir, "--https-addr", "127.0.0.1:0",
		"--feed-addrs", "127.0.0.1:0,127.0.0.1:0", "--upload-addr", "127.0.0.1:0", "--blob-addr", "127.0.0.1:0",
		"--drain-period", "0s"}, args...)
	go func() { done <- run(ctx, all, stdout, stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("up exited %d; stderr:\n%s", code, stderr.String())
			}
		case <-time.After(20 * time.Second):
			t.Error("up did not stop after its context ended")
		}
	})
	if !testutil.Within(20*time.Second, func() bool { return urlRE.MatchString(stdout.String()) }) {
		t.Fatalf("up printed no URL; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	return urlRE.FindStringSubmatch(stdout.String())[1], stdout, stderr
}

var insecureClient = &http.Client{
	Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // up's self-signed certificate
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       30 * time.Second,
}

// uploadWhenReady posts through the web form (a photo if there is one),
// trying again while the services are not serving yet (503, after their
// first store check); the answer must be 303.
func uploadWhenReady(t *testing.T, base, text string, photo []byte) (resp *http.Response) {
	t.Helper()
	var f *testutil.File
	if photo != nil {
		f = testutil.Photo("p.png", "image/png", photo)
	}
	body, ct := testutil.Form(t, [][2]string{{"post", text}}, f)
	var err error
	testutil.Within(10*time.Second, func() bool {
		if resp, err = insecureClient.Post(base+"/upload.php", ct, bytes.NewReader(body)); err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode != http.StatusServiceUnavailable
	})
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("upload: %v %v, want 303", resp, err)
	}
	return resp
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
		// Malformed Telegram settings stop up before it starts.
		{[]string{"up", "--data-dir", dir, "--telegram-token", "a/b"}, 2, nil},
		{[]string{"up", "--data-dir", dir, "--telegram-token", "T", "--telegram-chat", "wall"}, 2, nil},
		{[]string{"up", "--data-dir", dir, "--telegram-token", "T", "--telegram-allowed-chats", "7,@x"}, 2, nil},
		{[]string{"up", "--data-dir", dir, "--telegram-token", "T", "--telegram-api-url", "api.telegram.org"}, 2, nil},
		{[]string{"up", "--data-dir", dir, "--telegram-token", "T", "--public-url", "ftp://x"}, 2, nil},
		{[]string{"up", "--data-dir", dir, "--telegram-token", "T", "--telegram-webhook-secret", "has space"}, 2, nil},
		{[]string{"upload", "--telegram-chat", "42"}, 1, func(_, errOut string) bool { return strings.Contains(errOut, "not defined") }},
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
