package hatest_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/extagram/extagram/hatest"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store/storetest"
)

// bin is the extagram binary TestMain builds for every test.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "extagram-hatest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	bin, err = hatest.Build(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const clients = 32

// startCluster starts a cluster on a new MySQL database; every process is
// killed when the test ends, and their logs are shown if it failed.
func startCluster(t *testing.T, opts hatest.Options) *hatest.Cluster {
	t.Helper()
	if opts.DSN == "" {
		opts.DSN = storetest.MySQLDSN(t)
	}
	opts.Bin = bin
	opts.Dir = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := hatest.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			t.Logf("process logs:\n%s", c.Logs(4000))
		}
	})
	return c
}

// startLoad starts clients loading the page (limit: see hatest.StartLoad),
// stopped when the test ends if the test has not stopped it.
func startLoad(t *testing.T, c *hatest.Cluster, clients int, limit int64) *hatest.Load {
	load := hatest.StartLoad(hatest.NewClient(clients), c.URL+"/", clients, limit)
	t.Cleanup(func() { load.Stop() })
	return load
}

// followCalls follows the replicas' ListPosts counters until the test
// ends, or Stop.
func followCalls(t *testing.T, procs []*hatest.Proc, interval time.Duration) *hatest.Calls {
	calls := hatest.FollowCalls(procs, interval)
	t.Cleanup(func() { calls.Stop() })
	return calls
}

// checkNoFailures fails the test if any page load did not answer 200, and
// logs the figures of the run.
func checkNoFailures(t *testing.T, samples []hatest.Sample) {
	t.Helper()
	st := hatest.Summarize(samples, 0, 0)
	t.Logf("%d page loads, %d failed; p50 %s, p99 %s, max %s", st.Sent, st.Failed, st.P50, st.P99, st.Max)
	if st.Sent == 0 {
		t.Fatal("no page load was made")
	}
	if st.Failed > 0 {
		t.Errorf("%d of %d page loads failed (statuses %v); first: %v", st.Failed, st.Sent, st.FailedStatuses, st.FirstFailures)
	}
}

// runUntilServed keeps the load going until calls saw p serve again after
// Mark, at most limit, then for one more second; it returns the samples.
func runUntilServed(t *testing.T, load *hatest.Load, calls *hatest.Calls, p *hatest.Proc, limit time.Duration) []hatest.Sample {
	t.Helper()
	testutil.Within(limit, func() bool { _, ok := calls.ServedAgain(p); return ok })
	time.Sleep(time.Second)
	samples := load.Stop()
	calls.Stop()
	if d, ok := calls.ServedAgain(p); ok {
		t.Logf("%s served %s after being restarted, resumed or added", p.Name, d.Round(time.Millisecond))
	} else {
		t.Errorf("%s did not serve again within %s", p.Name, limit)
	}
	return samples
}

// One of two replicas killed with SIGKILL under load, then restarted: no
// page load fails, and the restarted replica serves again.
func TestKillRestart(t *testing.T) {
	c := startCluster(t, hatest.Options{})
	victim := c.Feeds[0]
	calls := followCalls(t, c.Feeds, 100*time.Millisecond)
	load := startLoad(t, c, clients, 0)
	load.SleepUntil(2 * time.Second)
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	load.SleepUntil(5 * time.Second)
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	calls.Mark(victim)
	checkNoFailures(t, runUntilServed(t, load, calls, victim, 15*time.Second))
}

// Every replica down: the page answers 503 with Retry-After (the time it
// takes is logged; bench/failover prints it), and 200 again once one
// replica is back.
func TestAllDown(t *testing.T) {
	c := startCluster(t, hatest.Options{})
	for _, f := range c.Feeds {
		if err := f.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	for range 5 {
		code, retryAfter, d, err := hatest.Get(ctx, c.Client, c.URL+"/")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("every replica down: %d, Retry-After %q, in %s", code, retryAfter, d.Round(time.Microsecond))
		if code != http.StatusServiceUnavailable || retryAfter == "" {
			t.Errorf("every replica down: got %d with Retry-After %q, want 503 with Retry-After", code, retryAfter)
		}
	}
	started := time.Now()
	if err := c.Feeds[1].Start(); err != nil {
		t.Fatal(err)
	}
	for {
		code, _, _, err := hatest.Get(ctx, c.Client, c.URL+"/")
		if err == nil && code == http.StatusOK {
			t.Logf("first 200 %s after starting %s", time.Since(started).Round(time.Millisecond), c.Feeds[1].Name)
			return
		}
		if time.Since(started) > 20*time.Second {
			t.Fatalf("no 200 within 20s of starting %s again (last: %d %v)", c.Feeds[1].Name, code, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SIGTERM to a replica under load: it drains and exits cleanly, and no page
// load fails.
func TestSIGTERM(t *testing.T) {
	c := startCluster(t, hatest.Options{DrainPeriod: time.Second})
	victim, other := c.Feeds[0], c.Feeds[1]
	calls := followCalls(t, c.Feeds, 100*time.Millisecond)
	load := startLoad(t, c, clients, 0)
	load.SleepUntil(2 * time.Second)
	if err := victim.Terminate(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	calls.Mark(other)
	time.Sleep(2 * time.Second)
	samples := load.Stop()
	calls.Stop()
	checkNoFailures(t, samples)
	if _, ok := calls.ServedAgain(other); !ok {
		t.Errorf("%s served nothing after %s exited", other.Name, victim.Name)
	}
}

// One of two replicas frozen with SIGSTOP under load, then resumed: no page
// load fails (the edge hedges calls the frozen replica does not answer),
// and the replica serves again. The latency is logged; bench/failover
// prints it.
func TestSIGSTOP(t *testing.T) {
	c := startCluster(t, hatest.Options{})
	victim := c.Feeds[0]
	calls := followCalls(t, c.Feeds, 100*time.Millisecond)
	load := startLoad(t, c, clients, 0)
	const stopAt, contAt = 2 * time.Second, 8 * time.Second
	load.SleepUntil(stopAt)
	if err := victim.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	load.SleepUntil(contAt)
	if err := victim.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	calls.Mark(victim)
	samples := runUntilServed(t, load, calls, victim, 10*time.Second)
	during := hatest.Summarize(samples, stopAt, contAt)
	t.Logf("while %s was stopped: %d page loads, p50 %s, p99 %s, max %s", victim.Name, during.Sent, during.P50, during.P99, during.Max)
	checkNoFailures(t, samples)
}

// Over 1,000 page loads each of two replicas handles 40% to 60% of the
// ListPosts calls, as their own metrics count them.
func TestShare(t *testing.T) {
	c := startCluster(t, hatest.Options{})
	calls := followCalls(t, c.Feeds, time.Hour) // read at the start and at Stop
	samples := startLoad(t, c, clients, 1000).Wait()
	handled := calls.Stop()
	checkNoFailures(t, samples)
	for name, share := range hatest.Shares(handled) {
		t.Logf("%s: %.0f calls, %.1f%%", name, handled[name], 100*share)
		if share < 0.40 || share > 0.60 {
			t.Errorf("%s handled %.1f%% of the calls, want 40%% to 60%% (%v)", name, 100*share, handled)
		}
	}
}
