package hatest_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/extagram/extagram/hatest"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
)

// With the edge keeping the newest page from WatchFeed: under load, one
// replica killed with SIGKILL, then the other frozen with SIGSTOP. No page
// load fails, and a post made during each event (straight into the
// database, as another edge would) is on the page soon after: the edge
// notices a stream that ends or goes quiet, asks per view meanwhile and
// watches again on a live replica.
func TestWatchedPageThroughFailures(t *testing.T) {
	dsn := storetest.MySQLDSN(t)
	c := startCluster(t, hatest.Options{DSN: dsn, WatchFeed: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := store.Open(ctx, store.Config{MySQLDSN: dsn, SkipMigrations: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// onPage posts text and returns how long the page took to show it.
	onPage := func(text string) time.Duration {
		t.Helper()
		start := time.Now()
		if _, err := st.CreatePost(ctx, store.NewPost{ID: contract.NewID(), Text: text}); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, fmt.Sprintf("%q on the page", text), func() bool {
			resp, err := c.Client.Get(c.URL + "/")
			if err != nil {
				return false
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return strings.Contains(string(body), text)
		})
		return time.Since(start)
	}

	load := startLoad(t, c, clients, 0)
	load.SleepUntil(2 * time.Second)
	t.Logf("no event: a new post on the page after %v", onPage("before any event").Round(time.Millisecond))

	killed, frozen := c.Feeds[0], c.Feeds[1]
	if err := killed.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s killed: a new post on the page after %v", killed.Name, onPage("while one replica is dead").Round(time.Millisecond))
	if err := killed.Start(); err != nil {
		t.Fatal(err)
	}
	if err := hatest.WaitHealth(ctx, c.Operator, killed.Addr, 20*time.Second); err != nil {
		t.Fatal(err)
	}

	if err := frozen.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s frozen: a new post on the page after %v", frozen.Name, onPage("while one replica is frozen").Round(time.Millisecond))
	if err := frozen.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	t.Logf("after the events: a new post on the page after %v", onPage("after the events").Round(time.Millisecond))
	checkNoFailures(t, load.Stop())
}
