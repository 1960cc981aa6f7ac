// Package hatest runs Extagram as deployed: every role a process of the
// extagram binary on loopback over one MySQL database, with clients loading
// the feed page through the edge while feed replicas fail. Its tests and
// bench/failover use it.
package hatest

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/meshtls"
	"github.com/extagram/extagram/store"
)

// Options configures a cluster.
type Options struct {
	Bin, Dir string // the extagram binary (see Build); logs, data and uploads
	DSN      string // an existing MySQL database, migrated and seeded with Posts posts (default 30)
	Posts    int
	// Replicas feed replicas (default 2) on FeedAddrs (default: free ports),
	// each over its DSN of FeedDSNs if set.
	Replicas            int
	FeedAddrs, FeedDSNs []string
	FeedTarget          string // the edge's --feed-target (default: the replicas' addresses)
	// Every role's --drain-period (default 1s); the services'
	// --max-connection-age if set.
	DrainPeriod, MaxConnectionAge time.Duration
	// WatchFeed lets the edge keep the newest page from WatchFeed; without
	// it the edge asks the replicas on every view (--ask-feed-per-view).
	WatchFeed bool
	EdgeArgs  []string // more flags of the edge
}

// Cluster is a running mesh of processes.
type Cluster struct {
	URL                string       // https://127.0.0.1:PORT of the edge
	Client             *http.Client // for checks (load uses its own)
	Edge, Upload, Blob *Proc
	Feeds              []*Proc
	Operator           meshtls.Files // the operator identity, for Health

	opts    Options
	meshDir string
	procs   []*Proc
}

// Start seeds the database, starts upload, blob, the feed replicas and the
// edge, and waits until the edge is ready and every replica has served a
// page through it.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	opts.Replicas = cmp.Or(opts.Replicas, 2)
	opts.DrainPeriod = cmp.Or(opts.DrainPeriod, time.Second)
	if err := seed(ctx, opts.DSN, cmp.Or(opts.Posts, 30)); err != nil {
		return nil, err
	}
	c = &Cluster{opts: opts, Client: NewClient(4), meshDir: filepath.Join(opts.Dir, "mesh")}
	if _, err := meshtls.Generate(c.meshDir); err != nil {
		return nil, err
	}
	c.Operator = meshtls.DefaultFiles(c.meshDir, meshtls.Operator)
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, c.Logs(2000))
			c.Close()
		}
	}()
	if c.Upload, err = c.run(ctx, "upload", "upload", "", opts.DSN); err != nil {
		return c, err
	}
	if c.Blob, err = c.run(ctx, "blob", "blob", "", opts.DSN); err != nil {
		return c, err
	}
	var addrs []string
	for i := range opts.Replicas {
		p, err := c.run(ctx, fmt.Sprintf("feed-%d", i+1), "feed", at(opts.FeedAddrs, i, ""), at(opts.FeedDSNs, i, opts.DSN))
		if err != nil {
			return c, err
		}
		c.Feeds = append(c.Feeds, p)
		addrs = append(addrs, p.Addr)
	}
	args := []string{"--feed-target", cmp.Or(opts.FeedTarget, strings.Join(addrs, ",")),
		"--upload-target", c.Upload.Addr, "--blob-target", c.Blob.Addr}
	if !opts.WatchFeed {
		args = append(args, "--ask-feed-per-view")
	}
	if c.Edge, err = c.run(ctx, "edge", "edge", "", "", append(args, opts.EdgeArgs...)...); err != nil {
		return c, err
	}
	c.URL = "https://" + c.Edge.Addr
	err = poll(ctx, 30*time.Second, 20*time.Millisecond, "ready edge", func() (bool, string) {
		code, body, _, err := get(ctx, c.Client, c.URL+"/readyz")
		return err == nil && code == http.StatusOK, fmt.Sprintf("%d %s %v", code, strings.TrimSpace(body), err)
	})
	for _, f := range c.Feeds {
		if err == nil && !opts.WatchFeed { // else page loads make no call to wait for
			err = c.WaitServes(ctx, f, 30*time.Second)
		}
	}
	return c, err
}

func at(s []string, i int, or string) string {
	if i < len(s) {
		return s[i]
	}
	return or
}

// run starts a process of role (its mesh identity too) listening on addr
// (default: a free port on 127.0.0.1) with the flags more, and waits until
// a service reports SERVING. Close kills it.
func (c *Cluster) run(ctx context.Context, name, role, addr, dsn string, more ...string) (*Proc, error) {
	free, err1 := FreePort("127.0.0.1")
	metricsAddr, err2 := FreePort("127.0.0.1")
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	addr, listen, env := cmp.Or(addr, free), "--https-addr", []string(nil)
	if role != meshtls.Edge {
		listen, env = "--grpc-addr", []string{"EXTAGRAM_MYSQL_DSN=" + dsn}
		more = append(more, "--uploads-dir", filepath.Join(c.opts.Dir, "uploads"), "--auto-migrate=false")
		if c.opts.MaxConnectionAge > 0 {
			more = append(more, "--max-connection-age", c.opts.MaxConnectionAge.String())
		}
	}
	f := meshtls.DefaultFiles(c.meshDir, role)
	args := append([]string{role, listen, addr, "--metrics-addr", metricsAddr,
		"--data-dir", filepath.Join(c.opts.Dir, "data-"+name), "--drain-period", c.opts.DrainPeriod.String(),
		"--mesh-ca", f.CA, "--mesh-cert", f.Cert, "--mesh-key", f.Key}, more...)
	p := NewProc(c.opts.Bin, name, addr, metricsAddr, c.opts.Dir, env, args)
	c.procs = append(c.procs, p)
	if err := p.Start(); err != nil || role == meshtls.Edge {
		return p, err
	}
	if err := WaitHealth(ctx, c.Operator, p.Addr, 30*time.Second); err != nil {
		return p, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// Close kills every process (continuing stopped ones first).
func (c *Cluster) Close() {
	for _, p := range c.procs {
		_ = p.Kill()
	}
	c.Client.CloseIdleConnections()
}

// Logs returns the tail of every process's log, for a failure message.
func (c *Cluster) Logs(n int) string {
	var b strings.Builder
	for _, p := range c.procs {
		fmt.Fprintf(&b, "==== %s (%s)\n%s\n", p.Name, p.Addr, p.Log(n))
	}
	return b.String()
}

// poll calls cond every interval until it holds, for timeout at the most;
// the error has cond's last word.
func poll(ctx context.Context, timeout, interval time.Duration, what string, cond func() (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, last := cond()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("hatest: no %s within %s (last: %s)", what, timeout, last)
		case <-time.After(interval):
		}
	}
}

// WaitServes loads pages through the edge until replica p's ListPosts
// counter grows.
func (c *Cluster) WaitServes(ctx context.Context, p *Proc, timeout time.Duration) error {
	var first float64
	err := poll(ctx, timeout, 50*time.Millisecond, p.Name+" metrics", func() (bool, string) {
		n, err := ListPostsHandled(ctx, p.MetricsAddr)
		first = n
		return err == nil, fmt.Sprint(err)
	})
	if err != nil {
		return err
	}
	return poll(ctx, timeout, 20*time.Millisecond, "calls to "+p.Name, func() (bool, string) {
		for range 4 {
			_, _, _, _ = get(ctx, c.Client, c.URL+"/")
		}
		n, err := ListPostsHandled(ctx, p.MetricsAddr)
		return err == nil && n > first, fmt.Sprint(n, err)
	})
}

// seed migrates the database and adds n text posts.
func seed(ctx context.Context, dsn string, n int) error {
	st, err := store.Open(ctx, store.Config{MySQLDSN: dsn})
	if err != nil {
		return fmt.Errorf("hatest: open store: %w", err)
	}
	defer st.Close()
	for i := range n {
		if _, err := st.CreatePost(ctx, store.NewPost{ID: contract.NewID(), Text: "post " + strconv.Itoa(i+1) + " of the failover test"}); err != nil {
			return fmt.Errorf("hatest: seed: %w", err)
		}
	}
	return nil
}

var (
	portsMu sync.Mutex
	ports   = map[int]bool{} // handed out by FreePort
)

// FreePort returns host:port with a port free now and not returned before,
// below Linux's ephemeral range so that no outgoing connection takes it
// while a killed replica is down.
func FreePort(host string) (string, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if ports[port] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		ports[port] = true
		return l.Addr().String(), nil
	}
	return "", fmt.Errorf("hatest: no free port on %s", host)
}

// NewClient returns an HTTP/1.1 client of the edge's self-signed
// certificate that keeps conns connections open and follows no redirect.
func NewClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the edge's own self-signed certificate
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     time.Minute,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
}

// get returns the status, body and Retry-After header of a GET.
func get(ctx context.Context, client *http.Client, url string) (int, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), resp.Header.Get("Retry-After"), err
}

// Get is one GET of url: its status, Retry-After header and latency.
func Get(ctx context.Context, client *http.Client, url string) (code int, retryAfter string, latency time.Duration, err error) {
	start := time.Now()
	code, _, retryAfter, err = get(ctx, client, url)
	return code, retryAfter, time.Since(start), err
}

// CreateDatabase creates a database named prefix and random letters on the
// server of serverDSN, and returns its DSN and a function that drops it
// (reporting errors on stderr).
func CreateDatabase(ctx context.Context, serverDSN, prefix string) (dsn string, drop func(), err error) {
	cfg, err := mysql.ParseDSN(serverDSN)
	if err != nil {
		return "", nil, fmt.Errorf("-mysql-dsn: %w", err)
	}
	cfg.DBName = ""
	cfg.Timeout = cmp.Or(cfg.Timeout, 5*time.Second)
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return "", nil, err
	}
	db := sql.OpenDB(connector)
	name := prefix + strings.ToLower(crand.Text()[:12])
	if _, err := db.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("create database on %s: %w", cfg.Addr, err)
	}
	drop = func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(dctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			fmt.Fprintf(os.Stderr, "drop database %s: %v\n", name, err)
		}
		db.Close()
	}
	cfg.DBName = name
	return cfg.FormatDSN(), drop, nil
}
