// Package app builds and runs Extagram's roles: one constructor per role
// (Feed, Upload, Blob, Edge) and Up, which runs a whole mesh in one
// process. The command, the tests and the fuzz targets all start roles
// through it, so a mesh is wired in one place.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/extagram/extagram/blobsvc"
	"github.com/extagram/extagram/edge"
	"github.com/extagram/extagram/feedsvc"
	blobv1 "github.com/extagram/extagram/gen/extagram/blob/v1"
	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"github.com/extagram/extagram/internal/grpcsrv"
	"github.com/extagram/extagram/internal/meshtls"
	"github.com/extagram/extagram/internal/metrics"
	"github.com/extagram/extagram/internal/requestid"
	"github.com/extagram/extagram/internal/uploads"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/uploadsvc"
	"github.com/prometheus/client_golang/prometheus"
)

// StoreConfig selects the store.
type StoreConfig struct {
	MySQLDSN string
	DataDir  string
	// AutoMigrate applies the schema migrations at start-up.
	AutoMigrate bool
	// Wait is how long to keep trying when the database cannot be reached
	// at start-up (containers may start before their database).
	Wait time.Duration
}

// OpenStore opens the store, retrying while the database is unavailable
// for at most cfg.Wait.
func OpenStore(ctx context.Context, cfg StoreConfig, logger *slog.Logger) (store.Store, error) {
	deadline := time.Now().Add(cfg.Wait)
	delay := 250 * time.Millisecond
	for {
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := store.Open(octx, store.Config{
			MySQLDSN:       cfg.MySQLDSN,
			DataDir:        cfg.DataDir,
			Logger:         logger,
			SkipMigrations: !cfg.AutoMigrate,
		})
		cancel()
		if err == nil {
			logger.Info("store open", "store", cfg.Describe())
			return st, nil
		}
		if !errors.Is(err, store.ErrUnavailable) || time.Now().Add(delay).After(deadline) {
			return nil, err
		}
		logger.Warn("database unavailable; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// Describe names the store for people: "MySQL" or the embedded store's
// folder (never the DSN, which may hold a password).
func (c StoreConfig) Describe() string {
	if c.MySQLDSN != "" {
		return "MySQL"
	}
	return "embedded store in " + c.DataDir
}

// DefaultUploadsDir is <data-dir>/uploads.
func DefaultUploadsDir(dataDir string) string { return filepath.Join(dataDir, "uploads") }

// ServiceConfig configures a gRPC role.
type ServiceConfig struct {
	Store store.Store
	// UploadsDir is the uploads folder (upload and blob).
	UploadsDir string
	// MaxUploadBytes is the photo size limit (upload); 0 is the default.
	MaxUploadBytes int64
	// UploadMemoryBytes bounds the memory of the photos of the uploads in
	// flight (upload); 0 is the default.
	UploadMemoryBytes int64
	DrainPeriod       time.Duration
	// MaxConnectionAge makes clients reconnect (and re-resolve) now and
	// then; see grpcsrv.Config.
	MaxConnectionAge time.Duration
	Logger           *slog.Logger
	// TLS is the role's mutual TLS.
	TLS MeshTLS

	// The blob role reconciles the uploads folder with the database at
	// start-up and then every ReconcileInterval (0: every 10 minutes;
	// negative: never). Files with no database record are removed once
	// older than ReconcileGrace (0: an hour), temp files left by a crash
	// once older than ReconcileTempGrace (0: 15 minutes), which also
	// bounds how long an upload may take to write its file: missing files
	// of younger images are left to their upload. See
	// uploads.Dir.Reconcile.
	ReconcileInterval  time.Duration
	ReconcileGrace     time.Duration
	ReconcileTempGrace time.Duration

	// Telegram configures the feed role's announcements of new posts.
	Telegram TelegramConfig
}

func (c ServiceConfig) logger() *slog.Logger {
	if c.Logger == nil {
		return requestid.Logger(slog.Default())
	}
	return requestid.Logger(c.Logger)
}

// MeshTLS configures a role's mutual TLS: the files of its identity, or
// Insecure for plaintext (asked for explicitly).
type MeshTLS struct {
	Files    meshtls.Files
	Insecure bool
}

// serverTLS is the TLS of a service of role: it accepts the edge, an
// operator, and the role's own identity (for its health probes).
func (m MeshTLS) serverTLS(role string) (*tls.Config, error) {
	if m.Insecure {
		return nil, nil
	}
	return meshtls.ServerConfig(m.Files, []string{meshtls.Edge, meshtls.Operator, role})
}

// Service is a gRPC role, built and ready to serve.
type Service struct {
	Name string
	srv  *grpcsrv.Server
	reg  *prometheus.Registry
	// background runs beside the server and stops with it.
	background func(ctx context.Context)
	// onDrain runs when the role starts to drain.
	onDrain func()
	logger  *slog.Logger
}

// Roles are the constructors of the gRPC roles, by name.
var Roles = map[string]func(ServiceConfig) (*Service, error){
	"feed":   Feed,
	"upload": Upload,
	"blob":   Blob,
}

// newService builds the gRPC server of a role whose health follows check.
func newService(name, service string, cfg ServiceConfig, check func(context.Context) error) (*Service, error) {
	reg := metrics.NewRegistry()
	logger := cfg.logger()
	tlsCfg, err := cfg.TLS.serverTLS(name)
	if err != nil {
		return nil, err
	}
	if tlsCfg == nil {
		logger.Warn("mesh TLS is off (--mesh-insecure): anyone who reaches this port may call it")
	}
	srv, err := grpcsrv.New(grpcsrv.Config{
		TLS:              tlsCfg,
		Name:             name,
		Services:         []string{service},
		Check:            check,
		DrainPeriod:      cfg.DrainPeriod,
		MaxConnectionAge: cfg.MaxConnectionAge,
		Registry:         reg,
		Logger:           logger,
	})
	if err != nil {
		return nil, err
	}
	return &Service{Name: name, srv: srv, reg: reg, logger: logger}, nil
}

// Feed builds a FeedService replica.
func Feed(cfg ServiceConfig) (*Service, error) {
	s, err := newService("feed", feedv1.FeedService_ServiceDesc.ServiceName, cfg, cfg.Store.Ping)
	if err != nil {
		return nil, err
	}
	feed := feedsvc.New(cfg.Store, s.logger.With("service", "feed"))
	feedv1.RegisterFeedServiceServer(s.srv.GRPC, feed)
	s.onDrain = feed.Close
	if err := s.announceTelegram(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Upload builds the UploadService.
func Upload(cfg ServiceConfig) (*Service, error) {
	dir, err := uploads.Open(cfg.UploadsDir)
	if err != nil {
		return nil, err
	}
	up, err := uploadsvc.New(cfg.Store, uploadsvc.Options{MaxBytes: cfg.MaxUploadBytes, MemoryBytes: cfg.UploadMemoryBytes, Uploads: dir, Logger: cfg.logger().With("service", "upload")})
	if err != nil {
		return nil, err
	}
	s, err := newService("upload", uploadv1.UploadService_ServiceDesc.ServiceName, cfg, cfg.Store.Ping)
	if err != nil {
		return nil, err
	}
	uploadv1.RegisterUploadServiceServer(s.srv.GRPC, up)
	s.background = func(ctx context.Context) { up.ForgetKeys(ctx, time.Hour) }
	return s, nil
}

// Blob builds the BlobService, with the reconciliation of its folder.
func Blob(cfg ServiceConfig) (*Service, error) {
	dir, err := uploads.Open(cfg.UploadsDir)
	if err != nil {
		return nil, err
	}
	blob, err := blobsvc.New(cfg.Store, dir, cfg.logger().With("service", "blob"))
	if err != nil {
		return nil, err
	}
	// The blob service still serves the files on disk when the database
	// is down, so it stays in rotation while either works.
	check := func(ctx context.Context) error {
		serr := cfg.Store.Ping(ctx)
		if serr == nil {
			return nil
		}
		if derr := dir.Check(); derr != nil {
			return errors.Join(serr, derr)
		}
		return nil
	}
	s, err := newService("blob", blobv1.BlobService_ServiceDesc.ServiceName, cfg, check)
	if err != nil {
		return nil, err
	}
	blobv1.RegisterBlobServiceServer(s.srv.GRPC, blob)
	for _, c := range blob.Collectors() {
		if err := s.reg.Register(c); err != nil {
			return nil, err
		}
	}
	if cfg.ReconcileInterval >= 0 {
		m, err := uploads.NewReconcileMetrics(s.reg)
		if err != nil {
			return nil, err
		}
		ropts := uploads.ReconcileOptions{
			OrphanGrace: cfg.ReconcileGrace,
			TempGrace:   cfg.ReconcileTempGrace,
			Logger:      s.logger.With("service", "blob", "task", "reconcile"),
			Metrics:     m,
		}
		s.background = func(ctx context.Context) {
			dir.ReconcileEvery(ctx, cfg.Store, cfg.ReconcileInterval, ropts)
		}
	}
	return s, nil
}

// Serve serves the role on lis, and its metrics on ml when ml is not nil,
// until ctx ends; then it drains and returns.
func (s *Service) Serve(ctx context.Context, lis, ml net.Listener) error {
	if s.onDrain != nil {
		defer context.AfterFunc(ctx, s.onDrain)()
	}
	if s.background != nil {
		bctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); s.background(bctx) }()
		// Stopped and waited for on the way out, so nothing touches the
		// uploads folder after Serve returns.
		defer func() { stop(); <-done }()
	}
	return withMetrics(ml, s.reg, s.logger.With("service", s.Name), func() error {
		return s.srv.Serve(ctx, lis)
	})
}

// Edge is the edge role.
type Edge struct {
	*edge.Edge
	reg    *prometheus.Registry
	logger *slog.Logger
}

// NewEdge builds the edge.
func NewEdge(opts edge.Options) (*Edge, error) {
	reg := metrics.NewRegistry()
	opts.Registry = reg
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.Logger = requestid.Logger(opts.Logger)
	e, err := edge.New(opts)
	if err != nil {
		return nil, err
	}
	return &Edge{Edge: e, reg: reg, logger: opts.Logger}, nil
}

// Serve serves the edge, and its metrics on ml when ml is not nil, until
// ctx ends; then it finishes running requests, closes its connections and
// returns.
func (e *Edge) Serve(ctx context.Context, ml net.Listener) error {
	defer e.Close()
	return withMetrics(ml, e.reg, e.logger.With("service", "edge"), func() error { return e.Edge.Serve(ctx) })
}

func withMetrics(ml net.Listener, reg *prometheus.Registry, logger *slog.Logger, run func() error) error {
	if ml == nil {
		return run()
	}
	return metrics.During(ml, reg, logger, run)
}
