package grpcsrv

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// idleListener accepts nothing until closed, blocking durably for synctest.
type idleListener chan struct{}

func (l idleListener) Accept() (net.Conn, error) { <-l; return nil, net.ErrClosed }
func (l idleListener) Close() error              { close(l); return nil }
func (l idleListener) Addr() net.Addr            { return &net.TCPAddr{} }

// TestHealthFollowsChecks: NOT_SERVING until the first check passes; timeouts
// take a replica out after SlowThreshold in a row, errors after
// FailureThreshold (one is tolerated). Liveness stays SERVING until the drain,
// which reports NOT_SERVING before the server stops. Time is synctest's.
func TestHealthFollowsChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mode atomic.Int32 // 0 fine, 1 slow, 2 broken
		srv, err := New(Config{
			Name:     "test",
			Services: []string{"x.v1.X"},
			Check: func(ctx context.Context) error {
				switch mode.Load() {
				case 1:
					<-ctx.Done() // answers after CheckTimeout: too late
					return ctx.Err()
				case 2:
					return errors.New("connection refused")
				}
				return nil
			},
			DrainPeriod: 200 * time.Millisecond,
			Logger:      slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		status := func(service string) healthpb.HealthCheckResponse_ServingStatus {
			resp, err := srv.Health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
			if err != nil {
				t.Fatal(err)
			}
			return resp.GetStatus()
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel() // a failed test still stops the server
		want := func(after time.Duration, what string, st healthpb.HealthCheckResponse_ServingStatus) {
			t.Helper()
			time.Sleep(after)
			synctest.Wait()
			if got, named := status(""), status("x.v1.X"); got != st || named != st {
				t.Fatalf("%s: %v (x.v1.X %v), want %v", what, got, named, st)
			}
			if live := status(LivenessService); live != healthpb.HealthCheckResponse_SERVING && ctx.Err() == nil {
				t.Fatalf("%s: liveness %v follows the dependency", what, live)
			}
		}
		want(0, "before the first check", healthpb.HealthCheckResponse_NOT_SERVING)
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ctx, make(idleListener)) }()
		want(time.Millisecond, "after the first check", healthpb.HealthCheckResponse_SERVING)
		mode.Store(2)
		want(time.Second, "after one failed check", healthpb.HealthCheckResponse_SERVING)
		mode.Store(0)
		want(time.Second, "after a failed check and a good one", healthpb.HealthCheckResponse_SERVING)
		// Slow: each check runs into its one-second timeout. Eight in a row
		// (by 9.5 s) and it still serves; the tenth takes it out.
		mode.Store(1)
		want(9500*time.Millisecond, "after 8 slow checks", healthpb.HealthCheckResponse_SERVING)
		want(2*time.Second, "after 10 slow checks", healthpb.HealthCheckResponse_NOT_SERVING)
		mode.Store(0)
		want(time.Second, "answering again", healthpb.HealthCheckResponse_SERVING)
		// Broken: two errors in a row take it out.
		mode.Store(2)
		want(2*time.Second, "after 2 failed checks", healthpb.HealthCheckResponse_NOT_SERVING)
		mode.Store(0)
		want(time.Second, "answering again", healthpb.HealthCheckResponse_SERVING)

		cancel()
		want(100*time.Millisecond, "during the drain", healthpb.HealthCheckResponse_NOT_SERVING)
		select {
		case err := <-served:
			t.Fatalf("Serve returned %v before the drain period ended", err)
		default:
		}
		time.Sleep(200 * time.Millisecond)
		if err := <-served; err != nil {
			t.Fatalf("Serve after drain: %v", err)
		}
	})
}

func TestLevelFor(t *testing.T) {
	for c, want := range map[codes.Code]logging.Level{
		codes.OK: logging.LevelDebug, codes.InvalidArgument: logging.LevelDebug, codes.NotFound: logging.LevelDebug,
		codes.OutOfRange: logging.LevelDebug, codes.ResourceExhausted: logging.LevelDebug, codes.Canceled: logging.LevelDebug,
		codes.PermissionDenied: logging.LevelInfo, codes.Unauthenticated: logging.LevelInfo,
		codes.Unavailable: logging.LevelWarn, codes.DeadlineExceeded: logging.LevelWarn,
		codes.Internal: logging.LevelError, codes.DataLoss: logging.LevelError, codes.Unknown: logging.LevelError,
	} {
		if got := levelFor(c); got != want {
			t.Errorf("levelFor(%v) = %v, want %v", c, got, want)
		}
	}
}
