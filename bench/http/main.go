// Command http measures Extagram's HTTP performance against nginx serving
// the same bytes. It builds the binary, starts the site with every role as
// its own process on loopback (two feed replicas, upload, blob and the edge
// over HTTPS, uploads not rate-limited, /metrics on every role), seeds posts
// through the store package, starts Debian's nginx over TLS serving, as
// files, the very bodies the edge served for each path, and drives both with
// wrk (`wrk -t2 -c32 -d<duration> --latency` after a warm-up run). It prints
// one table: for each path our requests per second, p50, p99 and errors,
// nginx's, and the ratio of the two, and the same for a plain Go net/http
// server writing those bytes from memory (the ceiling of Go's HTTP and TLS
// stack, between the two). Uploads (POST /upload.php, 16
// connections) are compared with the database's own ceiling: 16 connections
// each inserting a 120 KB row per transaction. Then come the peak RSS of
// every process of the site and how long each phase took.
//
//	go run ./bench/http [-duration 10s] [-warmup 2s] [-store mysql|embedded] [-paths feed20,feed,deep,api,image,css,upload] [-keep]
//
// The feed is measured at 20 posts, each with a photo, and at 100,000 posts
// whose newest 20 are the same photo posts (same ids, same images), so page
// 1 shows the same posts at both sizes. Post keys grow with insertion, so the
// two sizes are two databases: the first holds the 20 photo posts; the
// second 99,980 text posts and then the same 20 photo posts. The site is
// started again over the second database before the 100,000-post paths are
// measured.
//
// It needs nginx and wrk (apt-get install -y nginx wrk) and, unless
// -store embedded, the MySQL server of -mysql-dsn (default
// EXTAGRAM_TEST_MYSQL_DSN, else root@tcp(127.0.0.1:3306)/), on which it
// creates its own databases and drops them when it ends. It stops every
// process it started when it ends, fails or is interrupted, and stops by
// itself after -timeout. It exits non-zero when something failed (a process
// died, wrk saw errors or no requests, uploads went missing, nginx did not
// start), never because of a figure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The paths, in the order they are measured (-paths names).
var allPaths = []string{"feed20", "feed", "deep", "api", "image", "css", "upload"}

type config struct {
	duration    time.Duration
	warmup      time.Duration
	ceiling     time.Duration
	store       string
	mysqlDSN    string
	paths       []string
	posts       int
	seeders     int
	conns       int
	uploadConns int
	timeout     time.Duration
	keep        bool
}

func (c config) has(path string) bool { return slices.Contains(c.paths, path) }

// needLarge reports whether a path on the large feed is measured.
func (c config) needLarge() bool {
	return slices.ContainsFunc(c.paths, func(p string) bool { return p != "feed20" })
}

func main() {
	var cfg config
	var paths string
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "length of each measured wrk run (per path and server)")
	flag.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "length of the warm-up wrk run before each measured one (0: none)")
	flag.DurationVar(&cfg.ceiling, "ceiling-duration", 5*time.Second, "length of the database ceiling measurement")
	flag.StringVar(&cfg.store, "store", "mysql", "store of the site: mysql (the server of -mysql-dsn) or embedded (SQLite files in the temp folder)")
	flag.StringVar(&cfg.mysqlDSN, "mysql-dsn", envOr("EXTAGRAM_TEST_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/"), "MySQL server on which the benchmark creates (and drops) its own databases")
	flag.StringVar(&paths, "paths", strings.Join(allPaths, ","), "paths to measure, comma-separated: feed20 (GET / at 20 posts), feed (GET / at -posts posts), deep (an older page in the middle of them), api (GET /api/v1/posts), image (GET /storage/{id}), css (GET /static/style.css), upload (POST /upload.php)")
	flag.IntVar(&cfg.posts, "posts", 100000, "posts of the large feed (the newest 20 with photos)")
	flag.IntVar(&cfg.seeders, "seeders", 16, "goroutines seeding posts through the store")
	flag.IntVar(&cfg.conns, "c", 32, "wrk connections for the GET paths")
	flag.IntVar(&cfg.uploadConns, "upload-c", 16, "wrk connections for uploads, and the database ceiling's connections")
	flag.DurationVar(&cfg.timeout, "timeout", 15*time.Minute, "stop everything after this long (with -keep: this long before the processes are kept)")
	flag.BoolVar(&cfg.keep, "keep", false, "after the table, keep the site and nginx running and print their addresses (for pprof and /metrics) until Ctrl-C")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench/http [flags]\n\nMeasures the site's HTTP performance (every role its own process) against nginx serving\nthe same bytes, with wrk; needs nginx and wrk (apt-get install -y nginx wrk).\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fail(fmt.Errorf("unexpected arguments: %s", strings.Join(flag.Args(), " ")))
	}
	for _, p := range strings.Split(paths, ",") {
		p = strings.TrimSpace(p)
		if !slices.Contains(allPaths, p) {
			fail(fmt.Errorf("-paths: unknown path %q (known: %s)", p, strings.Join(allPaths, ", ")))
		}
		if !slices.Contains(cfg.paths, p) {
			cfg.paths = append(cfg.paths, p)
		}
	}
	switch {
	case cfg.store != "mysql" && cfg.store != "embedded":
		fail(fmt.Errorf("-store must be mysql or embedded, not %q", cfg.store))
	case cfg.posts < 2*photoPosts:
		fail(fmt.Errorf("-posts must be at least %d", 2*photoPosts))
	case cfg.duration < time.Second:
		fail(errors.New("-duration must be at least 1s (wrk counts in seconds)"))
	case cfg.seeders < 1 || cfg.conns < 2 || cfg.uploadConns < 2:
		fail(errors.New("-seeders must be at least 1, -c and -upload-c at least 2 (wrk runs 2 threads)"))
	}

	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(sigCtx, cfg)
	if err != nil {
		fail(err)
	}
	if !ok {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench/http:", err)
	os.Exit(1)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// logf reports progress on standard error; the results go to standard
// output.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
