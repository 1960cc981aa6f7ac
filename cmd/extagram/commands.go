package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/extagram/extagram/edge"
	"github.com/extagram/extagram/internal/app"
	"github.com/extagram/extagram/internal/buildinfo"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/meshtls"
	"github.com/extagram/extagram/internal/telemetry/otlp"
	"github.com/extagram/extagram/uploadsvc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// common holds the flags every long-running command shares.
type common struct {
	logLevel     string
	logFormat    string
	drainPeriod  time.Duration
	otlpEndpoint string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.DurationVar(&c.drainPeriod, "drain-period", 5*time.Second, "on SIGTERM, how long a service reports NOT_SERVING before it stops accepting calls, and how long the edge waits for running requests")
	fs.StringVar(&c.otlpEndpoint, "otlp-endpoint", "", "export traces over OTLP/gRPC to this collector, e.g. http://127.0.0.1:4317 (default: the standard OTEL_EXPORTER_OTLP_ENDPOINT; neither set: no traces are kept)")
}

// start parses the command line of a long-running role, checks its
// Telegram flags, and sets up its logger and its traces (as service);
// flush sends the spans still buffered when the role stops.
func (c *common) start(ctx context.Context, fs *flag.FlagSet, args []string, tf *telegramFlags, service string, stderr io.Writer) (logger *slog.Logger, flush func(), err error) {
	if err := parse(fs, args); err != nil {
		return nil, nil, err
	}
	if err := tf.check(); err != nil {
		return nil, nil, err
	}
	if logger, err = c.logger(stderr); err != nil {
		return nil, nil, err
	}
	if flush, err = c.tracing(ctx, service); err != nil {
		return nil, nil, err
	}
	return logger, flush, nil
}

// tracing sets up the process's traces as service; the function it
// returns flushes the spans still buffered, for at most 5 seconds.
func (c *common) tracing(ctx context.Context, service string) (func(), error) {
	shutdown, err := otlp.Setup(ctx, service, c.otlpEndpoint)
	if err != nil {
		return nil, usageError{err}
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		shutdown(ctx)
	}, nil
}

func (c *common) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level: %w", err)}
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch c.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Errorf("--log-format must be text or json, not %q", c.logFormat)}
}

// storeFlags are the flags of the commands that open the store.
type storeFlags struct {
	mysqlDSN    string
	dataDir     string
	uploadsDir  string
	autoMigrate bool
	storeWait   time.Duration
}

func (s *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.mysqlDSN, "mysql-dsn", "", "MySQL/MariaDB DSN, e.g. user:password@tcp(127.0.0.1:3306)/extagram (prefer EXTAGRAM_MYSQL_DSN: flags show in the process list); empty uses the embedded store in --data-dir")
	fs.StringVar(&s.dataDir, "data-dir", "./data", "folder for the embedded store, the uploads (unless --uploads-dir) and the edge's generated TLS certificate")
	fs.StringVar(&s.uploadsDir, "uploads-dir", "", "folder of the image files (default <data-dir>/uploads)")
	fs.BoolVar(&s.autoMigrate, "auto-migrate", true, "apply database migrations at start-up (set false where `extagram migrate` runs them with DDL rights)")
	fs.DurationVar(&s.storeWait, "store-wait", 30*time.Second, "how long to keep trying to reach the database at start-up")
}

func (s *storeFlags) config() app.StoreConfig {
	return app.StoreConfig{MySQLDSN: s.mysqlDSN, DataDir: s.dataDir, AutoMigrate: s.autoMigrate, Wait: s.storeWait}
}

func (s *storeFlags) uploads() string {
	if s.uploadsDir != "" {
		return s.uploadsDir
	}
	return app.DefaultUploadsDir(s.dataDir)
}

// edgeFlags are the edge's flags (also taken by up).
type edgeFlags struct {
	httpsAddr, httpAddr string
	redirectPort        int
	publicHost          string
	tlsCert, tlsKey     string
	uploadRate          float64
	maxUploadBytes      int64
	imageCacheBytes     int64
	askFeedPerView      bool
	accessLog           bool
	maxUploads          int
	maxUploadsPerClient int
	uploadIdle          time.Duration
}

func (e *edgeFlags) register(fs *flag.FlagSet, httpsDefault string) {
	fs.StringVar(&e.httpsAddr, "https-addr", httpsDefault, "HTTPS listen address (HTTP/2 and HTTP/1.1)")
	fs.StringVar(&e.httpAddr, "http-addr", "", "optional plain HTTP listen address that redirects to HTTPS")
	fs.IntVar(&e.redirectPort, "redirect-port", 0, "HTTPS port named in redirects (default: the port of --https-addr)")
	fs.StringVar(&e.publicHost, "public-host", "", "host name the HTTP listener redirects to (default: the first name in the TLS certificate); a request's Host is never used")
	fs.StringVar(&e.tlsCert, "tls-cert", "", "TLS certificate (PEM); without it and --tls-key a self-signed certificate for localhost is kept in <data-dir>/tls")
	fs.StringVar(&e.tlsKey, "tls-key", "", "TLS private key (PEM)")
	fs.Float64Var(&e.uploadRate, "upload-rate", 30, "uploads per client address per minute; 0 turns the limit off")
	fs.Int64Var(&e.maxUploadBytes, "max-upload-bytes", contract.DefaultMaxPhotoBytes, "largest photo accepted, in bytes")
	fs.Int64Var(&e.imageCacheBytes, "image-cache-bytes", edge.DefaultImageCacheBytes, "memory for hot images at the edge, in bytes; 0 turns the cache off")
	fs.DurationVar(&e.uploadIdle, "upload-idle", edge.DefaultUploadIdle, "how long an upload's body may send nothing before it is answered 408")
	fs.IntVar(&e.maxUploads, "max-uploads", edge.DefaultMaxUploads, "uploads in flight at the edge, in all; more are answered 503")
	fs.IntVar(&e.maxUploadsPerClient, "max-uploads-per-client", edge.DefaultMaxUploadsPerClient, "uploads in flight from one client address; more are answered 429")
	fs.BoolVar(&e.accessLog, "access-log", true, "log one line per request at info level (method, path, status, bytes, duration, request id); false logs them at debug")
	fs.BoolVar(&e.askFeedPerView, "ask-feed-per-view", false, "ask the feed service for the newest page on every view, instead of keeping it up to date with WatchFeed (to measure the path without the edge's page cache)")
}

// options are the edge's options from its flags; the caller sets the
// targets.
func (e *edgeFlags) options(dataDir string, drain time.Duration, logger *slog.Logger) edge.Options {
	return edge.Options{
		HTTPSAddr: e.httpsAddr, HTTPAddr: e.httpAddr, RedirectPort: e.redirectPort, PublicHost: e.publicHost,
		TLSCert: e.tlsCert, TLSKey: e.tlsKey, DataDir: dataDir,
		MaxUploadBytes: e.maxUploadBytes, UploadRate: e.uploadRate, DrainPeriod: drain, Logger: logger,
		ImageCacheBytes: cacheBytes(e.imageCacheBytes), AskFeedPerView: e.askFeedPerView, AccessLog: e.accessLog,
		MaxUploads: e.maxUploads, MaxUploadsPerClient: e.maxUploadsPerClient, UploadIdle: e.uploadIdle,
	}
}

// cacheBytes turns a size flag, where 0 means off, into an option, where 0
// means the default and a negative size off.
func cacheBytes(flag int64) int64 {
	if flag <= 0 {
		return -1
	}
	return flag
}

func listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return l, nil
}

func listenMetrics(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	return listen(addr)
}

func cmdService(role string) func(context.Context, []string, io.Writer, io.Writer) error {
	defaults := map[string]string{"feed": ":50051", "upload": ":50061", "blob": ":50071"}
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet(role, fmt.Sprintf("Runs the %s gRPC service.", role), stderr)
		var c common
		var sf storeFlags
		var mf meshFlags
		c.register(fs)
		sf.register(fs)
		mf.register(fs)
		grpcAddr := fs.String("grpc-addr", defaults[role], "gRPC listen address")
		metricsAddr := fs.String("metrics-addr", "", "Prometheus /metrics listen address; empty turns metrics off")
		maxAge := fs.Duration("max-connection-age", 30*time.Second, "close client connections after this age so clients re-resolve dns:/// targets and find new replicas")
		maxBytes := fs.Int64("max-upload-bytes", contract.DefaultMaxPhotoBytes, "largest photo accepted, in bytes (upload)")
		memBytes := fs.Int64("upload-memory-bytes", uploadsvc.DefaultMemoryBytes, "memory for the photos of the uploads in flight, in bytes; uploads wait for room beyond it (upload)")
		var tf telegramFlags
		if role == "feed" {
			tf.register(fs, true, false)
		}
		logger, flush, err := c.start(ctx, fs, args, &tf, role, stderr)
		if err != nil {
			return err
		}
		defer flush()
		files, err := mf.files(sf.dataDir, role)
		if err != nil {
			return err
		}
		st, err := app.OpenStore(ctx, sf.config(), logger)
		if err != nil {
			return err
		}
		defer st.Close()
		svc, err := app.Roles[role](app.ServiceConfig{
			TLS:   app.MeshTLS{Files: files, Insecure: mf.insecure},
			Store: st, UploadsDir: sf.uploads(), MaxUploadBytes: *maxBytes, UploadMemoryBytes: *memBytes,
			DrainPeriod: c.drainPeriod, MaxConnectionAge: *maxAge, Logger: logger,
			Telegram: tf.feed(),
		})
		if err != nil {
			return err
		}
		lis, err := listen(*grpcAddr)
		if err != nil {
			return err
		}
		ml, err := listenMetrics(*metricsAddr)
		if err != nil {
			return err
		}
		return svc.Serve(ctx, lis, ml)
	}
}

func cmdEdge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("edge", "Runs the HTTPS edge: the site, /storage/, /static/ and the JSON API.", stderr)
	var c common
	var ef edgeFlags
	var mf meshFlags
	c.register(fs)
	ef.register(fs, ":8443")
	mf.register(fs)
	dataDir := fs.String("data-dir", "./data", "folder where a generated TLS certificate is kept, and the mesh's certificates by default (mesh/)")
	feedTarget := fs.String("feed-target", "127.0.0.1:50051,127.0.0.1:50052", "feed replicas: host:port,host:port or dns:///name:port")
	uploadTarget := fs.String("upload-target", "127.0.0.1:50061", "upload service: host:port list or dns:///name:port")
	blobTarget := fs.String("blob-target", "127.0.0.1:50071", "blob service: host:port list or dns:///name:port")
	metricsAddr := fs.String("metrics-addr", "", "Prometheus /metrics listen address; empty turns metrics off")
	var tf telegramFlags
	tf.register(fs, false, true)
	logger, flush, err := c.start(ctx, fs, args, &tf, "edge", stderr)
	if err != nil {
		return err
	}
	defer flush()
	opts := ef.options(*dataDir, c.drainPeriod, logger)
	opts.FeedTarget, opts.UploadTarget, opts.BlobTarget = *feedTarget, *uploadTarget, *blobTarget
	if opts.Mesh, err = mf.files(*dataDir, meshtls.Edge); err != nil {
		return err
	}
	opts.MeshInsecure = mf.insecure
	opts.Telegram = tf.edge()
	ml, err := listenMetrics(*metricsAddr)
	if err != nil {
		return err
	}
	e, err := app.NewEdge(opts)
	if err != nil {
		return err
	}
	return e.Serve(ctx, ml)
}

func cmdUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("up", "Runs the whole site in one process: two feed replicas, upload and blob, each on its own\nloopback gRPC port, and the HTTPS edge in front of them.", stderr)
	var c common
	var sf storeFlags
	var ef edgeFlags
	c.register(fs)
	sf.register(fs)
	ef.register(fs, "127.0.0.1:8443")
	feedAddrs := fs.String("feed-addrs", "127.0.0.1:50051,127.0.0.1:50052", "listen addresses of the feed replicas, comma-separated (one replica per address)")
	uploadAddr := fs.String("upload-addr", "127.0.0.1:50061", "listen address of the upload service")
	blobAddr := fs.String("blob-addr", "127.0.0.1:50071", "listen address of the blob service")
	metricsAddr := fs.String("metrics-addr", "", "first Prometheus /metrics address, e.g. 127.0.0.1:9100: the edge gets it, each service the next port; empty turns metrics off")
	meshInsecure := fs.Bool("mesh-insecure", false, "plaintext gRPC between the roles, without mutual TLS: anyone who reaches a service port may call it")
	var tf telegramFlags
	tf.register(fs, true, true)
	logger, flush, err := c.start(ctx, fs, args, &tf, "up", stderr)
	if err != nil {
		return err
	}
	defer flush()
	mesh := meshDir(sf.dataDir)
	if !*meshInsecure {
		// The equivalent of extagram certs, reused on the next start.
		written, err := meshtls.Generate(mesh)
		if err != nil {
			return err
		}
		if len(written) > 0 {
			logger.Info("mesh certificates written", "dir", mesh, "files", len(written))
		}
	}
	st, err := app.OpenStore(ctx, sf.config(), logger)
	if err != nil {
		return err
	}
	defer st.Close()

	cfg := app.UpConfig{
		Service: app.ServiceConfig{
			Store: st, UploadsDir: sf.uploads(), MaxUploadBytes: ef.maxUploadBytes,
			DrainPeriod: c.drainPeriod, Logger: logger,
			Telegram: tf.feed(),
		},
		Edge:         ef.options(sf.dataDir, c.drainPeriod, logger),
		MeshDir:      mesh,
		MeshInsecure: *meshInsecure,
	}
	cfg.Edge.Telegram = tf.edge()
	for _, a := range strings.Split(*feedAddrs, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		l, err := listen(a)
		if err != nil {
			return err
		}
		cfg.FeedListeners = append(cfg.FeedListeners, l)
	}
	if len(cfg.FeedListeners) == 0 {
		return usageError{errors.New("--feed-addrs names no address")}
	}
	if cfg.UploadListener, err = listen(*uploadAddr); err != nil {
		return err
	}
	if cfg.BlobListener, err = listen(*blobAddr); err != nil {
		return err
	}
	nextMetrics, err := metricsAddrs(*metricsAddr)
	if err != nil {
		return usageError{err}
	}
	// The edge gets the first metrics port, each service the next one.
	edgeMetrics, err := listenMetrics(nextMetrics())
	if err != nil {
		return err
	}
	cfg.MetricsListener = func(role string) (net.Listener, error) {
		if role == "edge" {
			return edgeMetrics, nil
		}
		return listenMetrics(nextMetrics())
	}
	m, err := app.Up(ctx, cfg)
	if err != nil {
		return err
	}
	var lines []string
	for _, r := range m.Roles {
		line := fmt.Sprintf("  %-8s grpc://%s", r.Name, r.Addr)
		if r.Metrics != "" {
			line += "  metrics http://" + r.Metrics + "/metrics"
		}
		lines = append(lines, line)
	}
	line := fmt.Sprintf("  %-8s %s", "edge", m.URL)
	if m.EdgeMetrics != "" {
		line += "  metrics http://" + m.EdgeMetrics + "/metrics"
	}
	lines = append(lines, line)
	fmt.Fprintf(stdout, "Extagram is up (%s, uploads in %s).\n\nservices:\n%s\n\nOpen %s/ in a browser (the certificate is self-signed unless --tls-cert is given).\n",
		sf.config().Describe(), sf.uploads(), strings.Join(lines, "\n"), m.URL)
	if *meshInsecure {
		fmt.Fprintf(stdout, "\nThe services speak plaintext gRPC (--mesh-insecure):\n  grpcurl -plaintext %s list\n", m.Roles[0].Addr)
	} else {
		op := meshtls.DefaultFiles(mesh, meshtls.Operator)
		fmt.Fprintf(stdout, "\nThe services accept only mesh certificates; as the operator:\n  grpcurl -cacert %s -cert %s -key %s %s list\n", op.CA, op.Cert, op.Key, m.Roles[0].Addr)
	}
	fmt.Fprintln(stdout, "\nPress Ctrl-C to stop.")
	return m.Wait()
}

// metricsAddrs returns successive addresses from a first host:port.
func metricsAddrs(first string) (func() string, error) {
	if first == "" {
		return func() string { return "" }, nil
	}
	host, p, err := net.SplitHostPort(first)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 {
		return nil, fmt.Errorf("--metrics-addr needs a port number, got %q", p)
	}
	return func() string {
		a := net.JoinHostPort(host, strconv.Itoa(port))
		port++
		return a
	}, nil
}

func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", "Applies the database schema migrations and exits. Needs DDL rights.", stderr)
	var c common
	c.register(fs)
	dsn := fs.String("mysql-dsn", "", "MySQL/MariaDB DSN (or EXTAGRAM_MYSQL_DSN); empty migrates the embedded store in --data-dir")
	dataDir := fs.String("data-dir", "./data", "folder of the embedded store")
	wait := fs.Duration("store-wait", 60*time.Second, "how long to keep trying to reach the database")
	if err := parse(fs, args); err != nil {
		return err
	}
	logger, err := c.logger(stderr)
	if err != nil {
		return err
	}
	st, err := app.OpenStore(ctx, app.StoreConfig{MySQLDSN: *dsn, DataDir: *dataDir, AutoMigrate: true, Wait: *wait}, logger)
	if err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "schema up to date")
	return nil
}

func cmdHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("health", "Checks a service with the gRPC health protocol (--grpc-addr) or the edge over HTTPS (--url).\nExit status 0 when healthy, 1 otherwise.", stderr)
	grpcAddr := fs.String("grpc-addr", "", "gRPC address of a service, e.g. 127.0.0.1:50051")
	service := fs.String("service", "", "service name to check (empty: the whole server)")
	url := fs.String("url", "", "edge URL to GET, e.g. https://127.0.0.1:8443/healthz")
	insecureTLS := fs.Bool("insecure", false, "with --url: do not verify the certificate (for the self-signed one)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for an answer")
	as := fs.String("as", meshtls.Operator, "with --grpc-addr: the mesh identity to check as (its files are found as the roles find theirs); a service's own identity may check it")
	dataDir := fs.String("data-dir", "./data", "with --grpc-addr: the folder whose mesh/ holds the certificates")
	var mf meshFlags
	mf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	switch {
	case (*grpcAddr == "") == (*url == ""):
		return usageError{errors.New("give exactly one of --grpc-addr and --url")}
	case *grpcAddr != "":
		creds := insecure.NewCredentials()
		if !mf.insecure {
			files, err := mf.files(*dataDir, *as)
			if err != nil {
				return err
			}
			cfg, err := meshtls.ClientConfig(files, "")
			if err != nil {
				return err
			}
			creds = credentials.NewTLS(cfg)
		}
		cc, err := grpc.NewClient("passthrough:///"+*grpcAddr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer cc.Close()
		resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: *service})
		if err != nil {
			return fmt.Errorf("health check of %s: %w", *grpcAddr, err)
		}
		fmt.Fprintln(stdout, resp.GetStatus())
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("%s is %s", *grpcAddr, resp.GetStatus())
		}
		return nil
	default:
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: *insecureTLS}} //nolint:gosec // operator's explicit choice for a self-signed certificate
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
		if err != nil {
			return usageError{err}
		}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		fmt.Fprintln(stdout, resp.Status)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %s", *url, resp.Status)
		}
		return nil
	}
}

func cmdVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "Prints the version and commit.", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "extagram %s (commit %s)\n", buildinfo.Version, buildinfo.CommitOrVCS())
	return nil
}
