package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/telegram/telegramtest"
	"github.com/extagram/extagram/internal/testutil"
)

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

// The issue's command (`up --telegram-token T --telegram-chat 42
// --telegram-api-url URL --telegram-allowed-chats 7`, debug logging)
// announces an upload within 5 s, turns a photo from chat 7 into a post
// within 10 s, and never logs the token, whatever fails.
func TestUpWithTelegram(t *testing.T) {
	const token = "987654321:SECRET-bot-token_xyz"
	tg := telegramtest.Start(t, token)
	base, stdout, stderr := startUp(t, t.TempDir(), "--log-level", "debug", "--telegram-token", token, "--telegram-chat", "42",
		"--telegram-api-url", tg.URL, "--telegram-allowed-chats", "7")
	wait := func(d time.Duration, what string, cond func() bool) {
		t.Helper()
		if !testutil.Within(d, cond) {
			t.Fatalf("%s within %s; sent %+v; stderr:\n%s", what, d, tg.Sent(), stderr.String())
		}
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

// Malformed Telegram settings stop the command before it starts.
func TestTelegramFlagsChecked(t *testing.T) {
	for _, args := range [][]string{
		{"--telegram-token", "a/b"},
		{"--telegram-token", "T", "--telegram-chat", "wall"},
		{"--telegram-token", "T", "--telegram-allowed-chats", "7,@x"},
		{"--telegram-token", "T", "--telegram-api-url", "api.telegram.org"},
		{"--telegram-token", "T", "--public-url", "ftp://x"},
		{"--telegram-token", "T", "--telegram-webhook-secret", "has space"},
	} {
		if code, _, errOut := runCmd(t, append([]string{"up", "--data-dir", t.TempDir()}, args...)...); code != 2 {
			t.Errorf("up %v: exit %d, want 2 (%s)", args, code, errOut)
		}
	}
	if code, _, errOut := runCmd(t, "upload", "--telegram-chat", "42"); code == 0 || !strings.Contains(errOut, "not defined") {
		t.Errorf("upload takes --telegram-chat: exit %d %s", code, errOut)
	}
}
