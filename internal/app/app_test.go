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

// downStore is a store whose database is unreachable when down is set.
type downStore struct {
	store.Store
	down atomic.Bool
}

func (d *downStore) Ping(ctx context.Context) error {
	if d.down.Load() {
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

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestBlobRole: the blob role reconciles its folder at start-up and on its interval, and exports what it
// did on its /metrics; it reports NOT_SERVING with both the database and the folder gone, and SERVING
// again with the database back. (With the database down alone it still serves the files on disk and
// stays SERVING: e2e's databaseDown checks that over MySQL.)
func TestBlobRole(t *testing.T) {
	st := &downStore{Store: storetest.Embedded(t)}
	dir := filepath.Join(t.TempDir(), "uploads")
	post := must(st.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: "x",
		Image: &store.NewImage{ID: contract.NewID(), ContentType: "image/gif", Width: 1, Height: 1, Data: []byte("GIF89a...")}}))
	missing, orphan := filepath.Join(dir, post.Image.ID.String()), filepath.Join(dir, contract.NewID().String())
	temp, old := filepath.Join(dir, uploads.TempPrefix+"crash"), time.Now().Add(-time.Hour)
	for _, p := range []string{orphan, temp} {
		if os.MkdirAll(dir, 0o750) != nil || os.WriteFile(p, []byte("x"), 0o640) != nil || os.Chtimes(p, old, old) != nil {
			t.Fatal("cannot write", p)
		}
	}

	blob := must(app.Blob(app.ServiceConfig{TLS: app.MeshTLS{Insecure: true},
		Store: st, UploadsDir: dir, Logger: storetest.Logger(t), ReconcileInterval: 20 * time.Millisecond,
		// The temp file is an hour old; the image is past a millisecond's write grace by the first run.
		ReconcileGrace: time.Minute, ReconcileTempGrace: time.Millisecond,
	}))
	lis, ml := must(net.Listen("tcp", "127.0.0.1:0")), must(net.Listen("tcp", "127.0.0.1:0"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- blob.Serve(ctx, lis, ml) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("blob: %v", err)
		}
	})
	testutil.Eventually(t, 15*time.Second, "start-up reconciliation", func() bool { return exists(missing) && !exists(orphan) && !exists(temp) })
	// A file deleted later is restored by a later run.
	if err := os.Remove(missing); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, "periodic reconciliation", func() bool { return exists(missing) })

	resp := must(http.Get("http://" + ml.Addr().String() + "/metrics"))
	metrics := string(must(io.ReadAll(resp.Body)))
	resp.Body.Close()
	for _, want := range []string{"extagram_reconcile_removed_temp_total 1\n", "extagram_reconcile_removed_orphans_total 1\n",
		"extagram_reconcile_restored_total 2\n", `extagram_reconcile_runs_total{result="failed"} 0` + "\n", `extagram_reconcile_runs_total{result="ok"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	cc := must(grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials())))
	defer cc.Close()
	status := func() healthpb.HealthCheckResponse_ServingStatus {
		r, err := healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{Service: "extagram.blob.v1.BlobService"})
		if err != nil {
			return healthpb.HealthCheckResponse_UNKNOWN
		}
		return r.GetStatus()
	}
	testutil.Eventually(t, 15*time.Second, "SERVING", func() bool { return status() == healthpb.HealthCheckResponse_SERVING })
	st.down.Store(true)
	// Nobody, root included, can use a regular file as a folder.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, "NOT_SERVING", func() bool { return status() == healthpb.HealthCheckResponse_NOT_SERVING })
	st.down.Store(false)
	testutil.Eventually(t, 15*time.Second, "SERVING again", func() bool { return status() == healthpb.HealthCheckResponse_SERVING })
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
