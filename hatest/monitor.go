package hatest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// This file runs Debian's prometheus and prometheus-alertmanager (or any
// build of them on PATH) as processes on loopback, for tests and tools
// that watch a Cluster the way production does.

// MetricsTargets returns the /metrics addresses of the cluster's
// processes by role (edge, feed, upload, blob): the jobs of
// deploy/observability's scrape configurations.
func (c *Cluster) MetricsTargets() map[string][]string {
	t := map[string][]string{}
	t["edge"] = []string{c.Edge.MetricsAddr}
	t["upload"] = []string{c.Upload.MetricsAddr}
	t["blob"] = []string{c.Blob.MetricsAddr}
	for _, f := range c.Feeds {
		t["feed"] = append(t["feed"], f.MetricsAddr)
	}
	return t
}

// PrometheusOptions configures StartPrometheus.
type PrometheusOptions struct {
	// Bin is the prometheus binary (default: prometheus on PATH).
	Bin string
	// Dir holds its configuration, its data and its log.
	Dir string
	// Targets are the /metrics addresses to scrape, by job.
	Targets map[string][]string
	// RuleFiles are loaded as they are.
	RuleFiles []string
	// Alertmanager is the host:port alerts go to; none when empty.
	Alertmanager string
	// Interval is the scrape and evaluation interval (default 1s).
	Interval time.Duration
}

// Prometheus is a running Prometheus.
type Prometheus struct {
	*Proc
	URL string // http://127.0.0.1:PORT
}

// StartPrometheus writes a configuration that scrapes opts.Targets, starts
// Prometheus with it and waits until it is ready.
func StartPrometheus(ctx context.Context, opts PrometheusOptions) (*Prometheus, error) {
	if opts.Bin == "" {
		opts.Bin = "prometheus"
	}
	if opts.Interval == 0 {
		opts.Interval = time.Second
	}
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\n  scrape_timeout: %s\n", opts.Interval, opts.Interval, opts.Interval)
	if len(opts.RuleFiles) > 0 {
		b.WriteString("rule_files:\n")
		for _, f := range opts.RuleFiles {
			fmt.Fprintf(&b, "  - %s\n", quote(f))
		}
	}
	if opts.Alertmanager != "" {
		fmt.Fprintf(&b, "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [%s]\n", quote(opts.Alertmanager))
	}
	b.WriteString("scrape_configs:\n")
	for job, targets := range opts.Targets {
		fmt.Fprintf(&b, "  - job_name: %s\n    static_configs:\n      - targets: [", quote(job))
		for i, t := range targets {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quote(t))
		}
		b.WriteString("]\n")
	}
	cfg := filepath.Join(opts.Dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	addr, err := FreePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	p := newProc(opts.Bin, "prometheus", addr, addr, opts.Dir, childEnv(), []string{
		"--config.file=" + cfg, "--storage.tsdb.path=" + filepath.Join(opts.Dir, "prometheus-data"),
		"--web.listen-address=" + addr, "--log.level=warn",
	})
	if err := p.Start(); err != nil {
		return nil, err
	}
	prom := &Prometheus{Proc: p, URL: "http://" + addr}
	if err := waitOK(ctx, p, prom.URL+"/-/ready", 30*time.Second); err != nil {
		_ = p.Kill()
		return nil, err
	}
	return prom, nil
}

// quote writes s as a YAML (JSON) string.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Query evaluates an instant query and returns the result's samples as
// label sets with their value.
func (p *Prometheus) Query(ctx context.Context, query string) ([]QuerySample, error) {
	u := p.URL + "/api/v1/query?query=" + url.QueryEscape(query)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("hatest: query %q: %w", query, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("hatest: query %q: %s", query, body.Error)
	}
	var out []QuerySample
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		out = append(out, QuerySample{Labels: r.Metric, Value: s})
	}
	return out, nil
}

// QuerySample is one sample of a query's result; Value as Prometheus writes
// it.
type QuerySample struct {
	Labels map[string]string
	Value  string
}

// Alertmanager is a running Alertmanager.
type Alertmanager struct {
	*Proc
	URL string // http://127.0.0.1:PORT
}

// StartAlertmanager starts Alertmanager (bin; default
// prometheus-alertmanager, Debian's name, else alertmanager on PATH) with
// the configuration file config, without clustering, keeping its state
// in dir, and waits until it is ready.
func StartAlertmanager(ctx context.Context, bin, dir, config string) (*Alertmanager, error) {
	if bin == "" {
		bin = "prometheus-alertmanager"
		if _, err := exec.LookPath(bin); err != nil {
			bin = "alertmanager"
		}
	}
	addr, err := FreePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	p := newProc(bin, "alertmanager", addr, addr, dir, childEnv(), []string{
		"--config.file=" + config, "--storage.path=" + filepath.Join(dir, "alertmanager-data"),
		"--web.listen-address=" + addr, "--cluster.listen-address=", "--log.level=warn",
	})
	if err := p.Start(); err != nil {
		return nil, err
	}
	am := &Alertmanager{Proc: p, URL: "http://" + addr}
	if err := waitOK(ctx, p, am.URL+"/-/ready", 30*time.Second); err != nil {
		_ = p.Kill()
		return nil, err
	}
	return am, nil
}

// waitOK polls url until it answers 200, while p runs.
func waitOK(ctx context.Context, p *Proc, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if !p.Running() {
			return fmt.Errorf("hatest: %s exited: %v\n%s", p.Name, p.Wait(0), p.Log(2000))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := metricsClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("hatest: %s not ready at %s: %w\n%s", p.Name, url, ctx.Err(), p.Log(2000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
