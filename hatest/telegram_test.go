package hatest_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/extagram/extagram/hatest"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/meshtls"
	"github.com/extagram/extagram/internal/telegram/telegramtest"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
)

// Feed replicas as processes announcing posts in Telegram, one killed with
// kill -9 while it sends. A send that had not reached Telegram is made by
// the other replica once the dead one's lease ends: nothing lost, nothing
// sent twice. A send that had reached Telegram, whose answer died with
// the replica, is sent once more: the bound on repeats, one per crash.
func TestTelegramAnnouncerKilled(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"mysql", "embedded"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			testAnnouncerKilled(t, kind)
		})
	}
}

const tgToken = "7777:hatest-token"

func testAnnouncerKilled(t *testing.T, kind string) {
	dir := t.TempDir()
	cfg := store.Config{DataDir: dir, Logger: storetest.Logger(t)}
	var env []string
	if kind == "mysql" {
		cfg = store.Config{MySQLDSN: storetest.MySQLDSN(t), Logger: storetest.Logger(t)}
		env = append(env, "EXTAGRAM_MYSQL_DSN="+cfg.MySQLDSN)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The replicas' mesh identities, in <data-dir>/mesh where they look.
	mesh := filepath.Join(dir, "mesh")
	if _, err := meshtls.Generate(mesh); err != nil {
		t.Fatal(err)
	}
	operator := meshtls.DefaultFiles(mesh, meshtls.Operator)
	tg := telegramtest.Start(t, tgToken)
	// The token comes from the environment, as deployments give it.
	env = append(env, "EXTAGRAM_TELEGRAM_TOKEN="+tgToken)

	replica := func(name string) *hatest.Proc {
		addr, err := hatest.FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		p := hatest.NewProc(bin, name, addr, "", dir, env, []string{
			"feed", "--grpc-addr", addr, "--data-dir", dir, "--drain-period", "0s",
			"--telegram-chat", "-100500", "--telegram-api-url", tg.URL, "--public-url", "https://wall.example",
		})
		t.Cleanup(func() {
			_ = p.Kill()
			if t.Failed() {
				t.Logf("%s log:\n%s", name, p.Log(4000))
			}
		})
		return p
	}
	run := func(p *hatest.Proc) {
		t.Helper()
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		if err := hatest.WaitHealth(ctx, operator, p.Addr, 30*time.Second); err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
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
	// inFlight waits for a sendPhoto without an answer and returns the
	// post it announces.
	inFlight := func() string {
		t.Helper()
		var id string
		if _, err := tg.Wait(ctx, func(calls []telegramtest.Call) bool {
			for _, c := range calls {
				if c.Method == "sendPhoto" && c.Status == 0 && !c.Gone {
					_, id, _ = strings.Cut(c.Params["caption"], "/posts/")
					return true
				}
			}
			return false
		}); err != nil {
			t.Fatal("no send in flight")
		}
		return id
	}
	// delivered waits until each post's record says sent and returns how
	// many messages announced each.
	delivered := func(posts []store.Post) map[string]int {
		t.Helper()
		for _, p := range posts {
			for {
				r, err := st.GetAnnouncement(ctx, p.ID)
				if err == nil && r.State == store.AnnouncementSent {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("post %s not announced: %+v %v", p.ID, r, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		n := map[string]int{}
		for _, c := range tg.Sent() {
			_, id, _ := strings.Cut(c.Params["caption"], "/posts/")
			n[id]++
		}
		return n
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
	kill(t, ctx, tg, a)
	tg.SetFault("sendPhoto", telegramtest.Fault{})
	for id, n := range delivered(posts) {
		if n != 1 {
			t.Errorf("post %s announced %d times, want once", id, n)
		}
	}
	if r, _ := st.GetAnnouncement(ctx, mustID(t, victim)); r.Attempts != 2 {
		t.Errorf("the post whose sender died: %+v, want sent at the second attempt", r)
	}

	// 2. B's send reaches Telegram, and B dies before the answer.
	tg.SetFault("sendPhoto", telegramtest.Fault{Hang: true, Deliver: true})
	last := newPost("five")
	if id := inFlight(); id != last.ID.String() {
		t.Fatalf("in flight: %s, want %s", id, last.ID)
	}
	run(a)
	kill(t, ctx, tg, b)
	tg.SetFault("sendPhoto", telegramtest.Fault{})
	counts := delivered(append(posts, last))
	for _, p := range posts {
		if counts[p.ID.String()] != 1 {
			t.Errorf("post %s announced %d times, want once", p.ID, counts[p.ID.String()])
		}
	}
	if n := counts[last.ID.String()]; n != 2 {
		t.Errorf("the post sent as its sender died was announced %d times, want 2 (one repeat per crash)", n)
	}
}

// kill kills p with SIGKILL and waits until the stand-in has seen its
// hanging call go, so that releasing the hang cannot answer a dead
// replica.
func kill(t *testing.T, ctx context.Context, tg *telegramtest.Server, p *hatest.Proc) {
	t.Helper()
	gone := func(calls []telegramtest.Call) int {
		n := 0
		for _, c := range calls {
			if c.Gone {
				n++
			}
		}
		return n
	}
	before := gone(tg.Calls(""))
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Wait(ctx, func(calls []telegramtest.Call) bool { return gone(calls) > before }); err != nil {
		t.Fatalf("the stand-in did not see %s's call go: %v", p.Name, err)
	}
}

func mustID(t *testing.T, s string) contract.ID {
	id, err := contract.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
