// Command render draws deploy/observability's Grafana dashboard from a
// live Prometheus and screenshots it with headless Chromium: the panels,
// their layout, titles, units and queries come from the dashboard's JSON,
// the values from Prometheus's range queries. It made the README's
// docs/dashboard.png, where no Grafana is at hand.
//
//	go run ./deploy/observability/render -prometheus http://127.0.0.1:9090
//
// With -demo it first runs a mesh of its own (every role as a process over
// MySQL, as hatest does) under load for -demo-time, with Prometheus
// scraping it: page loads, missing posts, uploads, a feed replica killed
// for a while, image files deleted so that blob repairs them.
//
//	go run ./deploy/observability/render -demo -mysql-dsn 'root@tcp(127.0.0.1:3306)/'
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"
)

type config struct {
	dashboard    string
	prometheus   string
	out          string
	chromium     string
	span         time.Duration
	rateInterval time.Duration
	width        int
	demo         bool
	demoTime     time.Duration
	mysqlDSN     string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.dashboard, "dashboard", "deploy/observability/grafana/dashboards/extagram.json", "the Grafana dashboard's JSON")
	flag.StringVar(&cfg.prometheus, "prometheus", "", "Prometheus's base URL (not with -demo)")
	flag.StringVar(&cfg.out, "out", "docs/dashboard.png", "the PNG to write")
	flag.StringVar(&cfg.chromium, "chromium", os.Getenv("EXTAGRAM_CHROMIUM"), "the Chromium binary (default: found on PATH)")
	flag.DurationVar(&cfg.span, "range", 15*time.Minute, "the time range drawn, up to now")
	flag.DurationVar(&cfg.rateInterval, "rate-interval", time.Minute, "what Grafana's $__rate_interval stands for")
	flag.IntVar(&cfg.width, "width", 1600, "the page's width in pixels")
	flag.BoolVar(&cfg.demo, "demo", false, "run a mesh under load with Prometheus, and draw that")
	flag.DurationVar(&cfg.demoTime, "demo-time", 10*time.Minute, "how long the demo runs before the picture")
	flag.StringVar(&cfg.mysqlDSN, "mysql-dsn", os.Getenv("EXTAGRAM_TEST_MYSQL_DSN"), "with -demo: a MySQL server's DSN (a database is created and dropped)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) error {
	raw, err := os.ReadFile(cfg.dashboard)
	if err != nil {
		return err
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("%s: %w", cfg.dashboard, err)
	}
	if cfg.demo {
		stopDemo, url, err := startDemo(ctx, cfg)
		if stopDemo != nil {
			defer stopDemo()
		}
		if err != nil {
			return err
		}
		cfg.prometheus = url
		cfg.span = cfg.demoTime
	}
	if cfg.prometheus == "" {
		return fmt.Errorf("-prometheus or -demo is required")
	}
	end := time.Now()
	page, err := drawDashboard(ctx, d, promClient{url: cfg.prometheus}, end.Add(-cfg.span), end, cfg)
	if err != nil {
		return err
	}
	return screenshot(ctx, cfg, page)
}
