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
	"github.com/extagram/extagram/internal/meshtls"
	"github.com/extagram/extagram/internal/uploads"
	"github.com/extagram/extagram/store"
	"github.com/go-sql-driver/mysql"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
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
// replicas, upload and blob. It can be started again over another database
// (switchTo).
type site struct {
	bin, dir string
	uploads  string // shared by upload and blob, whatever the database
	url      string // https://127.0.0.1:PORT of the edge
	client   *http.Client
	db       database

	edge    *proc
	running []*proc // the services now
	retired []*proc // the processes over an earlier database

	// meshDir holds the mesh's certificates: the roles speak mutual TLS,
	// as they do by default.
	meshDir string
}

func newSite(bin, dir string) *site {
	return &site{bin: bin, dir: dir, uploads: filepath.Join(dir, "uploads"), client: hatest.NewClient(8), meshDir: filepath.Join(dir, "mesh")}
}

// meshArgs are the flags that give a process of identity its mesh
// certificate, made the first time.
func (s *site) meshArgs(identity string) []string {
	if _, err := meshtls.Generate(s.meshDir); err != nil {
		panic(err) // a temporary folder of our own: cannot happen but for a full disk
	}
	f := meshtls.DefaultFiles(s.meshDir, identity)
	return []string{"--mesh-ca", f.CA, "--mesh-cert", f.Cert, "--mesh-key", f.Key}
}

// start starts upload, blob and the feed replicas over db, then the edge
// in front of them (uploads not rate-limited), and waits until the edge is
// ready and has sent calls to every feed replica.
func (s *site) start(ctx context.Context, db database) error {
	s.db = db
	for _, r := range []struct{ name, role string }{{"upload", "upload"}, {"blob", "blob"}, {"feed-1", "feed"}, {"feed-2", "feed"}} {
		env := childEnv()
		dataDir := db.dataDir // every service opens the same SQLite file (WAL mode: one writer, upload)
		if db.dsn != "" {
			env = childEnv("EXTAGRAM_MYSQL_DSN=" + db.dsn)
			dataDir = filepath.Join(s.dir, "data-"+r.name)
		}
		p, err := s.launch(ctx, r.name, env, func(addr, metrics string) []string {
			return append([]string{
				r.role, "--grpc-addr", addr, "--metrics-addr", metrics, "--data-dir", dataDir,
				"--uploads-dir", s.uploads, "--drain-period", "1s", "--auto-migrate=false",
			}, s.meshArgs(r.role)...)
		}, s.waitServing)
		if err != nil {
			return err
		}
		s.running = append(s.running, p)
	}
	var feeds []string
	target := map[string]string{}
	for _, p := range s.running {
		if strings.HasPrefix(p.name, "feed") {
			feeds = append(feeds, p.addr)
		} else {
			target[p.name] = p.addr
		}
	}
	p, err := s.launch(ctx, "edge", childEnv(), func(addr, metrics string) []string {
		return append([]string{
			"edge", "--https-addr", addr, "--metrics-addr", metrics,
			"--data-dir", filepath.Join(s.dir, "data-edge"), "--drain-period", "1s",
			"--feed-target", strings.Join(feeds, ","), "--upload-target", target["upload"], "--blob-target", target["blob"],
			// Every load comes from one address: no per-address limits.
			"--upload-rate", "0", "--max-uploads-per-client", "1000",
			// As nginx here (access_log off): the figures are of serving.
			"--access-log=false",
		}, s.meshArgs(meshtls.Edge)...)
	}, waitHTTPS)
	if err != nil {
		return err
	}
	s.edge = p
	s.url = "https://" + p.addr
	return s.waitReady(ctx)
}

// launch starts a role on free ports (args makes its flags) and waits
// until ready says it serves. Another program can take a port between
// FreePort and the role's listen: launch then tries other ports.
func (s *site) launch(ctx context.Context, name string, env []string, args func(addr, metrics string) []string, ready func(context.Context, *proc) error) (*proc, error) {
	logPath := filepath.Join(s.dir, name+".log")
	for attempt := 1; ; attempt++ {
		addr, err := hatest.FreePort("127.0.0.1")
		if err != nil {
			return nil, err
		}
		metrics, err := hatest.FreePort("127.0.0.1")
		if err != nil {
			return nil, err
		}
		logged := fileSize(logPath)
		p, err := startProc(name, addr, metrics, logPath, s.bin, env, args(addr, metrics))
		if err != nil {
			return nil, err
		}
		err = ready(ctx, p)
		if err == nil {
			return p, nil
		}
		p.stop(syscall.SIGKILL, time.Second)
		if attempt < 3 && ctx.Err() == nil && portTaken(readFrom(logPath, logged)) {
			logf("%s: a port was taken by another program; trying others", name)
			continue
		}
		return nil, fmt.Errorf("%s: %w\n%s", name, err, p.logTail(3000))
	}
}

// waitServing waits until the gRPC service p reports SERVING.
func (s *site) waitServing(ctx context.Context, p *proc) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		if !p.running() {
			return fmt.Errorf("exited: %v", p.exitErr())
		}
		st, err := hatest.Health(ctx, meshtls.DefaultFiles(s.meshDir, meshtls.Operator), p.addr)
		if err == nil && st == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("not SERVING after 60s: %v %v", st, err)
		}
	}
}

// waitHTTPS waits until the edge p answers its /healthz.
func waitHTTPS(ctx context.Context, p *proc) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	client := hatest.NewClient(1)
	defer client.CloseIdleConnections()
	for {
		if !p.running() {
			return fmt.Errorf("exited: %v", p.exitErr())
		}
		code, _, _, err := hatest.Get(ctx, client, "https://"+p.addr+"/healthz")
		if err == nil && code == http.StatusOK {
			return nil
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("no answer to /healthz after 60s: status %d, %v", code, err)
		}
	}
}

// portTaken reports whether a log says a listen failed for a port in use.
func portTaken(log string) bool {
	return strings.Contains(strings.ToLower(log), "address already in use")
}

// switchTo stops every process of the site and starts them again over db.
func (s *site) switchTo(ctx context.Context, db database) error {
	procs := s.procs()
	for _, p := range procs {
		p.stop(syscall.SIGTERM, 10*time.Second)
	}
	s.retired = append(s.retired, procs...)
	s.edge, s.running = nil, nil
	return s.start(ctx, db)
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

// fileSize returns the size of a file, 0 when it does not exist.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns what a file holds from offset on.
func readFrom(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || offset > int64(len(b)) {
		return ""
	}
	return string(b[offset:])
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
