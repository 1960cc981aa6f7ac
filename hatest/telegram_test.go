package hatest

import (
	"cmp"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/meshtls"
	"github.com/extagram/extagram/internal/telegram/telegramtest"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
)

// Feed replicas announcing posts in Telegram, one killed with kill -9
// while it sends. A send that had not reached Telegram is made by the
// other replica once the dead one's lease ends; one that had, whose answer
// died with the replica, is sent once more: one repeat per crash. Both
// stores at once, in one slot of -parallel: the test mostly waits.
func TestTelegramAnnouncerKilled(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	for _, kind := range []string{"mysql", "embedded"} {
		wg.Go(func() { t.Run(kind, func(t *testing.T) { testAnnouncerKilled(t, kind) }) })
	}
	wg.Wait()
}

func testAnnouncerKilled(t *testing.T, kind string) {
	const token = "7777:hatest-token"
	dir := t.TempDir()
	cfg := store.Config{DataDir: dir, Logger: storetest.Logger(t)}
	env := []string{"EXTAGRAM_TELEGRAM_TOKEN=" + token} // as deployments give it
	if kind == "mysql" {
		cfg = store.Config{MySQLDSN: storetest.MySQLDSN(t), Logger: storetest.Logger(t)}
		env = append(env, "EXTAGRAM_MYSQL_DSN="+cfg.MySQLDSN)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	st, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The mesh identities, in <data-dir>/mesh where the replicas look.
	if _, err := meshtls.Generate(filepath.Join(dir, "mesh")); err != nil {
		t.Fatal(err)
	}
	tg := telegramtest.Start(t, token)
	replica := func(name string) *Proc {
		addr, err := FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		p := NewProc(bin, name, addr, "", dir, env, []string{
			"feed", "--grpc-addr", addr, "--data-dir", dir, "--drain-period", "0s",
			"--telegram-chat", "-100500", "--telegram-api-url", tg.URL, "--public-url", "https://wall.example",
		})
		killAtEnd(t, p)
		return p
	}
	run := func(p *Proc) {
		t.Helper()
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		if err := WaitHealth(ctx, meshtls.DefaultFiles(filepath.Join(dir, "mesh"), meshtls.Operator), p.Addr, 30*time.Second); err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
	}
	postOf := func(c telegramtest.Call) string {
		_, id, _ := strings.Cut(c.Params["caption"], "/posts/")
		return id
	}
	// kill kills p, waits until the stand-in has seen its hanging call for
	// post go (so that no answer reaches a dead replica), then lets sends
	// through.
	kill := func(p *Proc, post string) {
		t.Helper()
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		if _, err := tg.Wait(ctx, func(calls []telegramtest.Call) bool {
			return slices.ContainsFunc(calls, func(c telegramtest.Call) bool { return c.Gone && postOf(c) == post })
		}); err != nil {
			t.Fatalf("the stand-in did not see %s's call go: %v", p.Name, err)
		}
		tg.SetFault("sendPhoto", telegramtest.Fault{})
	}
	newPost := func(text string) store.Post {
		t.Helper()
		p, err := st.CreatePost(ctx, store.NewPost{ID: contract.NewID(), Text: text,
			Image: &store.NewImage{ID: contract.NewID(), ContentType: "image/png", Width: 4, Height: 4, Data: testutil.PNG(t, 4, 4)}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// inFlight waits for an unanswered sendPhoto and returns its post.
	inFlight := func() string {
		t.Helper()
		hanging := func(c telegramtest.Call) bool { return c.Method == "sendPhoto" && c.Status == 0 && !c.Gone }
		calls, err := tg.Wait(ctx, func(calls []telegramtest.Call) bool { return slices.ContainsFunc(calls, hanging) })
		if err != nil {
			t.Fatal("no send in flight")
		}
		return postOf(calls[slices.IndexFunc(calls, hanging)])
	}
	// delivered waits until each post's record says sent, and checks that
	// each was announced once, or as many times as times says.
	delivered := func(posts []store.Post, times map[string]int) {
		t.Helper()
		for _, p := range posts {
			testutil.Eventually(t, time.Minute, "post "+p.ID.String()+" announced", func() bool {
				r, err := st.GetAnnouncement(ctx, p.ID)
				return err == nil && r.State == store.AnnouncementSent
			})
		}
		n := map[string]int{}
		for _, c := range tg.Sent() {
			n[postOf(c)]++
		}
		for _, p := range posts {
			if want := cmp.Or(times[p.ID.String()], 1); n[p.ID.String()] != want {
				t.Errorf("post %s announced %d times, want %d", p.ID, n[p.ID.String()], want)
			}
		}
	}
	a, b := replica("feed-a"), replica("feed-b")

	// 1. A's send never reaches Telegram.
	tg.SetFault("sendPhoto", telegramtest.Fault{Hang: true})
	run(a)
	var posts []store.Post
	for _, text := range []string{"one", "two", "three", "four"} {
		posts = append(posts, newPost(text))
	}
	victim := inFlight()
	run(b)
	kill(a, victim)
	delivered(posts, nil)
	id, _ := contract.ParseID(victim)
	if r, _ := st.GetAnnouncement(ctx, id); r.Attempts != 2 {
		t.Errorf("the post whose sender died: %+v, want sent at the second attempt", r)
	}

	// 2. B's send reaches Telegram, and B dies before the answer: the post
	// is announced twice.
	tg.SetFault("sendPhoto", telegramtest.Fault{Hang: true, Deliver: true})
	last := newPost("five")
	if id := inFlight(); id != last.ID.String() {
		t.Fatalf("in flight: %s, want %s", id, last.ID)
	}
	run(a)
	kill(b, last.ID.String())
	delivered(append(posts, last), map[string]int{last.ID.String(): 2})
}
