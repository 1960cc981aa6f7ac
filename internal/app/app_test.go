package app_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/app"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/internal/uploads"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// runBlob runs the blob role on lis (and its metrics on ml, when not nil)
// until the test ends.
func runBlob(t *testing.T, cfg app.ServiceConfig, lis, ml net.Listener) {
	t.Helper()
	blob, err := app.Blob(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- blob.Serve(ctx, lis, ml) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("blob: %v", err)
		}
	})
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestBlobRoleReconciles: the blob role reconciles its folder at start-up
// and on its interval, and exports what it did on its /metrics.
func TestBlobRoleReconciles(t *testing.T) {
	st := storetest.Embedded(t)
	dir := filepath.Join(t.TempDir(), "uploads")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	post, err := st.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: "x",
		Image: &store.NewImage{ID: contract.NewID(), ContentType: "image/gif", Width: 1, Height: 1, Data: []byte("GIF89a...")}})
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, post.Image.ID.String())
	orphan := filepath.Join(dir, contract.NewID().String())
	temp := filepath.Join(dir, uploads.TempPrefix+"crash")
	old := time.Now().Add(-time.Hour)
	for _, p := range []string{orphan, temp} {
		if err := os.WriteFile(p, []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
		_ = os.Chtimes(p, old, old)
	}

	ml := listen(t)
	runBlob(t, app.ServiceConfig{TLS: app.MeshTLS{Insecure: true},
		Store: st, UploadsDir: dir, Logger: storetest.Logger(t), ReconcileInterval: 20 * time.Millisecond,
		// The temp file is an hour old; the image, created just above,
		// is past a millisecond's write grace by the first run.
		ReconcileGrace: time.Minute, ReconcileTempGrace: time.Millisecond,
	}, listen(t), ml)
	testutil.Eventually(t, 15*time.Second, "start-up reconciliation", func() bool { return exists(missing) && !exists(orphan) && !exists(temp) })

	// A file deleted later is restored by a later run.
	if err := os.Remove(missing); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, "periodic reconciliation", func() bool { return exists(missing) })

	metrics := scrape(t, "http://"+ml.Addr().String()+"/metrics")
	for _, want := range []string{
		"extagram_reconcile_removed_temp_total 1",
		"extagram_reconcile_removed_orphans_total 1",
		"extagram_reconcile_restored_total 2",
		`extagram_reconcile_runs_total{result="failed"} 0`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !strings.Contains(metrics, `extagram_reconcile_runs_total{result="ok"}`) {
		t.Error("/metrics lacks the runs counter")
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// downStore is a store whose database is unreachable when down is set.
type downStore struct {
	store.Store
	down  atomic.Bool
	pings atomic.Int64 // failed pings
}

func (d *downStore) Ping(ctx context.Context) error {
	if d.down.Load() {
		d.pings.Add(1)
		return fmt.Errorf("store: ping: %w", store.ErrUnavailable)
	}
	return d.Store.Ping(ctx)
}

func (d *downStore) ImageIDs(ctx context.Context, after contract.ID, limit int) ([]contract.ID, error) {
	if d.down.Load() {
		return nil, fmt.Errorf("store: image ids: %w", store.ErrUnavailable)
	}
	return d.Store.ImageIDs(ctx, after, limit)
}

// TestBlobRoleHealth: the blob role stays SERVING while the database is
// down, since it still serves the files on disk; with the folder gone too
// it reports NOT_SERVING.
func TestBlobRoleHealth(t *testing.T) {
	st := &downStore{Store: storetest.Embedded(t)}
	dir := filepath.Join(t.TempDir(), "uploads")
	lis := listen(t)
	runBlob(t, app.ServiceConfig{TLS: app.MeshTLS{Insecure: true}, Store: st, UploadsDir: dir, Logger: storetest.Logger(t)}, lis, nil)
	cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	status := func() healthpb.HealthCheckResponse_ServingStatus {
		r, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "extagram.blob.v1.BlobService"})
		if err != nil {
			return healthpb.HealthCheckResponse_UNKNOWN
		}
		return r.GetStatus()
	}
	testutil.Eventually(t, 15*time.Second, "SERVING", func() bool { return status() == healthpb.HealthCheckResponse_SERVING })

	st.down.Store(true)
	// Two failed checks later it must still serve.
	testutil.Eventually(t, 15*time.Second, "two health checks", func() bool { return st.pings.Load() >= 2 })
	if s := status(); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("database down, folder fine: %v, want SERVING", s)
	}
	// Nobody, root included, can use a regular file as a folder.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, "NOT_SERVING", func() bool { return status() == healthpb.HealthCheckResponse_NOT_SERVING })
	st.down.Store(false)
	testutil.Eventually(t, 15*time.Second, "SERVING again", func() bool { return status() == healthpb.HealthCheckResponse_SERVING })
}
