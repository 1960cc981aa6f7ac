package grpcsrv

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestSlowChecksKeepServing: under load a check may time out; timeouts
// alone take a replica out only after SlowThreshold in a row, while real
// errors do after FailureThreshold. Time is the bubble's: exact and fast.
func TestSlowChecksKeepServing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mode atomic.Int32 // 0 fine, 1 slow, 2 broken
		srv, err := New(Config{
			Name: "test",
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
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go srv.checkLoop(ctx, done)
		defer func() { cancel(); <-done }()
		statusAfter := func(d time.Duration) healthpb.HealthCheckResponse_ServingStatus {
			time.Sleep(d)
			synctest.Wait()
			resp, err := srv.Health.Check(context.Background(), &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatal(err)
			}
			return resp.GetStatus()
		}
		if st := statusAfter(time.Millisecond); st != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("after the first check: %v", st)
		}
		// Slow: each check runs into its one-second timeout, the next
		// starts at once. Eight in a row (by 9.5 s) and the replica still
		// serves.
		mode.Store(1)
		if st := statusAfter(9500 * time.Millisecond); st != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("after 8 slow checks: %v, want SERVING", st)
		}
		// The tenth takes it out: a database that hangs for good.
		if st := statusAfter(2 * time.Second); st != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("after 10 slow checks: %v, want NOT_SERVING", st)
		}
		mode.Store(0)
		if st := statusAfter(time.Second); st != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("answering again: %v, want SERVING", st)
		}
		// Broken: two errors in a row take it out; timeouts among them do
		// not lengthen that.
		mode.Store(2)
		if st := statusAfter(2 * time.Second); st != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("after 2 failed checks: %v, want NOT_SERVING", st)
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
