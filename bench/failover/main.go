// Command failover measures Extagram's high availability with every role
// as its own process on loopback over a MySQL database: concurrent clients
// load the feed page through the edge while a feed replica is killed with
// SIGKILL and restarted, frozen with SIGSTOP and resumed, and drained with
// SIGTERM and restarted; then every replica is stopped (the edge must
// answer 503 with Retry-After) and one restarted; then 1,000 page loads
// show how evenly the replicas share the work. For each scenario it prints
// the requests sent and failed and the p50/p99/max latency before, during
// and after the event, and each replica's share of the ListPosts calls
// (from the replicas' metrics).
//
//	go run ./bench/failover [-replicas 2] [-clients 32] [-duration 20s] [-mysql-dsn 'root@tcp(127.0.0.1:3306)/']
//
// It creates its own database on the server and drops it when it ends,
// and stops by itself (see -timeout).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/extagram/extagram/hatest"
)

type config struct {
	replicas  int
	clients   int
	duration  time.Duration
	mysqlDSN  string
	scenarios []string
	drain     time.Duration
	timeout   time.Duration
	timeline  bool
}

func main() {
	var cfg config
	var scenarios string
	flag.IntVar(&cfg.replicas, "replicas", 2, "feed replicas")
	flag.IntVar(&cfg.clients, "clients", 32, "concurrent clients loading the feed page")
	flag.DurationVar(&cfg.duration, "duration", 20*time.Second, "length of each scenario; the event starts at a quarter of it and ends at three quarters")
	flag.StringVar(&cfg.mysqlDSN, "mysql-dsn", envOr("EXTAGRAM_TEST_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/"), "MySQL server on which the benchmark creates (and drops) its own database")
	flag.StringVar(&scenarios, "scenarios", "kill,stop,term,alldown,share", "scenarios to run, comma-separated")
	flag.DurationVar(&cfg.drain, "drain-period", 2*time.Second, "the services' --drain-period")
	flag.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "stop everything after this long")
	flag.BoolVar(&cfg.timeline, "timeline", false, "also print each scenario second by second")
	flag.Parse()
	cfg.scenarios = strings.Split(scenarios, ",")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, cfg config, w io.Writer) (err error) {
	dir, err := os.MkdirTemp("", "extagram-failover-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			fmt.Fprintf(os.Stderr, "process logs kept in %s\n", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	bin, err := hatest.Build(ctx, dir)
	if err != nil {
		return err
	}
	dsn, drop, err := hatest.CreateDatabase(ctx, cfg.mysqlDSN, "extagram_bench_")
	if err != nil {
		return err
	}
	defer drop()
	c, err := hatest.Start(ctx, hatest.Options{Bin: bin, Dir: dir, DSN: dsn, Replicas: cfg.replicas, DrainPeriod: cfg.drain, Posts: 50})
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(w, "Extagram failover benchmark: %d feed replicas, %d clients loading GET / through the edge, MySQL, every role its own process.\n\n", cfg.replicas, cfg.clients)

	b := &bench{cfg: cfg, c: c, w: w}
	for _, s := range cfg.scenarios {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		switch strings.TrimSpace(s) {
		case "kill":
			err = b.kill(ctx)
		case "stop":
			err = b.freeze(ctx)
		case "term":
			err = b.term(ctx)
		case "alldown":
			err = b.allDown(ctx)
		case "share":
			err = b.share(ctx)
		default:
			err = fmt.Errorf("unknown scenario %q", s)
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s: %w", s, err)
		}
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", s, err, c.Logs(3000))
		}
	}
	return nil
}

type bench struct {
	cfg config
	c   *hatest.Cluster
	w   io.Writer
}

// event is what a scenario does at a quarter of its duration (start) and
// at three quarters (end) to the replica it picks.
type event struct {
	title      string
	start, end func(p *hatest.Proc) error
}

func (b *bench) kill(ctx context.Context) error {
	return b.scenario(ctx, b.c.Feeds[0], event{
		title: "kill -9 of %s, restarted %s later",
		start: func(p *hatest.Proc) error { return p.Kill() },
		end:   func(p *hatest.Proc) error { return p.Start() },
	})
}

func (b *bench) freeze(ctx context.Context) error {
	return b.scenario(ctx, b.c.Feeds[0], event{
		title: "SIGSTOP of %s, SIGCONT %s later",
		start: func(p *hatest.Proc) error { return p.Signal(syscall.SIGSTOP) },
		end:   func(p *hatest.Proc) error { return p.Signal(syscall.SIGCONT) },
	})
}

func (b *bench) term(ctx context.Context) error {
	exited := make(chan error, 1)
	return b.scenario(ctx, b.c.Feeds[len(b.c.Feeds)-1], event{
		title: "SIGTERM of %s (graceful drain), restarted %s later",
		start: func(p *hatest.Proc) error {
			if err := p.Signal(syscall.SIGTERM); err != nil {
				return err
			}
			go func() { exited <- p.Wait(30 * time.Second) }()
			return nil
		},
		end: func(p *hatest.Proc) error {
			if err := <-exited; err != nil {
				return fmt.Errorf("%s did not exit cleanly after SIGTERM: %w", p.Name, err)
			}
			return p.Start()
		},
	})
}

// scenario loads the page for the configured duration; at a quarter of it
// ev.start is applied to p and at three quarters ev.end.
func (b *bench) scenario(ctx context.Context, p *hatest.Proc, ev event) error {
	d := b.cfg.duration
	t1, t2 := d/4, d*3/4
	client := b.warmClient()
	calls := hatest.FollowCalls(b.c.Feeds, 100*time.Millisecond)
	load := hatest.StartLoad(client, b.c.URL+"/", b.cfg.clients, 0)
	var errStart, errEnd, errCtx error
	if errCtx = load.WaitUntil(ctx, t1); errCtx == nil {
		errStart = ev.start(p)
		errCtx = load.WaitUntil(ctx, t2)
		if errStart == nil {
			errEnd = ev.end(p)
			calls.Mark(p)
		}
		if errCtx == nil {
			errCtx = load.WaitUntil(ctx, d)
		}
	}
	samples := load.Stop()
	served := calls.Stop()
	if err := errors.Join(errStart, errEnd, errCtx); err != nil {
		return err
	}
	fmt.Fprintf(b.w, "== "+ev.title+" (event from %s to %s of %s)\n", p.Name, t2-t1, t1, t2, d)
	b.table(samples, []phase{
		{fmt.Sprintf("before (0-%s)", t1), 0, t1},
		{fmt.Sprintf("during (%s-%s)", t1, t2), t1, t2},
		{fmt.Sprintf("after (%s-%s)", t2, d), t2, d + time.Minute},
	})
	if b.cfg.timeline {
		var secs []phase
		for from := time.Duration(0); from < d; from += time.Second {
			secs = append(secs, phase{fmt.Sprintf("%s-%s", from, from+time.Second), from, from + time.Second})
		}
		b.table(samples, secs)
	}
	b.shares(served)
	if again, ok := calls.ServedAgain(p); ok {
		fmt.Fprintf(b.w, "%s served again %s after the event ended\n", p.Name, again.Round(10*time.Millisecond))
	} else {
		fmt.Fprintf(b.w, "%s did NOT serve again before the end\n", p.Name)
	}
	fmt.Fprintln(b.w)
	// Every replica must be back in rotation before the next scenario.
	for _, f := range b.c.Feeds {
		if err := b.c.WaitServes(ctx, f, 30*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// warmClient returns a client whose connections to the edge are open, so
// that TLS handshakes do not count in the first phase.
func (b *bench) warmClient() *http.Client {
	client := hatest.NewClient(b.cfg.clients)
	hatest.StartLoad(client, b.c.URL+"/", b.cfg.clients, int64(4*b.cfg.clients)).Wait()
	return client
}

type phase struct {
	name     string
	from, to time.Duration
}

func (b *bench) table(samples []hatest.Sample, phases []phase) {
	tw := tabwriter.NewWriter(b.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tsent\tfailed\tp50\tp99\tmax\t")
	var failures []hatest.Sample
	for _, ph := range phases {
		st := hatest.Summarize(samples, ph.from, ph.to)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t\n", ph.name, st.Sent, st.Failed, ms(st.P50), ms(st.P99), ms(st.Max))
		failures = append(failures, st.FirstFailures...)
	}
	st := hatest.Summarize(samples, 0, 0)
	fmt.Fprintf(tw, "all\t%d\t%d\t%s\t%s\t%s\t\n", st.Sent, st.Failed, ms(st.P50), ms(st.P99), ms(st.Max))
	tw.Flush()
	for i, f := range failures {
		if i == 5 {
			break
		}
		fmt.Fprintf(b.w, "  failed: %s\n", f)
	}
}

func (b *bench) shares(calls map[string]float64) {
	shares := hatest.Shares(calls)
	var parts []string
	for _, f := range b.c.Feeds {
		parts = append(parts, fmt.Sprintf("%s %.1f%% (%.0f calls)", f.Name, 100*shares[f.Name], calls[f.Name]))
	}
	fmt.Fprintf(b.w, "ListPosts share: %s\n", strings.Join(parts, ", "))
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

// allDown stops every replica, checks that the page answers 503 with
// Retry-After, and how fast; then starts one and times its first 200.
func (b *bench) allDown(ctx context.Context) error {
	for _, f := range b.c.Feeds {
		if err := f.Kill(); err != nil {
			return err
		}
	}
	client := hatest.NewClient(1)
	var lat []time.Duration
	bad := 0
	for range 20 {
		code, ra, d, err := hatest.Get(ctx, client, b.c.URL+"/")
		lat = append(lat, d)
		if err != nil || code != http.StatusServiceUnavailable || ra == "" {
			bad++
			fmt.Fprintf(b.w, "  unexpected: status %d, Retry-After %q, %v\n", code, ra, err)
		}
	}
	slices.Sort(lat)
	fmt.Fprintf(b.w, "== every feed replica killed: GET / x20 -> %d answered 503 with Retry-After, latency first %s, max %s\n",
		20-bad, ms(lat[0]), ms(lat[len(lat)-1]))
	first := b.c.Feeds[0]
	started := time.Now()
	if err := first.Start(); err != nil {
		return err
	}
	for {
		code, _, _, _ := hatest.Get(ctx, client, b.c.URL+"/")
		if code == http.StatusOK {
			break
		}
		if time.Since(started) > 30*time.Second {
			return fmt.Errorf("no 200 within 30s of restarting %s", first.Name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	fmt.Fprintf(b.w, "   %s started again: first 200 after %s (process start included)\n\n", first.Name, time.Since(started).Round(10*time.Millisecond))
	for _, f := range b.c.Feeds[1:] {
		if err := f.Start(); err != nil {
			return err
		}
	}
	for _, f := range b.c.Feeds {
		if err := b.c.WaitServes(ctx, f, 30*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// share loads the page 1,000 times and prints each replica's share.
func (b *bench) share(ctx context.Context) error {
	const n = 1000
	client := b.warmClient()
	calls := hatest.FollowCalls(b.c.Feeds, time.Second)
	load := hatest.StartLoad(client, b.c.URL+"/", b.cfg.clients, n)
	samples := load.Wait()
	served := calls.Stop()
	fmt.Fprintf(b.w, "== %d page loads, %d clients, no event\n", n, b.cfg.clients)
	b.table(samples, nil)
	b.shares(served)
	fmt.Fprintln(b.w)
	return ctx.Err()
}
