package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/extagram/extagram/hatest"
	"github.com/extagram/extagram/internal/uploads"
	"github.com/extagram/extagram/store"
	"github.com/go-sql-driver/mysql"
)

// database is one database of the site: a MySQL database (dsn) or an
// embedded store folder (dataDir).
type database struct {
	label   string
	dsn     string
	dataDir string
}

func (d database) storeConfig() store.Config {
	return store.Config{MySQLDSN: d.dsn, DataDir: d.dataDir}
}

func (d database) String() string {
	if d.dsn != "" {
		cfg, err := mysql.ParseDSN(d.dsn)
		if err == nil {
			return fmt.Sprintf("MySQL database %s on %s", cfg.DBName, cfg.Addr)
		}
	}
	return "embedded store in " + d.dataDir
}

// mysqlServer creates the benchmark's databases and drops them at the end.
type mysqlServer struct {
	db    *sql.DB
	cfg   *mysql.Config
	names []string
}

func openServer(ctx context.Context, serverDSN string) (*mysqlServer, error) {
	cfg, err := mysql.ParseDSN(serverDSN)
	if err != nil {
		return nil, fmt.Errorf("-mysql-dsn: %w", err)
	}
	cfg.DBName = ""
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(connector)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("MySQL server %s: %w", cfg.Addr, err)
	}
	return &mysqlServer{db: db, cfg: cfg}, nil
}

// create creates a database of its own and returns its DSN.
func (s *mysqlServer) create(ctx context.Context, suffix string) (string, error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := "extagram_bench_" + hex.EncodeToString(rnd[:]) + "_" + suffix
	if _, err := s.db.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		return "", fmt.Errorf("create database on %s: %w", s.cfg.Addr, err)
	}
	s.names = append(s.names, name)
	cfg := s.cfg.Clone()
	cfg.DBName = name
	return cfg.FormatDSN(), nil
}

// close drops every database create made.
func (s *mysqlServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, name := range s.names {
		if _, err := s.db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			logf("drop database %s: %v", name, err)
		}
	}
	s.db.Close()
}

// site is Extagram with every role as its own process: the edge, two feed
// replicas, upload and blob. The services can be moved to another database
// (switchTo) on the same addresses while the edge keeps running.
type site struct {
	bin, dir string
	uploads  string // shared by upload and blob, whatever the database
	url      string // https://127.0.0.1:PORT of the edge
	client   *http.Client
	db       database

	edgeAddr, edgeMetrics string
	svcs                  []svcAddr
	edge                  *proc
	running               []*proc // the services now
	retired               []*proc // services of an earlier database
}

type svcAddr struct {
	name, role    string
	addr, metrics string
}

func newSite(bin, dir string) (*site, error) {
	s := &site{bin: bin, dir: dir, uploads: filepath.Join(dir, "uploads"), client: hatest.NewClient(8)}
	for _, n := range []struct{ name, role string }{{"upload", "upload"}, {"blob", "blob"}, {"feed-1", "feed"}, {"feed-2", "feed"}} {
		addr, err := hatest.FreePort("127.0.0.1")
		if err != nil {
			return nil, err
		}
		metrics, err := hatest.FreePort("127.0.0.1")
		if err != nil {
			return nil, err
		}
		s.svcs = append(s.svcs, svcAddr{name: n.name, role: n.role, addr: addr, metrics: metrics})
	}
	var err error
	if s.edgeAddr, err = hatest.FreePort("127.0.0.1"); err != nil {
		return nil, err
	}
	if s.edgeMetrics, err = hatest.FreePort("127.0.0.1"); err != nil {
		return nil, err
	}
	s.url = "https://" + s.edgeAddr
	return s, nil
}

// startServices starts upload, blob and the feed replicas over db and
// waits until each reports SERVING.
func (s *site) startServices(ctx context.Context, db database) error {
	s.db = db
	for _, a := range s.svcs {
		args := []string{
			a.role, "--grpc-addr", a.addr, "--metrics-addr", a.metrics,
			"--uploads-dir", s.uploads, "--drain-period", "1s", "--auto-migrate=false",
		}
		env := childEnv()
		if db.dsn != "" {
			env = childEnv("EXTAGRAM_MYSQL_DSN=" + db.dsn)
			args = append(args, "--data-dir", filepath.Join(s.dir, "data-"+a.name))
		} else {
			// Every service opens the same SQLite file (WAL mode: one
			// writer, upload; readers in the other processes).
			args = append(args, "--data-dir", db.dataDir)
		}
		p, err := startProc(a.name, a.addr, a.metrics, filepath.Join(s.dir, a.name+".log"), s.bin, env, args)
		if err != nil {
			return err
		}
		s.running = append(s.running, p)
		if err := hatest.WaitHealth(ctx, a.addr, 60*time.Second); err != nil {
			return fmt.Errorf("%s: %w\n%s", a.name, err, p.logTail(2000))
		}
	}
	return nil
}

// startEdge starts the edge in front of the services, with uploads not
// rate-limited.
func (s *site) startEdge() error {
	var feeds []string
	target := map[string]string{}
	for _, a := range s.svcs {
		if a.role == "feed" {
			feeds = append(feeds, a.addr)
		} else {
			target[a.role] = a.addr
		}
	}
	p, err := startProc("edge", s.url, s.edgeMetrics, filepath.Join(s.dir, "edge.log"), s.bin, childEnv(), []string{
		"edge", "--https-addr", s.edgeAddr, "--metrics-addr", s.edgeMetrics,
		"--data-dir", filepath.Join(s.dir, "data-edge"), "--drain-period", "1s",
		"--feed-target", strings.Join(feeds, ","), "--upload-target", target["upload"], "--blob-target", target["blob"],
		"--upload-rate", "0",
	})
	if err != nil {
		return err
	}
	s.edge = p
	return nil
}

// switchTo stops the services and starts them again over db, on the same
// addresses; the edge reconnects by itself.
func (s *site) switchTo(ctx context.Context, db database) error {
	for _, p := range s.running {
		p.stop(syscall.SIGTERM, 10*time.Second)
	}
	s.retired = append(s.retired, s.running...)
	s.running = nil
	if err := s.startServices(ctx, db); err != nil {
		return err
	}
	return s.waitReady(ctx)
}

// waitReady waits until the edge's /readyz answers 200 and every feed
// replica has served a page through it.
func (s *site) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last string
	for {
		code, _, _, err := hatest.Get(ctx, s.client, s.url+"/readyz")
		if err == nil && code == http.StatusOK {
			break
		}
		last = fmt.Sprintf("status %d, %v", code, err)
		if err := s.dead(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the edge is not ready after 60s (last: %s)\n%s", last, s.logs(2000))
		case <-time.After(50 * time.Millisecond):
		}
	}
	for _, p := range s.running {
		if !strings.HasPrefix(p.name, "feed") {
			continue
		}
		first, _ := hatest.ListPostsHandled(ctx, p.metrics)
		for {
			for range 4 {
				_, _, _, _ = hatest.Get(ctx, s.client, s.url+"/")
			}
			if n, err := hatest.ListPostsHandled(ctx, p.metrics); err == nil && n > first {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("the edge sent %s no call within 60s\n%s", p.name, s.logs(2000))
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// procs returns the processes of the site now: the edge and the services.
func (s *site) procs() []*proc {
	var out []*proc
	if s.edge != nil {
		out = append(out, s.edge)
	}
	return append(out, s.running...)
}

// dead returns an error naming every process of the site that has exited.
func (s *site) dead() error {
	var msgs []string
	for _, p := range s.procs() {
		if !p.running() {
			msgs = append(msgs, fmt.Sprintf("%s died: %v\n%s", p.name, p.exitErr(), p.logTail(3000)))
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%s", strings.Join(msgs, "\n"))
	}
	return nil
}

// close stops every process of the site: the edge first, so it sends no
// more calls.
func (s *site) close() {
	for _, p := range s.procs() {
		p.stop(syscall.SIGTERM, 10*time.Second)
	}
}

// logs returns the tail of every process's log, for a failure message.
func (s *site) logs(n int) string {
	var b strings.Builder
	for _, p := range s.procs() {
		fmt.Fprintf(&b, "==== %s (%s)\n%s\n", p.name, p.addr, p.logTail(n))
	}
	return b.String()
}

// fetch GETs uri from base with client and returns the status, the
// Content-Type and the body.
func fetch(ctx context.Context, client *http.Client, base, uri string) (int, string, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+uri, nil)
	if err != nil {
		return 0, "", nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp.StatusCode, resp.Header.Get("Content-Type"), body, err
}

// fileCount returns the number of image files in the uploads folder dir
// (0 when it does not exist).
func fileCount(dir string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		if e.Type().IsRegular() && !uploads.IsTemp(e.Name()) {
			n++
		}
	}
	return n
}
