package announce_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/telegram"
	"github.com/extagram/extagram/internal/telegram/announce"
	"github.com/extagram/extagram/internal/telegram/telegramtest"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	token = "4242:announce-test"
	chat  = "-100777"
	site  = "https://wall.example"
)

func forEachStore(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Run("mysql", func(t *testing.T) { t.Parallel(); fn(t, storetest.MySQL(t)) })
	t.Run("embedded", func(t *testing.T) { t.Parallel(); fn(t, storetest.Embedded(t)) })
}

// fast are timings for tests: a failed send is tried again within 1 s.
var fast = announce.Timings{Poll: 50 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}

// running is an announcer running until stopped or the test ends.
type running struct {
	reg  *prometheus.Registry
	stop func()
}

func start(t *testing.T, st store.Store, tg *telegramtest.Server, tm announce.Timings) *running {
	t.Helper()
	c, err := telegram.New(telegram.Config{Token: token, APIURL: tg.URL, Logger: storetest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	a, err := announce.New(announce.Config{Store: st, Client: c, Chat: chat, PublicURL: site, Logger: storetest.Logger(t), Registry: reg, Timings: tm})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	r := &running{reg: reg, stop: sync.OnceFunc(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("the announcer did not stop within 20s")
		}
	})}
	t.Cleanup(r.stop)
	return r
}

// metric is the sum of a metric over announcers.
func metric(t *testing.T, name string, rs ...*running) (sum float64) {
	t.Helper()
	for _, r := range rs {
		mfs, err := r.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if m := mf.GetMetric()[0]; mf.GetName() == name {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func waitMetric(t *testing.T, name string, want float64, rs ...*running) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("%s = %v", name, want), func() bool { return metric(t, name, rs...) == want })
}

func createPost(t *testing.T, st store.Store, text string, photo bool) store.Post {
	t.Helper()
	np := store.NewPost{ID: contract.NewID(), Text: text}
	if photo {
		np.Image = &store.NewImage{ID: contract.NewID(), ContentType: "image/png", Width: 8, Height: 6, Data: testutil.PNG(t, 8, 6)}
	}
	p, err := st.CreatePost(t.Context(), np)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// announced waits, at most for d, until every post was announced, checks
// that n posts were announced so far, each once, and returns the messages
// by post.
func announced(t *testing.T, tg *telegramtest.Server, d time.Duration, n int, posts ...store.Post) map[string][]telegramtest.Call {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	byPost := map[string][]telegramtest.Call{}
	_, err := tg.Wait(ctx, func([]telegramtest.Call) bool {
		clear(byPost)
		for _, c := range tg.Sent() {
			_, id, _ := strings.Cut(c.Params["text"]+c.Params["caption"], site+"/posts/")
			byPost[id] = append(byPost[id], c)
		}
		return !slices.ContainsFunc(posts, func(p store.Post) bool { return len(byPost[p.ID.String()]) == 0 })
	})
	if err != nil {
		t.Fatalf("%d of %d posts announced within %s", len(byPost), len(posts), d)
	}
	if len(byPost) != n {
		t.Errorf("%d posts announced, want %d", len(byPost), n)
	}
	for id, calls := range byPost {
		if len(calls) != 1 {
			t.Errorf("post %s announced %d times", id, len(calls))
		}
	}
	return byPost
}

func waitRecord(t *testing.T, st store.Store, id contract.ID, state store.AnnouncementState) (r store.AnnouncementRecord) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("announcement of %s %s", id, state), func() bool {
		var err error
		r, err = st.GetAnnouncement(t.Context(), id)
		return err == nil && r.State == state
	})
	return r
}

// waitCall waits for a call ok accepts, and returns it.
func waitCall(t *testing.T, tg *telegramtest.Server, ok func(telegramtest.Call) bool) telegramtest.Call {
	t.Helper()
	calls, err := tg.Wait(t.Context(), func(calls []telegramtest.Call) bool { return slices.ContainsFunc(calls, ok) })
	if err != nil {
		t.Fatal(err)
	}
	return calls[slices.IndexFunc(calls, ok)]
}

func TestAnnounce(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		tg := telegramtest.Start(t, token)
		a := start(t, st, tg, announce.Timings{})
		// A photo post: sendPhoto with the stored image, text and link as
		// caption; a text post: sendMessage; within 5 s, ids recorded.
		p1, p2 := createPost(t, st, "sunrise over the harbour", true), createPost(t, st, "no photo today", false)
		byPost := announced(t, tg, 5*time.Second, 2, p1, p2)
		for _, w := range []struct {
			p                   store.Post
			method, field, text string
		}{{p1, "sendPhoto", "caption", "sunrise over the harbour"}, {p2, "sendMessage", "text", "no photo today"}} {
			c := byPost[w.p.ID.String()][0]
			if c.Method != w.method || c.Params["chat_id"] != chat || c.Params[w.field] != w.text+"\n\n"+site+"/posts/"+w.p.ID.String() {
				t.Errorf("%s: %s %v", w.text, c.Method, c.Params)
			}
			if r := waitRecord(t, st, w.p.ID, store.AnnouncementSent); r.MessageID != int64(c.MessageID) || r.Attempts != 1 {
				t.Errorf("record %+v, want message %d after 1 attempt", r, c.MessageID)
			}
		}
		if f := byPost[p1.ID.String()][0].Files["photo"]; !bytes.Equal(f.Data, testutil.PNG(t, 8, 6)) || !strings.HasSuffix(f.Name, ".png") {
			t.Errorf("photo sent: %q, %d bytes; want the stored one", f.Name, len(f.Data))
		}
		waitMetric(t, "extagram_telegram_announcements_sent_total", 2, a)
		waitMetric(t, "extagram_telegram_announcements_pending", 0, a)
		if got := metric(t, "extagram_telegram_announcements_oldest_pending_age_seconds", a); got != 0 {
			t.Errorf("oldest pending age %v with nothing pending", got)
		}

		// A text too long for a caption is cut to fit, link kept.
		long := createPost(t, st, strings.Repeat("😀", contract.MaxTextLen), true)
		if c := announced(t, tg, 5*time.Second, 3, long)[long.ID.String()][0]; c.Method != "sendPhoto" || !strings.HasSuffix(c.Params["caption"], "…\n\n"+site+"/posts/"+long.ID.String()) {
			t.Errorf("long caption: %s %q", c.Method, c.Params["caption"])
		}
		// Telegram refusing a photo (400) does not lose the post: it is
		// announced in words.
		tg.SetFault("sendPhoto", telegramtest.Fault{Status: 400})
		refused := createPost(t, st, "a photo Telegram will not show", true)
		if c := announced(t, tg, 5*time.Second, 4, refused)[refused.ID.String()][0]; c.Method != "sendMessage" || !strings.HasPrefix(c.Params["text"], "a photo Telegram will not show\n\n") {
			t.Errorf("refused photo announced as %s %v", c.Method, c.Params)
		}
		// 429 with retry_after 2: the next call waits at least that long.
		tg.SetFault("sendMessage", telegramtest.Fault{Status: 429, RetryAfter: 2})
		limited := createPost(t, st, "rate limited", false)
		answered := waitCall(t, tg, func(c telegramtest.Call) bool { return c.Status == 429 })
		tg.SetFault("sendMessage", telegramtest.Fault{})
		if next := announced(t, tg, 30*time.Second, 5, limited)[limited.ID.String()][0]; next.Time.Sub(answered.Time) < 2*time.Second {
			t.Errorf("retried %s after the 429, want at least its retry_after of 2s", next.Time.Sub(answered.Time))
		}

		// A post not sent within MaxAge is marked failed, counted, and never
		// tried again; another post goes through.
		a.stop()
		tg.SetFault("", telegramtest.Fault{Status: 500})
		tm := fast
		tm.MaxAge = 1500 * time.Millisecond
		b := start(t, st, tg, tm)
		p := createPost(t, st, "never to be announced", false)
		if r := waitRecord(t, st, p.ID, store.AnnouncementFailed); r.Attempts < 2 || !strings.Contains(r.LastError, "500") || r.DoneAt.IsZero() {
			t.Errorf("failed record %+v, want a few attempts and the last error", r)
		}
		waitMetric(t, "extagram_telegram_announcements_failed_total", 1, b)
		calls := len(tg.Calls("sendMessage"))
		tg.SetFault("", telegramtest.Fault{})
		q := createPost(t, st, "this one goes", false)
		if announced(t, tg, 5*time.Second, 6, q); len(tg.Calls("sendMessage")) != calls+1 {
			t.Errorf("the failed post was tried again: %d calls, then %d", calls, len(tg.Calls("sendMessage")))
		}
	})
}

func TestLifecycle(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		tg := telegramtest.Start(t, token)
		// Posts made before the bot first connected to the chat are skipped.
		old := createPost(t, st, "made before the bot", false)
		a, b := start(t, st, tg, fast), start(t, st, tg, fast)
		first := createPost(t, st, "made with the bot", false)
		announced(t, tg, 5*time.Second, 1, first)
		waitRecord(t, st, old.ID, store.AnnouncementSkipped)
		waitMetric(t, "extagram_telegram_announcements_skipped_total", 1, a, b)

		// Two announcers, 50 posts made while they run: each announced once.
		var posts []store.Post
		for i := range 50 {
			posts = append(posts, createPost(t, st, fmt.Sprintf("post %d", i+1), i%5 == 0))
		}
		announced(t, tg, 30*time.Second, 51, posts...)
		waitMetric(t, "extagram_telegram_announcements_pending", 0, a)
		waitMetric(t, "extagram_telegram_announcements_sent_total", 51, a, b)

		// Telegram out of reach for a few times the longest backoff: nothing
		// sent, the outbox ages, every post is announced once afterwards.
		tg.SetFault("", telegramtest.Fault{Drop: true})
		calls, sent := len(tg.Calls("")), len(tg.Sent())
		posts = nil
		for i := range 5 {
			posts = append(posts, createPost(t, st, fmt.Sprintf("during the outage %d", i), true))
		}
		testutil.Eventually(t, 20*time.Second, "the outbox 3 s old with attempts during the outage", func() bool {
			return metric(t, "extagram_telegram_announcements_oldest_pending_age_seconds", a) >= 3 && len(tg.Calls("")) >= calls+3
		})
		if len(tg.Sent()) != sent {
			t.Fatal("messages sent during the outage")
		}
		if got := metric(t, "extagram_telegram_announcements_pending", a); got != 5 {
			t.Errorf("pending during the outage: %v, want 5", got)
		}
		tg.SetFault("", telegramtest.Fault{})
		announced(t, tg, 30*time.Second, 56, posts...)
		if metric(t, "extagram_telegram_announcement_errors_total", a, b) < 1 {
			t.Error("no failed send counted")
		}

		// Stopping lets the send in flight finish and be recorded; posts made
		// while none runs are announced when one starts, nothing twice.
		b.stop()
		tg.SetFault("sendPhoto", telegramtest.Fault{Hang: true})
		p := createPost(t, st, "in flight at shutdown", true)
		waitCall(t, tg, func(c telegramtest.Call) bool {
			return c.Status == 0 && strings.Contains(c.Params["caption"], p.ID.String())
		})
		stopped := make(chan struct{})
		go func() { a.stop(); close(stopped) }()
		select {
		case <-stopped:
			t.Fatal("the announcer stopped without waiting for its send")
		case <-time.After(200 * time.Millisecond):
		}
		tg.SetFault("sendPhoto", telegramtest.Fault{})
		<-stopped
		if r := waitRecord(t, st, p.ID, store.AnnouncementSent); r.MessageID == 0 {
			t.Errorf("record %+v", r)
		}
		down := createPost(t, st, "made while no announcer ran", false)
		start(t, st, tg, fast)
		announced(t, tg, 5*time.Second, 58, p, down)
	})
}
