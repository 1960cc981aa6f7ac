package telegramtest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/telegram"
	"github.com/extagram/extagram/internal/telegram/telegramtest"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
)

const token = "123456:TEST-token_abc"

func client(t *testing.T, s *telegramtest.Server, opts ...bot.Option) *telegram.Client {
	t.Helper()
	c, err := telegram.New(telegram.Config{Token: token, APIURL: s.URL, PollTimeout: 2 * time.Second, Logger: slog.New(slog.DiscardHandler)}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestMessagesAndPhotos(t *testing.T) {
	t.Parallel()
	s := telegramtest.Start(t, token)
	c := client(t, s)
	me, err := c.GetMe(ctx(t, 5*time.Second))
	if err != nil || !me.IsBot || me.Username == "" {
		t.Fatalf("getMe: %+v %v", me, err)
	}
	m, err := c.SendMessage(ctx(t, 5*time.Second), &bot.SendMessageParams{ChatID: int64(42), Text: "hello"})
	if err != nil || m.ID != 1 || m.Chat.ID != 42 || m.Text != "hello" {
		t.Fatalf("sendMessage: %+v %v", m, err)
	}
	photo := testutil.PNG(t, 4, 3)
	p, err := c.SendPhoto(ctx(t, 5*time.Second), &bot.SendPhotoParams{
		ChatID: "@wall", Caption: "a caption",
		Photo: &models.InputFileUpload{Filename: "p.png", Data: bytes.NewReader(photo)},
	})
	if err != nil || p.ID != 1 || p.Caption != "a caption" || len(p.Photo) == 0 || p.Chat.Username != "wall" {
		t.Fatalf("sendPhoto: %+v %v", p, err)
	}
	if _, err := c.SendPhoto(ctx(t, 5*time.Second), &bot.SendPhotoParams{ChatID: int64(42), Caption: strings.Repeat("x", 1025),
		Photo: &models.InputFileUpload{Filename: "p.png", Data: bytes.NewReader(photo)}}); !errors.Is(err, bot.ErrorBadRequest) {
		t.Errorf("caption of 1025: %v, want Bad Request", err)
	}
	sent := s.Sent()
	if len(sent) != 2 {
		t.Fatalf("sent %d messages, want 2: %+v", len(sent), sent)
	}
	if sent[0].Method != "sendMessage" || sent[0].Params["chat_id"] != "42" || sent[0].Params["text"] != "hello" {
		t.Errorf("first: %+v", sent[0])
	}
	f := sent[1].Files["photo"]
	if sent[1].Method != "sendPhoto" || sent[1].Params["chat_id"] != "@wall" || !bytes.Equal(f.Data, photo) || f.Name != "p.png" || sent[1].Status != 200 {
		t.Errorf("second: %s %v %q %d bytes, status %d", sent[1].Method, sent[1].Params, f.Name, len(f.Data), sent[1].Status)
	}
	if n := len(s.Calls("sendPhoto")); n != 2 {
		t.Errorf("%d sendPhoto calls recorded, want 2 (the refused one too)", n)
	}
}

// Callers that send JSON (Alertmanager's Telegram receiver does) and
// URL-encoded forms are read the same way; another token gets 401.
func TestOtherClients(t *testing.T) {
	t.Parallel()
	s := telegramtest.Start(t, token)
	resp, err := http.Post(s.URL+"/bot"+token+"/sendMessage", "application/json",
		strings.NewReader(`{"chat_id": -1001234, "text": "<b>alert</b> firing", "parse_mode": "HTML", "disable_notification": false}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"ok":true`) || !strings.Contains(string(body), `"message_id":1`) {
		t.Fatalf("JSON sendMessage: %d %s", resp.StatusCode, body)
	}
	resp, err = http.PostForm(s.URL+"/bot"+token+"/sendMessage", map[string][]string{"chat_id": {"5"}, "text": {"form"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sent := s.Sent()
	if len(sent) != 2 || sent[0].Params["chat_id"] != "-1001234" || sent[0].Params["parse_mode"] != "HTML" ||
		sent[0].Params["disable_notification"] != "false" || sent[1].Params["text"] != "form" {
		t.Fatalf("recorded %+v", sent)
	}
	resp, err = http.Get(s.URL + "/botWRONG/getMe")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", resp.StatusCode)
	}
	resp, err = http.Get(s.URL + "/bot" + token + "/noSuchMethod")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown method: %d, want 404", resp.StatusCode)
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	s := telegramtest.Start(t, token)
	c := client(t, s)
	send := func(d time.Duration) error {
		_, err := c.SendMessage(ctx(t, d), &bot.SendMessageParams{ChatID: int64(1), Text: "x"})
		return err
	}
	s.SetFault("sendMessage", telegramtest.Fault{Status: 429, RetryAfter: 7})
	err := send(5 * time.Second)
	if d, ok := telegram.RetryAfter(err); !ok || d != 7*time.Second {
		t.Errorf("429: %v; RetryAfter = %v %v, want 7s", err, d, ok)
	}
	// A method's own fault wins over the one for every method.
	s.SetFault("", telegramtest.Fault{Status: 500})
	if _, ok := telegram.RetryAfter(send(5 * time.Second)); !ok {
		t.Error("the fault for every method replaced sendMessage's own")
	}
	s.SetFault("sendMessage", telegramtest.Fault{})
	if err := send(5 * time.Second); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("500: %v", err)
	}
	s.SetFault("", telegramtest.Fault{Drop: true})
	if err := send(5 * time.Second); err == nil || strings.Contains(err.Error(), token) {
		t.Errorf("dropped: %v, want an error without the token", err)
	}
	s.SetFault("", telegramtest.Fault{Hang: true})
	if err := send(300 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hang: %v, want the deadline", err)
	}
	// A hang is released when the fault changes, and then answered. The
	// wait is for this very call: the dropped and the abandoned calls
	// before it are left without a status too.
	earlier := len(s.Calls(""))
	done := make(chan error, 1)
	go func() { done <- send(10 * time.Second) }()
	if _, err := s.Wait(ctx(t, 5*time.Second), func(calls []telegramtest.Call) bool {
		for _, c := range calls[earlier:] {
			if c.Method == "sendMessage" && c.Status == 0 {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	s.SetFault("", telegramtest.Fault{})
	if err := <-done; err != nil {
		t.Errorf("released hang: %v", err)
	}
	// Hang with Deliver: the message is sent, the answer never comes.
	s.SetFault("sendMessage", telegramtest.Fault{Hang: true, Deliver: true})
	before := len(s.Sent())
	if err := send(300 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hang after delivery: %v", err)
	}
	if after := s.Sent(); len(after) != before+1 || after[len(after)-1].Status != 0 {
		t.Errorf("a delivered hang: %d messages sent (was %d), last %+v", len(after), before, after[len(after)-1])
	}
	for _, c := range s.Calls("") {
		if strings.Contains(c.Params["text"], token) {
			t.Error("token in params")
		}
	}
}

func TestFiles(t *testing.T) {
	t.Parallel()
	s := telegramtest.Start(t, token)
	c := client(t, s)
	data := testutil.PNG(t, 30, 20)
	id := s.AddFile(data)
	f, err := c.GetFile(ctx(t, 5*time.Second), &bot.GetFileParams{FileID: id})
	if err != nil || f.FileSize != int64(len(data)) || f.FilePath == "" {
		t.Fatalf("getFile: %+v %v", f, err)
	}
	body, err := c.Download(ctx(t, 5*time.Second), f, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(body)
	body.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download: %d bytes, %v", len(got), err)
	}
	// One byte over the limit: refused before the download when the size
	// is known, and while reading when it is not.
	if _, err := c.Download(ctx(t, 5*time.Second), f, int64(len(data))-1); !errors.Is(err, telegram.ErrFileTooLarge) {
		t.Errorf("known size over the limit: %v", err)
	}
	f.FileSize = 0
	body, err = c.Download(ctx(t, 5*time.Second), f, int64(len(data))-1)
	if err == nil {
		_, err = io.ReadAll(body)
		body.Close()
	}
	if !errors.Is(err, telegram.ErrFileTooLarge) {
		t.Errorf("unknown size over the limit: %v", err)
	}
	if _, err := c.GetFile(ctx(t, 5*time.Second), &bot.GetFileParams{FileID: "nope"}); !errors.Is(err, bot.ErrorBadRequest) {
		t.Errorf("unknown file: %v", err)
	}
	s.SetFault("file", telegramtest.Fault{Drop: true})
	_, err = c.Download(ctx(t, 5*time.Second), &models.File{FilePath: "documents/" + id}, 1<<20)
	if err == nil || strings.Contains(err.Error(), token) {
		t.Errorf("failed download: %v, want an error without the token", err)
	}
}

// poller runs a bot that long-polls, recording the updates it handles,
// until stop.
type poller struct {
	mu   sync.Mutex
	seen []int64
	stop context.CancelFunc
	done chan struct{}
}

func startPoller(t *testing.T, s *telegramtest.Server) *poller {
	p := &poller{done: make(chan struct{})}
	c := client(t, s, bot.WithDefaultHandler(func(_ context.Context, _ *bot.Bot, u *models.Update) {
		p.mu.Lock()
		p.seen = append(p.seen, u.ID)
		p.mu.Unlock()
	}), bot.WithNotAsyncHandlers())
	ctx, cancel := context.WithCancel(context.Background())
	p.stop = func() { cancel(); <-p.done }
	go func() { defer close(p.done); c.Start(ctx) }()
	t.Cleanup(p.stop)
	return p
}

func (p *poller) updates() []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int64(nil), p.seen...)
}

// Two pollers: one gets the updates, the other is answered 409 and stands
// by; when the first stops, the second takes over. No update is handled
// twice.
func TestLongPollOnePoller(t *testing.T) {
	t.Parallel()
	s := telegramtest.Start(t, token)
	a := startPoller(t, s)
	first := s.UserText(7, 7, "one").ID
	waitHandled(t, s, []*poller{a}, first)
	b := startPoller(t, s)
	if _, err := s.Wait(ctx(t, 10*time.Second), func(calls []telegramtest.Call) bool {
		for _, c := range calls {
			if c.Method == "getUpdates" && c.Status == http.StatusConflict {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal("the second poller was never answered 409")
	}
	second := s.UserText(7, 7, "two").ID
	waitHandled(t, s, []*poller{a, b}, second)
	a.stop()
	third := s.UserText(7, 7, "three").ID
	waitHandled(t, s, []*poller{b}, third)
	all := append(a.updates(), b.updates()...)
	if len(all) != 3 {
		t.Errorf("updates handled: a %v, b %v; want %d, %d and %d once each", a.updates(), b.updates(), first, second, third)
	}
	if len(s.Pending()) > 1 {
		t.Errorf("pending updates %v", s.Pending())
	}
}

func waitHandled(t *testing.T, s *telegramtest.Server, ps []*poller, id int64) {
	t.Helper()
	testutil.Eventually(t, 15*time.Second, fmt.Sprintf("update %d handled", id), func() bool {
		for _, p := range ps {
			if slices.Contains(p.updates(), id) {
				return true
			}
		}
		return false
	})
}

// With a webhook set, updates are POSTed to it with the secret, until it
// answers 2xx; getUpdates is refused meanwhile.
func TestWebhook(t *testing.T) {
	t.Parallel()
	s := telegramtest.Start(t, token)
	var (
		mu   sync.Mutex
		got  []string
		fail = true
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			fail = false
			http.Error(w, "later", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		got = append(got, r.Header.Get("X-Telegram-Bot-Api-Secret-Token")+" "+string(b))
	}))
	t.Cleanup(hook.Close)
	c := client(t, s)
	if ok, err := c.SetWebhook(ctx(t, 5*time.Second), &bot.SetWebhookParams{URL: hook.URL + "/telegram/webhook", SecretToken: "s3cret"}); !ok || err != nil {
		t.Fatalf("setWebhook: %v %v", ok, err)
	}
	if u, sec := s.Webhook(); u != hook.URL+"/telegram/webhook" || sec != "s3cret" {
		t.Errorf("webhook %q %q", u, sec)
	}
	s.UserText(9, 9, "/start")
	testutil.Eventually(t, 10*time.Second, "the update delivered to the webhook (after one failure)", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1
	})
	if !strings.HasPrefix(got[0], "s3cret {") || !strings.Contains(got[0], `"text":"/start"`) {
		t.Errorf("webhook got %q", got[0])
	}
	if _, err := c.SendMessage(ctx(t, 5*time.Second), &bot.SendMessageParams{ChatID: int64(9), Text: "x"}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.URL + "/bot" + token + "/getUpdates")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("getUpdates with a webhook: %d, want 409", resp.StatusCode)
	}
	if ok, err := c.DeleteWebhook(ctx(t, 5*time.Second), &bot.DeleteWebhookParams{}); !ok || err != nil {
		t.Fatalf("deleteWebhook: %v %v", ok, err)
	}
	if u, _ := s.Webhook(); u != "" {
		t.Errorf("webhook still %q", u)
	}
}
