// Package testmesh starts a whole Extagram mesh inside a test: feed
// replicas, upload, blob and the HTTPS edge, each on its own 127.0.0.1:0
// TCP port, over a store the test chooses. Everything stops when the test
// ends.
package testmesh

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extagram/extagram/edge"
	"github.com/extagram/extagram/internal/app"
	"github.com/extagram/extagram/internal/metrics"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Options configures a mesh.
type Options struct {
	Store          store.Store
	FeedReplicas   int // default 2
	MaxUploadBytes int64
	UploadRate     float64
	// DrainPeriod of the services (default 0: tests stop fast).
	DrainPeriod time.Duration
}

// Mesh is a running mesh.
type Mesh struct {
	URL        string       // https://127.0.0.1:PORT
	HTTPURL    string       // the plain HTTP redirect listener
	Client     *http.Client // trusts the self-signed certificate, does not follow redirects
	FeedAddrs  []string
	UploadAddr string
	BlobAddr   string
	// Metrics maps "feed-1", "feed-2", ..., "upload", "blob" and "edge" to
	// their /metrics URLs.
	Metrics    map[string]string
	Store      store.Store
	UploadsDir string
	DataDir    string

	mu    sync.Mutex
	stops map[string]func()
}

// Start starts a mesh and registers its shutdown with t.Cleanup.
func Start(t testing.TB, opts Options) *Mesh {
	t.Helper()
	if opts.FeedReplicas <= 0 {
		opts.FeedReplicas = 2
	}
	dataDir := t.TempDir()
	m := &Mesh{
		Metrics:    map[string]string{},
		Store:      opts.Store,
		DataDir:    dataDir,
		UploadsDir: app.DefaultUploadsDir(dataDir),
		stops:      map[string]func(){},
	}
	logger := storetest.Logger(t)
	start := func(name, role string) string {
		lis := listen(t)
		ml := listen(t)
		m.Metrics[name] = "http://" + ml.Addr().String() + "/metrics"
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- app.RunService(ctx, app.ServiceConfig{
				Role: role, Listener: lis, Store: opts.Store, UploadsDir: m.UploadsDir,
				MaxUploadBytes: opts.MaxUploadBytes, DrainPeriod: opts.DrainPeriod,
				MetricsListener: ml, Logger: logger.With("replica", name),
			})
		}()
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("%s: %v", name, err)
				}
			})
		}
		m.stops[name] = stop
		t.Cleanup(stop)
		return lis.Addr().String()
	}
	for i := range opts.FeedReplicas {
		m.FeedAddrs = append(m.FeedAddrs, start(fmt.Sprintf("feed-%d", i+1), "feed"))
	}
	m.UploadAddr = start("upload", "upload")
	m.BlobAddr = start("blob", "blob")

	hl, pl, ml := listen(t), listen(t), listen(t)
	reg := metrics.NewRegistry()
	m.Metrics["edge"] = "http://" + ml.Addr().String() + "/metrics"
	e, err := edge.New(edge.Options{
		DataDir: dataDir, FeedTarget: strings.Join(m.FeedAddrs, ","), UploadTarget: m.UploadAddr, BlobTarget: m.BlobAddr,
		MaxUploadBytes: opts.MaxUploadBytes, UploadRate: opts.UploadRate, Registry: reg, Logger: logger.With("service", "edge"),
		HTTPSListener: hl, HTTPListener: pl,
	})
	if err != nil {
		t.Fatalf("edge: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- e.Serve(ctx) }()
	go func() { done <- metrics.Serve(ctx, ml, reg, logger) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("edge: %v", err)
			}
		}
		e.Close()
	})
	m.URL = "https://" + hl.Addr().String()
	m.HTTPURL = "http://" + pl.Addr().String()
	m.Client = &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the mesh's own self-signed certificate
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 64,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	t.Cleanup(m.Client.CloseIdleConnections)
	m.waitReady(t)
	return m
}

// StopReplica drains and stops one role ("feed-1", "upload", ...).
func (m *Mesh) StopReplica(name string) {
	m.mu.Lock()
	stop := m.stops[name]
	m.mu.Unlock()
	stop()
}

// waitReady polls /readyz until every backend has a ready connection.
func (m *Mesh) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := m.Client.Get(m.URL + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = string(b)
		} else {
			last = err.Error()
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("mesh not ready: %s", last)
}

// Conn returns a gRPC connection to addr, closed when the test ends.
func Conn(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}
