// Package grpcsrv runs one of Extagram's gRPC services the same way for
// every role: health (driven by a real dependency check), server
// reflection, recovery, structured logging and Prometheus metrics
// interceptors, keepalive and a maximum connection age (so clients using a
// dns:/// target re-resolve and find new replicas), and a graceful drain on
// shutdown.
package grpcsrv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/extagram/extagram/internal/requestid"
	"github.com/extagram/extagram/internal/telemetry"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// Flow control and concurrency of every connection: enough for a 64 KiB
// chunk in flight and the next one on a network with a short round trip,
// and for the edge's concurrent calls; a client that opens more streams
// waits for running ones to end.
const (
	streamWindow = 256 << 10
	connWindow   = 2 << 20
	maxStreams   = 512
)

// LivenessService is the health service name that reports SERVING for as
// long as the server runs (until its drain), for liveness probes; "" and
// the role's own service names follow the dependency check (readiness).
const LivenessService = "liveness"

// Config configures a server.
type Config struct {
	// Name is the role, for logs ("feed", "upload", "blob").
	Name string
	// Services are the fully qualified service names whose health follows
	// Check (the empty name "" always does).
	Services []string
	// Check reports whether the service can do its work (for example a
	// store ping). It runs every CheckInterval with CheckTimeout.
	Check         func(ctx context.Context) error
	CheckInterval time.Duration // default 1s
	CheckTimeout  time.Duration // default 1s
	// FailureThreshold is how many checks in a row must fail with an error
	// before a serving server reports NOT_SERVING (one success reports
	// SERVING again). Default 2: a database that is really gone is noticed
	// within a couple of seconds.
	FailureThreshold int
	// SlowThreshold is how many checks in a row must time out (with no
	// other error among them) before a serving server reports NOT_SERVING.
	// Default 10: a slow answer is what load looks like, on this replica
	// and on every other one at once, and load alone must not take every
	// replica out of rotation; a database that hangs for good is still
	// noticed, later.
	SlowThreshold int
	// DrainPeriod is how long the server reports NOT_SERVING before it
	// stops accepting calls, so that health-checking clients move away
	// first. Default 0.
	DrainPeriod time.Duration
	// StopTimeout bounds GracefulStop; calls still running after it are
	// cancelled. Default 10s.
	StopTimeout time.Duration
	// MaxConnectionAge closes client connections after this age (with
	// MaxConnectionAge/3 of grace), so that clients re-resolve dns:///
	// targets. 0 means 30s; negative disables it.
	MaxConnectionAge time.Duration
	// Registry, when set, receives the gRPC server metrics.
	Registry prometheus.Registerer
	Logger   *slog.Logger
	// TLS, when set, is the server's mutual TLS (see internal/meshtls);
	// nil serves plaintext.
	TLS *tls.Config
	// ServerOptions are appended to the defaults (for example a larger
	// receive size).
	ServerOptions []grpc.ServerOption
}

// Server is a configured gRPC server; register services on GRPC before
// calling Serve.
type Server struct {
	GRPC    *grpc.Server
	Health  *health.Server
	cfg     Config
	metrics *grpcprom.ServerMetrics
}

// New builds the server.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = time.Second
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = time.Second
	}
	if cfg.FailureThreshold <= 0 {
		cfg.FailureThreshold = 2
	}
	if cfg.SlowThreshold <= 0 {
		cfg.SlowThreshold = 10
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.MaxConnectionAge == 0 {
		cfg.MaxConnectionAge = 30 * time.Second
	}
	// Every line written with a call's context names its request.
	logger := requestid.Logger(cfg.Logger).With("service", cfg.Name)
	cfg.Logger = logger

	metrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets([]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}),
	))
	if cfg.Registry != nil {
		if err := cfg.Registry.Register(metrics); err != nil {
			return nil, fmt.Errorf("grpcsrv: register metrics: %w", err)
		}
	}

	recoverOpt := recovery.WithRecoveryHandler(func(p any) error {
		logger.Error("panic in handler", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(levelFor),
		// The request id the edge sent is a field of the call's line.
		logging.WithFieldsFromContext(func(ctx context.Context) logging.Fields {
			if id := requestid.FromContext(ctx); id != "" {
				return logging.Fields{requestid.Key, id}
			}
			return nil
		}),
	}
	// Health checks are frequent and uninteresting: keep them out of logs.
	interceptLogger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		logger.Log(ctx, slog.Level(lvl), msg, fields...)
	})

	kasp := keepalive.ServerParameters{
		// Pings from idle clients find dead peers; the server pings too.
		Time:    10 * time.Second,
		Timeout: 5 * time.Second,
	}
	if cfg.MaxConnectionAge > 0 {
		kasp.MaxConnectionAge = cfg.MaxConnectionAge
		kasp.MaxConnectionAgeGrace = cfg.MaxConnectionAge/3 + time.Second
	}
	opts := []grpc.ServerOption{
		grpc.KeepaliveParams(kasp),
		// Bounded memory per call and per client: fixed flow-control
		// windows (no growth), so a stream that is not read holds at most
		// streamWindow, and a bounded number of calls per connection.
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(connWindow),
		grpc.MaxConcurrentStreams(maxStreams),
		// Clients ping every few seconds to detect hung replicas; allow it.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
		// Calls are traced (the trace context comes in the metadata), the
		// health checks left out.
		telemetry.ServerHandler(),
		grpc.ChainUnaryInterceptor(
			requestid.UnaryServerInterceptor,
			metrics.UnaryServerInterceptor(),
			logging.UnaryServerInterceptor(interceptLogger, logOpts...),
			recovery.UnaryServerInterceptor(recoverOpt),
		),
		grpc.ChainStreamInterceptor(
			requestid.StreamServerInterceptor,
			metrics.StreamServerInterceptor(),
			logging.StreamServerInterceptor(interceptLogger, logOpts...),
			recovery.StreamServerInterceptor(recoverOpt),
		),
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	opts = append(opts, cfg.ServerOptions...)
	gs := grpc.NewServer(opts...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	// Until the first check has run the service is not ready.
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	// Liveness is the process answering, whatever its dependencies say:
	// an orchestrator must not restart every replica because the database
	// is away.
	hs.SetServingStatus(LivenessService, healthpb.HealthCheckResponse_SERVING)
	for _, s := range cfg.Services {
		hs.SetServingStatus(s, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	return &Server{GRPC: gs, Health: hs, cfg: cfg, metrics: metrics}, nil
}

// Serve serves on lis until ctx is done, then drains: it reports
// NOT_SERVING for DrainPeriod, stops accepting and waits for running calls
// (at most StopTimeout). It returns nil after a drain caused by ctx.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	s.metrics.InitializeMetrics(s.GRPC)
	logger := s.cfg.Logger
	checkCtx, stopChecks := context.WithCancel(ctx)
	defer stopChecks()
	checked := make(chan struct{})
	go s.checkLoop(checkCtx, checked)

	errc := make(chan error, 1)
	go func() { errc <- s.GRPC.Serve(lis) }()
	logger.Info("gRPC listening", "addr", lis.Addr().String())

	select {
	case err := <-errc:
		return fmt.Errorf("grpcsrv: %s: serve: %w", s.cfg.Name, err)
	case <-ctx.Done():
	}
	stopChecks()
	<-checked
	// Shutdown sets every status to NOT_SERVING and keeps it there; clients
	// watching health take this replica out of rotation.
	s.Health.Shutdown()
	if s.cfg.DrainPeriod > 0 {
		logger.Info("draining", "period", s.cfg.DrainPeriod)
		time.Sleep(s.cfg.DrainPeriod)
	}
	done := make(chan struct{})
	go func() { s.GRPC.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.StopTimeout):
		logger.Warn("graceful stop timed out; cancelling running calls")
		s.GRPC.Stop()
		<-done
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("grpcsrv: %s: serve: %w", s.cfg.Name, err)
	}
	logger.Info("stopped")
	return nil
}

func (s *Server) checkLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	serving := false // New starts NOT_SERVING
	fails := 0       // checks failed in a row
	slowOnly := true // every failure of the run was a timeout
	t := time.NewTicker(s.cfg.CheckInterval)
	defer t.Stop()
	for {
		err := s.check(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			fails, slowOnly = 0, true
		} else {
			fails++
			slowOnly = slowOnly && errors.Is(err, context.DeadlineExceeded)
		}
		threshold := s.cfg.FailureThreshold
		if slowOnly {
			threshold = s.cfg.SlowThreshold
		}
		switch {
		case err == nil && !serving:
			serving = true
			s.cfg.Logger.Info("serving")
			s.setStatus(healthpb.HealthCheckResponse_SERVING)
		case err != nil && serving && fails >= threshold:
			serving = false
			s.cfg.Logger.Warn("not serving: dependency check failed", "err", err, "checks_failed", fails)
			s.setStatus(healthpb.HealthCheckResponse_NOT_SERVING)
		case err != nil && fails == 1:
			// The first failure of a run: still serving if it was.
			s.cfg.Logger.Warn("dependency check failed", "err", err, "serving", serving)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) setStatus(st healthpb.HealthCheckResponse_ServingStatus) {
	s.Health.SetServingStatus("", st)
	for _, name := range s.cfg.Services {
		s.Health.SetServingStatus(name, st)
	}
}

func (s *Server) check(ctx context.Context) error {
	if s.cfg.Check == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
	defer cancel()
	return s.cfg.Check(cctx)
}

// levelFor is the level a finished call is logged at. Answers to a
// caller's mistake (a bad id, a page past the end, a photo over the limit)
// are the caller's business, logged for debugging only; refusals of who
// calls are worth noticing; a replica or the database being away is a
// warning; anything else is an error of ours.
func levelFor(c codes.Code) logging.Level {
	switch c {
	case codes.OK, codes.Canceled, codes.InvalidArgument, codes.NotFound, codes.AlreadyExists,
		codes.OutOfRange, codes.FailedPrecondition, codes.ResourceExhausted, codes.Aborted:
		return logging.LevelDebug
	case codes.Unauthenticated, codes.PermissionDenied:
		return logging.LevelInfo
	case codes.Unavailable, codes.DeadlineExceeded:
		return logging.LevelWarn
	default: // Unknown, Internal, DataLoss, Unimplemented
		return logging.LevelError
	}
}
