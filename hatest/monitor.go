package hatest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

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
