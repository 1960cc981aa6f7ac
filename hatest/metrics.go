package hatest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/extagram/extagram/internal/meshtls"
	"github.com/extagram/extagram/internal/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

var metricsClient = &http.Client{Timeout: 2 * time.Second}

// ListPostsHandled sums grpc_server_handled_total{grpc_method="ListPosts"}
// (all codes) of the feed replica whose /metrics is at metricsAddr.
func ListPostsHandled(ctx context.Context, metricsAddr string) (float64, error) {
	code, text, _, err := get(ctx, metricsClient, "http://"+metricsAddr+"/metrics")
	const method = `grpc_method="ListPosts"`
	if err == nil && (code != http.StatusOK || !strings.Contains(text, method)) {
		err = fmt.Errorf("hatest: %s/metrics (%d) has no ListPosts counter", metricsAddr, code)
	}
	if err != nil {
		return 0, err
	}
	return testutil.MetricSum(text, "grpc_server_handled_total", method), nil
}

// Health returns the gRPC health status of the server at addr, asked as
// the mesh identity of as.
func Health(ctx context.Context, as meshtls.Files, addr string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	tlsCfg, err := meshtls.ClientConfig(as, "")
	if err != nil {
		return 0, err
	}
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.5, MaxDelay: 200 * time.Millisecond}, MinConnectTimeout: time.Second}))
	if err != nil {
		return 0, err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	return resp.GetStatus(), err
}

// WaitHealth polls the service at addr until it reports SERVING.
func WaitHealth(ctx context.Context, as meshtls.Files, addr string, timeout time.Duration) error {
	return WaitStatus(ctx, as, addr, healthpb.HealthCheckResponse_SERVING, timeout)
}

// WaitStatus polls the service at addr until it reports want.
func WaitStatus(ctx context.Context, as meshtls.Files, addr string, want healthpb.HealthCheckResponse_ServingStatus, timeout time.Duration) error {
	return poll(ctx, timeout, 50*time.Millisecond, fmt.Sprintf("%v from %s", want, addr), func() (bool, string) {
		st, err := Health(ctx, as, addr)
		return err == nil && st == want, fmt.Sprint(st, err)
	})
}

// Calls follows the ListPosts counters of feed replicas through restarts
// (a restarted process counts from 0 again) by polling their metrics.
type Calls struct {
	procs       []*Proc
	cancel      context.CancelFunc
	done        chan struct{}
	mu          sync.Mutex
	last, total map[string]float64
	mark, first map[string]time.Time // Mark's time; the counter's first growth after it
}

// FollowCalls starts polling the replicas' metrics every interval.
func FollowCalls(procs []*Proc, interval time.Duration) *Calls {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Calls{procs: procs, cancel: cancel, done: make(chan struct{}), last: map[string]float64{},
		total: map[string]float64{}, mark: map[string]time.Time{}, first: map[string]time.Time{}}
	c.poll(ctx)
	go func() {
		defer close(c.done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(interval):
				c.poll(ctx)
			}
		}
	}()
	return c
}

func (c *Calls) poll(ctx context.Context) {
	for _, p := range c.procs {
		v, err := ListPostsHandled(ctx, p.MetricsAddr)
		if err != nil {
			continue // down, frozen or not up yet
		}
		c.mu.Lock()
		grew := v // restarted: the new process counts from 0
		if last, seen := c.last[p.Name]; !seen {
			grew = 0
		} else if v >= last {
			grew = v - last
		}
		c.total[p.Name] += grew
		_, marked := c.mark[p.Name]
		if _, done := c.first[p.Name]; marked && !done && grew > 0 {
			c.first[p.Name] = time.Now()
		}
		c.last[p.Name] = v
		c.mu.Unlock()
	}
}

// Mark notes that p was restarted or resumed now, for ServedAgain.
func (c *Calls) Mark(p *Proc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mark[p.Name] = time.Now()
	delete(c.first, p.Name)
}

// ServedAgain returns the time from Mark(p) to its counter's first growth
// after it, if there was one.
func (c *Calls) ServedAgain(p *Proc) (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.first[p.Name]
	return f.Sub(c.mark[p.Name]), ok
}

// Stop polls one last time and returns each replica's calls since
// FollowCalls.
func (c *Calls) Stop() map[string]float64 {
	c.cancel()
	<-c.done
	c.poll(context.Background())
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]float64, len(c.total))
	for _, p := range c.procs {
		out[p.Name] = c.total[p.Name]
	}
	return out
}

// Shares returns each replica's fraction of the calls.
func Shares(calls map[string]float64) map[string]float64 {
	var sum float64
	for _, v := range calls {
		sum += v
	}
	out := make(map[string]float64, len(calls))
	for k, v := range calls {
		out[k] = v / max(sum, 1)
	}
	return out
}

// MetricsTargets returns the /metrics addresses of the cluster's processes
// by role, the jobs of deploy/observability's scrape configurations.
func (c *Cluster) MetricsTargets() map[string][]string {
	t := map[string][]string{"edge": {c.Edge.MetricsAddr}, "upload": {c.Upload.MetricsAddr}, "blob": {c.Blob.MetricsAddr}}
	for _, f := range c.Feeds {
		t["feed"] = append(t["feed"], f.MetricsAddr)
	}
	return t
}

// PrometheusOptions configures StartPrometheus.
type PrometheusOptions struct {
	Bin, Dir     string              // default prometheus on PATH; its configuration, data and log
	Targets      map[string][]string // the /metrics addresses to scrape, by job
	RuleFiles    []string
	Alertmanager string        // host:port alerts go to, if any
	Interval     time.Duration // of scrapes and evaluations (default 1s)
}

// Monitor is a running Prometheus or Alertmanager.
type Monitor struct {
	*Proc
	URL string // http://127.0.0.1:PORT
}

// StartPrometheus starts Prometheus scraping opts.Targets and waits until it
// is ready.
func StartPrometheus(ctx context.Context, opts PrometheusOptions) (*Monitor, error) {
	iv := cmp.Or(opts.Interval, time.Second)
	cfg := map[string]any{"global": map[string]string{
		"scrape_interval": iv.String(), "evaluation_interval": iv.String(), "scrape_timeout": iv.String()}}
	if len(opts.RuleFiles) > 0 {
		cfg["rule_files"] = opts.RuleFiles
	}
	if opts.Alertmanager != "" {
		cfg["alerting"] = map[string]any{"alertmanagers": []any{
			map[string]any{"static_configs": []any{map[string]any{"targets": []string{opts.Alertmanager}}}}}}
	}
	var jobs []any
	for job, targets := range opts.Targets {
		jobs = append(jobs, map[string]any{"job_name": job, "static_configs": []any{map[string]any{"targets": targets}}})
	}
	cfg["scrape_configs"] = jobs
	b, _ := json.Marshal(cfg) // JSON is YAML
	file := filepath.Join(opts.Dir, "prometheus.yml")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return nil, err
	}
	return startMonitor(ctx, cmp.Or(opts.Bin, "prometheus"), "prometheus", opts.Dir, func(addr string) []string {
		return []string{"--config.file=" + file, "--storage.tsdb.path=" + filepath.Join(opts.Dir, "prometheus-data"),
			"--web.listen-address=" + addr, "--log.level=warn"}
	})
}

// StartAlertmanager starts Alertmanager bin with config, unclustered, its
// state in dir, and waits until it is ready.
func StartAlertmanager(ctx context.Context, bin, dir, config string) (*Monitor, error) {
	return startMonitor(ctx, bin, "alertmanager", dir, func(addr string) []string {
		return []string{"--config.file=" + config, "--storage.path=" + filepath.Join(dir, "alertmanager-data"),
			"--web.listen-address=" + addr, "--cluster.listen-address=", "--log.level=warn"}
	})
}

// startMonitor starts bin with args for a free address and waits for its
// /-/ready.
func startMonitor(ctx context.Context, bin, name, dir string, args func(addr string) []string) (*Monitor, error) {
	addr, err := FreePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	p := NewProc(bin, name, addr, addr, dir, nil, args(addr))
	if err := p.Start(); err != nil {
		return nil, err
	}
	m := &Monitor{Proc: p, URL: "http://" + addr}
	err = poll(ctx, 30*time.Second, 100*time.Millisecond, "ready "+name, func() (bool, string) {
		if !p.Running() {
			return false, fmt.Sprintf("exited: %v", p.Wait(0))
		}
		code, _, _, err := get(ctx, metricsClient, m.URL+"/-/ready")
		return code == http.StatusOK, fmt.Sprint(code, err)
	})
	if err != nil {
		_ = p.Kill()
		return nil, fmt.Errorf("%w\n%s", err, p.Log(2000))
	}
	return m, nil
}

// Sample is one page load.
type Sample struct {
	Start   time.Duration // since the load began
	Latency time.Duration
	Status  int    // 0 when no answer came
	Err     string // the client's error, if any
}

func (s Sample) String() string {
	return fmt.Sprintf("at %s after %s: status %d %s", s.Start.Round(time.Millisecond), s.Latency.Round(time.Millisecond), s.Status, s.Err)
}

// Load is clients each loading a page in a loop, as fast as answers come.
type Load struct {
	began   time.Time
	stop    atomic.Bool
	left    atomic.Int64 // page loads still to send
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples []Sample
}

// StartLoad starts clients loading url until Stop, or until limit page
// loads if limit > 0.
func StartLoad(client *http.Client, url string, clients int, limit int64) *Load {
	l := &Load{began: time.Now()}
	l.left.Store(cmp.Or(limit, 1<<62))
	for range clients {
		l.wg.Go(func() {
			var mine []Sample
			for !l.stop.Load() && l.left.Add(-1) >= 0 {
				start := time.Now()
				// Not stopped by Stop: a running request finishes.
				code, _, _, err := get(context.Background(), client, url)
				s := Sample{Start: start.Sub(l.began), Latency: time.Since(start), Status: code}
				if err != nil {
					s.Err = err.Error()
				}
				mine = append(mine, s)
			}
			l.mu.Lock()
			l.samples = append(l.samples, mine...)
			l.mu.Unlock()
		})
	}
	return l
}

// WaitUntil waits until the load has run for d, or ctx is done.
func (l *Load) WaitUntil(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(time.Until(l.began.Add(d)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Wait waits for a limited load to end and returns its samples by start.
func (l *Load) Wait() []Sample {
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.SortFunc(l.samples, func(a, b Sample) int { return int(a.Start - b.Start) })
	return l.samples
}

// Stop lets the clients finish their requests and returns Wait's samples.
func (l *Load) Stop() []Sample {
	l.stop.Store(true)
	return l.Wait()
}

// Stats summarizes page loads.
type Stats struct {
	Sent, Failed   int
	P50, P99, Max  time.Duration
	FirstFailures  []Sample // up to 5
	FailedStatuses map[int]int
}

// Summarize summarizes the samples that started in [from, to), or from on
// if to <= 0.
func Summarize(samples []Sample, from, to time.Duration) Stats {
	st := Stats{FailedStatuses: map[int]int{}}
	var lat []time.Duration
	for _, s := range samples {
		if s.Start < from || (to > 0 && s.Start >= to) {
			continue
		}
		st.Sent++
		lat = append(lat, s.Latency)
		if s.Status != http.StatusOK {
			st.Failed++
			st.FailedStatuses[s.Status]++
			if len(st.FirstFailures) < 5 {
				st.FirstFailures = append(st.FirstFailures, s)
			}
		}
	}
	if len(lat) == 0 {
		return st
	}
	slices.Sort(lat)
	// nearest-rank percentiles
	rank := func(q float64) time.Duration {
		return lat[max(0, min(int(float64(len(lat))*q+0.999999)-1, len(lat)-1))]
	}
	st.P50, st.P99, st.Max = rank(0.50), rank(0.99), lat[len(lat)-1]
	return st
}
