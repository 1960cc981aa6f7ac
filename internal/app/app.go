// Package app wires Extagram's roles together: it opens the store, builds
// a role's gRPC server or the edge, serves metrics, and runs until its
// context ends. The command and the end-to-end tests both use it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/extagram/extagram/blobsvc"
	"github.com/extagram/extagram/feedsvc"
	blobv1 "github.com/extagram/extagram/gen/extagram/blob/v1"
	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"github.com/extagram/extagram/internal/grpcsrv"
	"github.com/extagram/extagram/internal/metrics"
	"github.com/extagram/extagram/internal/uploads"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/uploadsvc"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// Roles are the gRPC service roles.
var Roles = []string{"feed", "upload", "blob"}

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
			kind := "embedded store in " + cfg.DataDir
			if cfg.MySQLDSN != "" {
				kind = "MySQL"
			}
			logger.Info("store open", "store", kind)
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

// ServiceConfig configures one gRPC role.
type ServiceConfig struct {
	Role     string // "feed", "upload" or "blob"
	Listener net.Listener
	Store    store.Store
	// UploadsDir is the uploads folder (upload and blob).
	UploadsDir     string
	MaxUploadBytes int64
	DrainPeriod    time.Duration
	// MaxConnectionAge makes clients reconnect (and re-resolve) now and
	// then; see grpcsrv.Config.
	MaxConnectionAge time.Duration
	// MetricsListener, when set, serves /metrics for this role.
	MetricsListener net.Listener
	Logger          *slog.Logger

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
}

// RunService serves one role until ctx ends, then drains.
func RunService(ctx context.Context, cfg ServiceConfig) error {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	var reg *prometheus.Registry
	if cfg.MetricsListener != nil {
		reg = metrics.NewRegistry()
	}
	var registerer prometheus.Registerer
	if reg != nil {
		registerer = reg
	}
	scfg := grpcsrv.Config{
		Name:             cfg.Role,
		Check:            cfg.Store.Ping,
		DrainPeriod:      cfg.DrainPeriod,
		MaxConnectionAge: cfg.MaxConnectionAge,
		Registry:         registerer,
		Logger:           logger,
	}
	var (
		register func(*grpc.Server) error
		// background runs beside the server and stops with it.
		background func(ctx context.Context)
	)
	switch cfg.Role {
	case "feed":
		scfg.Services = []string{feedsvc.ServiceName}
		register = func(s *grpc.Server) error {
			feedv1.RegisterFeedServiceServer(s, feedsvc.New(cfg.Store, logger.With("service", "feed")))
			return nil
		}
	case "upload":
		dir, err := uploads.Open(cfg.UploadsDir)
		if err != nil {
			return err
		}
		scfg.Services = []string{uploadsvc.ServiceName}
		register = func(s *grpc.Server) error {
			srv, err := uploadsvc.New(cfg.Store, uploadsvc.Options{MaxBytes: cfg.MaxUploadBytes, Uploads: dir, Logger: logger.With("service", "upload")})
			if err != nil {
				return err
			}
			uploadv1.RegisterUploadServiceServer(s, srv)
			return nil
		}
	case "blob":
		dir, err := uploads.Open(cfg.UploadsDir)
		if err != nil {
			return err
		}
		scfg.Services = []string{blobsvc.ServiceName}
		// The blob service still serves the files on disk when the
		// database is down, so it stays in rotation while either works.
		scfg.Check = func(ctx context.Context) error {
			serr := cfg.Store.Ping(ctx)
			if serr == nil {
				return nil
			}
			if derr := dir.Check(); derr != nil {
				return errors.Join(serr, derr)
			}
			return nil
		}
		register = func(s *grpc.Server) error {
			srv, err := blobsvc.New(cfg.Store, dir, logger.With("service", "blob"))
			if err != nil {
				return err
			}
			blobv1.RegisterBlobServiceServer(s, srv)
			return nil
		}
		if cfg.ReconcileInterval >= 0 {
			ropts := uploads.ReconcileOptions{
				OrphanGrace: cfg.ReconcileGrace,
				TempGrace:   cfg.ReconcileTempGrace,
				Logger:      logger.With("service", "blob", "task", "reconcile"),
			}
			if reg != nil {
				m, err := uploads.NewReconcileMetrics(reg)
				if err != nil {
					return err
				}
				ropts.Metrics = m
			}
			background = func(ctx context.Context) {
				dir.ReconcileEvery(ctx, cfg.Store, cfg.ReconcileInterval, ropts)
			}
		}
	default:
		return fmt.Errorf("unknown role %q", cfg.Role)
	}
	srv, err := grpcsrv.New(scfg)
	if err != nil {
		return err
	}
	if err := register(srv.GRPC); err != nil {
		return err
	}
	if background != nil {
		bctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); background(bctx) }()
		// Stopped and waited for on the way out, so nothing touches the
		// uploads folder after RunService returns.
		defer func() { stop(); <-done }()
	}
	if reg == nil {
		return srv.Serve(ctx, cfg.Listener)
	}
	return metrics.During(cfg.MetricsListener, reg, logger.With("service", cfg.Role), func() error {
		return srv.Serve(ctx, cfg.Listener)
	})
}

// DefaultUploadsDir is <data-dir>/uploads.
func DefaultUploadsDir(dataDir string) string { return filepath.Join(dataDir, "uploads") }
