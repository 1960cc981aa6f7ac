package grpcsrv

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestHealthFollowsChecks: NOT_SERVING until the first check passes; one
// failed check is tolerated, FailureThreshold in a row are not; one pass
// brings SERVING back; the drain reports NOT_SERVING before the server
// stops.
func TestHealthFollowsChecks(t *testing.T) {
	var failing, failOnce atomic.Bool
	var checks atomic.Int64
	srv, err := New(Config{
		Name:     "test",
		Services: []string{"x.v1.X"},
		Check: func(context.Context) error {
			checks.Add(1)
			if failOnce.CompareAndSwap(true, false) || failing.Load() {
				return errors.New("database gone")
			}
			return nil
		},
		CheckInterval: 20 * time.Millisecond,
		DrainPeriod:   200 * time.Millisecond,
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	status := func(name string) healthpb.HealthCheckResponse_ServingStatus {
		resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: name})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	waitFor := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if status("") == want && status("x.v1.X") == want {
				return
			}
		}
		t.Fatalf("health never became %v", want)
	}
	waitFor(healthpb.HealthCheckResponse_SERVING)

	// Fail exactly one check: still serving, then and after the next.
	failOnce.Store(true)
	for failOnce.Load() {
		time.Sleep(time.Millisecond)
	}
	if s := status(""); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("one failed check made the server %v", s)
	}
	for n := checks.Load(); checks.Load() < n+2; {
		time.Sleep(time.Millisecond)
	}
	if s := status(""); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("one failed check made the server %v", s)
	}

	failing.Store(true)
	waitFor(healthpb.HealthCheckResponse_NOT_SERVING)
	if s := status(LivenessService); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("liveness follows the dependency: %v", s)
	}
	failing.Store(false)
	waitFor(healthpb.HealthCheckResponse_SERVING)

	cancel()
	waitFor(healthpb.HealthCheckResponse_NOT_SERVING) // during the drain period
	if err := <-served; err != nil {
		t.Fatalf("Serve after drain: %v", err)
	}
}
