package announce_test

import (
	"bytes"
	"context"
	"fmt"
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

// fast are timings for tests: a failed send is tried again within a
// second.
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
	var once sync.Once
	r := &running{reg: reg, stop: func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Error("the announcer did not stop within 20s")
			}
		})
	}}
	t.Cleanup(r.stop)
	return r
}

func (r *running) metric(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func createPost(t *testing.T, st store.Store, text string, photo []byte) store.Post {
	t.Helper()
	np := store.NewPost{ID: contract.NewID(), Text: text}
	if photo != nil {
		np.Image = &store.NewImage{ID: contract.NewID(), ContentType: "image/png", Width: 8, Height: 6, Data: photo}
	}
	p, err := st.CreatePost(t.Context(), np)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// postOf returns the post a message announces, from its link.
func postOf(c telegramtest.Call) string {
	text := c.Params["text"] + c.Params["caption"]
	_, id, _ := strings.Cut(text, site+"/posts/")
	return id
}

// waitAnnounced waits, at most for d, until every post was announced, and
// returns the messages sent by then, by post.
func waitAnnounced(t *testing.T, tg *telegramtest.Server, d time.Duration, posts ...store.Post) map[string][]telegramtest.Call {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	byPost := map[string][]telegramtest.Call{}
	_, err := tg.Wait(ctx, func([]telegramtest.Call) bool {
		byPost = map[string][]telegramtest.Call{}
		for _, c := range tg.Sent() {
			byPost[postOf(c)] = append(byPost[postOf(c)], c)
		}
		for _, p := range posts {
			if len(byPost[p.ID.String()]) == 0 {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("%d of %d posts announced within %s", len(byPost), len(posts), d)
	}
	return byPost
}

func checkOnce(t *testing.T, byPost map[string][]telegramtest.Call, n int) {
	t.Helper()
	if len(byPost) != n {
		t.Errorf("%d posts announced, want %d", len(byPost), n)
	}
	for id, calls := range byPost {
		if len(calls) != 1 {
			t.Errorf("post %s announced %d times", id, len(calls))
		}
	}
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

// One photo post and one text post: a sendPhoto with the stored image and
// the text and link as caption, a sendMessage with the text and link, each
// within 5 s, to the configured chat; the message ids are recorded.
func TestAnnounce(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		tg := telegramtest.Start(t, token)
		a := start(t, st, tg, announce.Timings{})
		photo := testutil.PNG(t, 8, 6)
		p1 := createPost(t, st, "sunrise over the harbour", photo)
		p2 := createPost(t, st, "no photo today", nil)
		byPost := waitAnnounced(t, tg, 5*time.Second, p1, p2)
		checkOnce(t, byPost, 2)

		ph := byPost[p1.ID.String()][0]
		if ph.Method != "sendPhoto" || ph.Params["chat_id"] != chat || ph.Params["caption"] != "sunrise over the harbour\n\n"+site+"/posts/"+p1.ID.String() {
			t.Errorf("photo post: %s %v", ph.Method, ph.Params)
		}
		if !bytes.Equal(ph.Files["photo"].Data, photo) || !strings.HasSuffix(ph.Files["photo"].Name, ".png") {
			t.Errorf("photo sent: %q, %d bytes; want the stored %d", ph.Files["photo"].Name, len(ph.Files["photo"].Data), len(photo))
		}
		tx := byPost[p2.ID.String()][0]
		if tx.Method != "sendMessage" || tx.Params["chat_id"] != chat || tx.Params["text"] != "no photo today\n\n"+site+"/posts/"+p2.ID.String() {
			t.Errorf("text post: %s %v", tx.Method, tx.Params)
		}
		for _, c := range []struct {
			p    store.Post
			call telegramtest.Call
		}{{p1, ph}, {p2, tx}} {
			r := waitRecord(t, st, c.p.ID, store.AnnouncementSent)
			if r.MessageID != int64(c.call.MessageID) || r.Attempts != 1 {
				t.Errorf("record %+v, want message %d after 1 attempt", r, c.call.MessageID)
			}
		}
		waitMetric(t, a, "extagram_telegram_announcements_sent_total", 2)
		waitMetric(t, a, "extagram_telegram_announcements_pending", 0)
		if got := a.metric(t, "extagram_telegram_announcements_oldest_pending_age_seconds"); got != 0 {
			t.Errorf("oldest pending age %v with nothing pending", got)
		}
	})
}

func waitMetric(t *testing.T, r *running, name string, want float64) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("%s = %v", name, want), func() bool { return r.metric(t, name) == want })
}

// Two announcers over one store, 50 posts made while they run: exactly 50
// announcements, one per post.
func TestTwoAnnouncers(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		tg := telegramtest.Start(t, token)
		a := start(t, st, tg, fast)
		b := start(t, st, tg, fast)
		var posts []store.Post
		for i := range 50 {
			var photo []byte
			if i%5 == 0 {
				photo = testutil.PNG(t, 8, 6)
			}
			posts = append(posts, createPost(t, st, fmt.Sprintf("post %d", i+1), photo))
		}
		byPost := waitAnnounced(t, tg, 30*time.Second, posts...)
		checkOnce(t, byPost, 50)
		// Nothing more comes, and the counters add up.
		waitMetric(t, a, "extagram_telegram_announcements_pending", 0)
		if total := a.metric(t, "extagram_telegram_announcements_sent_total") + b.metric(t, "extagram_telegram_announcements_sent_total"); total != 50 {
			t.Errorf("the announcers counted %v sent, want 50", total)
		}
		a.stop()
		b.stop()
		checkOnce(t, waitAnnounced(t, tg, time.Second, posts...), 50)
	})
}

// Telegram out of reach for 20 s (every connection dropped), then
// answering 429 with retry_after: every post is announced once afterwards,
// and the retry waits as long as Telegram asked.
func TestOutageAndRateLimit(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		tg := telegramtest.Start(t, token)
		a := start(t, st, tg, fast)
		tg.SetFault("", telegramtest.Fault{Drop: true})
		downSince := time.Now()
		var posts []store.Post
		for i := range 5 {
			posts = append(posts, createPost(t, st, fmt.Sprintf("during the outage %d", i), testutil.PNG(t, 8, 6)))
		}
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		if _, err := tg.Wait(ctx, func(calls []telegramtest.Call) bool { return len(calls) >= 3 }); err != nil {
			t.Fatal("no attempt during the outage")
		}
		<-ctx.Done() // the outage lasts its 20 s
		if len(tg.Sent()) != 0 {
			t.Fatal("messages sent during the outage")
		}
		if got := a.metric(t, "extagram_telegram_announcements_pending"); got != 5 {
			t.Errorf("pending during the outage: %v, want 5", got)
		}
		if age := a.metric(t, "extagram_telegram_announcements_oldest_pending_age_seconds"); age < time.Since(downSince).Seconds()-5 {
			t.Errorf("oldest pending age %vs after an outage of %s", age, time.Since(downSince).Round(time.Second))
		}
		tg.SetFault("", telegramtest.Fault{})
		checkOnce(t, waitAnnounced(t, tg, 30*time.Second, posts...), 5)
		if a.metric(t, "extagram_telegram_announcement_errors_total") < 1 {
			t.Error("no failed send counted")
		}

		// 429 with retry_after 2: the next call waits at least that long.
		tg.SetFault("sendMessage", telegramtest.Fault{Status: 429, RetryAfter: 2})
		limited := createPost(t, st, "rate limited", nil)
		var answered telegramtest.Call
		if _, err := tg.Wait(t.Context(), func(calls []telegramtest.Call) bool {
			for _, c := range calls {
				if c.Method == "sendMessage" && c.Status == 429 {
					answered = c
					return true
				}
			}
			return false
		}); err != nil {
			t.Fatal(err)
		}
		tg.SetFault("sendMessage", telegramtest.Fault{})
		byPost := waitAnnounced(t, tg, 30*time.Second, append(posts, limited)...)
		checkOnce(t, byPost, 6)
		if next := byPost[limited.ID.String()][0]; next.Time.Sub(answered.Time) < 2*time.Second {
			t.Errorf("retried %s after the 429, want at least its retry_after of 2s", next.Time.Sub(answered.Time))
		}
	})
}

// A post that cannot be sent within MaxAge is marked failed, counted, and
// never tried again.
func TestGivesUp(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		tg := telegramtest.Start(t, token)
		tg.SetFault("", telegramtest.Fault{Status: 500})
		tm := fast
		tm.MaxAge = 1500 * time.Millisecond
		a := start(t, st, tg, tm)
		p := createPost(t, st, "never to be announced", nil)
		r := waitRecord(t, st, p.ID, store.AnnouncementFailed)
		if r.Attempts < 2 || !strings.Contains(r.LastError, "500") || r.DoneAt.IsZero() {
			t.Errorf("failed record %+v, want a few attempts and the last error", r)
		}
		waitMetric(t, a, "extagram_telegram_announcements_failed_total", 1)
		calls := len(tg.Calls("sendMessage"))
		tg.SetFault("", telegramtest.Fault{})
		// Another post goes through; the failed one stays failed.
		q := createPost(t, st, "this one goes", nil)
		byPost := waitAnnounced(t, tg, 5*time.Second, q)
		if len(byPost[p.ID.String()]) != 0 || len(tg.Calls("sendMessage")) != calls+1 {
			t.Errorf("the failed post was tried again: %d calls, then %d", calls, len(tg.Calls("sendMessage")))
		}
	})
}

// Posts made before the bot was first connected to the chat are skipped;
// posts made while every announcer is stopped afterwards are announced
// when one starts again.
func TestSkipsPostsBeforeTheBot(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		tg := telegramtest.Start(t, token)
		old := createPost(t, st, "made before the bot", nil)
		a := start(t, st, tg, fast)
		first := createPost(t, st, "made with the bot", nil)
		waitAnnounced(t, tg, 5*time.Second, first)
		waitRecord(t, st, old.ID, store.AnnouncementSkipped)
		waitMetric(t, a, "extagram_telegram_announcements_skipped_total", 1)
		a.stop()
		down := createPost(t, st, "made while no announcer ran", nil)
		start(t, st, tg, fast)
		byPost := waitAnnounced(t, tg, 5*time.Second, first, down)
		checkOnce(t, byPost, 2)
	})
}

// An announcer asked to stop while a send is in flight lets it finish and
// records it: nobody sends it again.
func TestStopFinishesTheSend(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		tg := telegramtest.Start(t, token)
		tg.SetFault("sendPhoto", telegramtest.Fault{Hang: true})
		a := start(t, st, tg, fast)
		p := createPost(t, st, "in flight at shutdown", testutil.PNG(t, 8, 6))
		if _, err := tg.Wait(t.Context(), func(calls []telegramtest.Call) bool { return len(tg.Calls("sendPhoto")) == 1 }); err != nil {
			t.Fatal(err)
		}
		stopped := make(chan struct{})
		go func() { a.stop(); close(stopped) }()
		select {
		case <-stopped:
			t.Fatal("the announcer stopped without waiting for its send")
		case <-time.After(200 * time.Millisecond):
		}
		tg.SetFault("sendPhoto", telegramtest.Fault{})
		<-stopped
		r := waitRecord(t, st, p.ID, store.AnnouncementSent)
		start(t, st, tg, fast)
		q := createPost(t, st, "after the restart", nil)
		byPost := waitAnnounced(t, tg, 5*time.Second, p, q)
		checkOnce(t, byPost, 2)
		if r.MessageID == 0 {
			t.Errorf("record %+v", r)
		}
	})
}

// Telegram refusing a photo (400) does not lose the post: it is announced
// in words. A text too long for a caption is cut to fit, link kept.
func TestPhotoRefusedAndLongText(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		tg := telegramtest.Start(t, token)
		start(t, st, tg, fast)
		long := createPost(t, st, strings.Repeat("😀", contract.MaxTextLen), testutil.PNG(t, 8, 6))
		byPost := waitAnnounced(t, tg, 5*time.Second, long)
		if c := byPost[long.ID.String()][0]; c.Method != "sendPhoto" || !strings.HasSuffix(c.Params["caption"], "…\n\n"+site+"/posts/"+long.ID.String()) {
			t.Errorf("long caption: %s %q", c.Method, c.Params["caption"])
		}
		tg.SetFault("sendPhoto", telegramtest.Fault{Status: 400})
		refused := createPost(t, st, "a photo Telegram will not show", testutil.PNG(t, 8, 6))
		byPost = waitAnnounced(t, tg, 5*time.Second, long, refused)
		checkOnce(t, byPost, 2)
		if c := byPost[refused.ID.String()][0]; c.Method != "sendMessage" || !strings.HasPrefix(c.Params["text"], "a photo Telegram will not show\n\n") {
			t.Errorf("refused photo announced as %s %v", c.Method, c.Params)
		}
	})
}
