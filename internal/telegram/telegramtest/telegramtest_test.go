package telegramtest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/telegram"
	"github.com/extagram/extagram/internal/telegram/telegramtest"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
)

const token = "123456:TEST-token_abc"

func ctx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// The methods through the bot client, and through callers that send JSON
// (Alertmanager's Telegram receiver does) or URL-encoded forms; webhooks;
// faults.
func TestMethods(t *testing.T) {
	t.Parallel()
	s := telegramtest.Start(t, token)
	c, err := telegram.New(telegram.Config{Token: token, APIURL: s.URL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	me, err := c.GetMe(ctx(t, 5*time.Second))
	if err != nil || !me.IsBot || me.Username == "" {
		t.Fatalf("getMe: %+v %v", me, err)
	}
	m, err := c.SendMessage(ctx(t, 5*time.Second), &bot.SendMessageParams{ChatID: int64(42), Text: "hello"})
	if err != nil || m.ID != 1 || m.Chat.ID != 42 || m.Text != "hello" {
		t.Fatalf("sendMessage: %+v %v", m, err)
	}
	photo := testutil.PNG(t, 4, 3)
	upload := func(chat any, caption string) (*models.Message, error) {
		return c.SendPhoto(ctx(t, 5*time.Second), &bot.SendPhotoParams{ChatID: chat, Caption: caption,
			Photo: &models.InputFileUpload{Filename: "p.png", Data: bytes.NewReader(photo)}})
	}
	p, err := upload(int64(43), "a caption")
	if err != nil || p.ID != 1 || p.Caption != "a caption" || len(p.Photo) == 0 || p.Chat.ID != 43 {
		t.Fatalf("sendPhoto: %+v %v", p, err)
	}
	if _, err := upload(int64(42), strings.Repeat("x", 1025)); !errors.Is(err, bot.ErrorBadRequest) {
		t.Errorf("caption of 1025: %v, want Bad Request", err)
	}
	// With a webhook set, updates are POSTed to it with the secret, until
	// it answers 2xx; getUpdates is refused meanwhile, the rest works.
	var posts atomic.Int32
	got := make(chan string, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if posts.Add(1) == 1 {
			http.Error(w, "later", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		got <- r.Header.Get("X-Telegram-Bot-Api-Secret-Token") + " " + string(b)
	}))
	t.Cleanup(hook.Close)
	if ok, err := c.SetWebhook(ctx(t, 5*time.Second), &bot.SetWebhookParams{URL: hook.URL + "/telegram/webhook", SecretToken: "s3cret"}); !ok || err != nil {
		t.Fatalf("setWebhook: %v %v", ok, err)
	}
	if u, sec := s.Webhook(); u != hook.URL+"/telegram/webhook" || sec != "s3cret" {
		t.Errorf("webhook %q %q", u, sec)
	}
	s.UserText(9, 9, "/start")
	var g string
	select {
	case g = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no update delivered to the webhook")
	}
	if !strings.HasPrefix(g, "s3cret {") || !strings.Contains(g, `"text":"/start"`) || posts.Load() != 2 {
		t.Errorf("webhook got %q after %d posts, want it after one failure", g, posts.Load())
	}
	for _, r := range []struct {
		path, contentType, body string
		want                    int
	}{
		{"/bot" + token + "/sendMessage", "application/json", `{"chat_id": -1001234, "text": "<b>alert</b>", "parse_mode": "HTML", "disable_notification": false}`, 200},
		{"/bot" + token + "/sendMessage", "application/x-www-form-urlencoded", "chat_id=5&text=form", 200},
		{"/botWRONG/getMe", "", "", http.StatusUnauthorized},
		{"/bot" + token + "/noSuchMethod", "", "", http.StatusNotFound},
		{"/bot" + token + "/getUpdates", "", "", http.StatusConflict},
	} {
		resp, err := http.Post(s.URL+r.path, r.contentType, strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != r.want || r.want == 200 && !strings.Contains(string(body), `"ok":true,"result":{"message_id":1,`) {
			t.Errorf("%s %s: %d %s, want %d", r.path, r.body, resp.StatusCode, body, r.want)
		}
	}
	if ok, err := c.DeleteWebhook(ctx(t, 5*time.Second), &bot.DeleteWebhookParams{}); !ok || err != nil {
		t.Fatalf("deleteWebhook: %v %v", ok, err)
	}
	if u, _ := s.Webhook(); u != "" {
		t.Errorf("webhook still %q", u)
	}
	sent := s.Sent()
	if len(sent) != 4 || len(s.Calls("sendPhoto")) != 2 {
		t.Fatalf("sent %+v, want 4 messages; %d sendPhoto calls, want 2 (the refused one too)", sent, len(s.Calls("sendPhoto")))
	}
	if sent[0].Method != "sendMessage" || sent[0].Params["chat_id"] != "42" || sent[0].Params["text"] != "hello" {
		t.Errorf("first: %+v", sent[0])
	}
	f := sent[1].Files["photo"]
	if sent[1].Method != "sendPhoto" || sent[1].Params["chat_id"] != "43" || !bytes.Equal(f.Data, photo) || f.Name != "p.png" || sent[1].Status != 200 {
		t.Errorf("second: %s %v %q %d bytes, status %d", sent[1].Method, sent[1].Params, f.Name, len(f.Data), sent[1].Status)
	}
	if j, form := sent[2].Params, sent[3].Params; j["chat_id"] != "-1001234" || j["parse_mode"] != "HTML" || j["disable_notification"] != "false" || form["text"] != "form" {
		t.Errorf("JSON %v, form %v", j, form)
	}

	// Files: getFile, then the download, at most limit bytes (refused
	// before the download when the size is known, at its length when not).
	id := s.UserPhoto(9, 9, photo, "").Message.Photo[0].FileID
	file, err := c.GetFile(ctx(t, 5*time.Second), &bot.GetFileParams{FileID: id})
	if err != nil || file.FileSize != int64(len(photo)) || file.FilePath == "" {
		t.Fatalf("getFile: %+v %v", file, err)
	}
	read := func(limit int64) ([]byte, error) {
		body, err := c.Download(ctx(t, 5*time.Second), file, limit)
		if err != nil {
			return nil, err
		}
		defer body.Close()
		return io.ReadAll(body)
	}
	if got, err := read(int64(len(photo))); err != nil || !bytes.Equal(got, photo) {
		t.Fatalf("download: %d bytes, %v", len(got), err)
	}
	if _, err := read(int64(len(photo)) - 1); !errors.Is(err, telegram.ErrFileTooLarge) {
		t.Errorf("known size over the limit: %v", err)
	}
	file.FileSize = 0
	if _, err := read(int64(len(photo)) - 1); !errors.Is(err, telegram.ErrFileTooLarge) {
		t.Errorf("unknown size over the limit: %v", err)
	}
	if _, err := c.GetFile(ctx(t, 5*time.Second), &bot.GetFileParams{FileID: "nope"}); !errors.Is(err, bot.ErrorBadRequest) {
		t.Errorf("unknown file: %v", err)
	}

	// Faults.
	send := func(d time.Duration) func() error {
		return func() error {
			_, err := c.SendMessage(ctx(t, d), &bot.SendMessageParams{ChatID: int64(1), Text: "x"})
			return err
		}
	}
	download := func() error {
		_, err := c.Download(ctx(t, 5*time.Second), &models.File{FilePath: file.FilePath}, 1<<20)
		return err
	}
	noToken := func(err error) bool { return err != nil && !strings.Contains(err.Error(), token) }
	retryAfter7 := func(err error) bool {
		d, ok := telegram.RetryAfter(err)
		return ok && d == 7*time.Second
	}
	type faults map[string]telegramtest.Fault
	for _, tc := range []struct {
		name   string
		faults faults
		call   func() error
		ok     func(error) bool
	}{
		{"429", faults{"sendMessage": {Status: 429, RetryAfter: 7}}, send(5 * time.Second), retryAfter7},
		{"a method's own fault wins", faults{"": {Status: 500}}, send(5 * time.Second), retryAfter7},
		{"500", faults{"sendMessage": {}}, send(5 * time.Second), func(err error) bool { return err != nil && strings.Contains(err.Error(), "500") }},
		{"dropped", faults{"": {Drop: true}}, send(5 * time.Second), noToken},
		{"download dropped", faults{"": {}, "file": {Drop: true}}, download, noToken},
		{"hang", faults{"file": {}, "": {Hang: true}}, send(300 * time.Millisecond), func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
	} {
		for m, f := range tc.faults {
			s.SetFault(m, f)
		}
		if err := tc.call(); !tc.ok(err) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// The call abandoned in a hang is Gone.
	if _, err := s.Wait(ctx(t, 5*time.Second), func(calls []telegramtest.Call) bool { return calls[len(calls)-1].Gone }); err != nil {
		t.Fatal(err)
	}
	// Hang with Deliver: the message is sent, the answer never comes.
	s.SetFault("sendMessage", telegramtest.Fault{Hang: true, Deliver: true})
	before := len(s.Sent())
	if err := send(300 * time.Millisecond)(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hang after delivery: %v", err)
	}
	if after := s.Sent(); len(after) != before+1 || after[len(after)-1].Status != 0 {
		t.Errorf("a delivered hang: %d messages sent (was %d), last %+v", len(after), before, after[len(after)-1])
	}
}
