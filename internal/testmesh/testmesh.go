// Package testmesh starts a whole Extagram mesh (feed replicas, upload, blob,
// HTTPS edge) on 127.0.0.1 ports over a store of the test's, until it ends.
package testmesh

import (
	"cmp"
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/extagram/extagram/edge"
	"github.com/extagram/extagram/internal/app"
	"github.com/extagram/extagram/internal/meshtls"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Options configures a mesh; the edge's options are as in edge.Options.
type Options struct {
	Store               store.Store
	FeedReplicas        int           // default 2
	FeedStores          []store.Store // when set, the feed replicas' own stores
	MaxUploadsPerClient int           // default 1000: every client is on 127.0.0.1
	MaxUploadBytes      int64
	UploadRate          float64
	ImageCacheBytes     int64 // 0: the default; negative: none
	AskFeedPerView      bool
	UploadIdle          time.Duration
	Telegram            app.TelegramConfig   // the feed replicas' announcements
	EdgeTelegram        edge.TelegramOptions // the edge's bot
	HTTPSListener       net.Listener         // the edge's (default: a new one)
}

// Mesh is a running mesh.
type Mesh struct {
	URL        string       // https://127.0.0.1:PORT
	HTTPURL    string       // the plain HTTP redirect listener
	Client     *http.Client // trusts the self-signed certificate, does not follow redirects
	FeedAddrs  []string
	UploadAddr string
	BlobAddr   string
	Metrics    map[string]string // "feed-1", "feed-2", "upload", "blob", "edge": /metrics URLs
	Handler    http.Handler      // the edge's, for in-process requests
	Store      store.Store
	UploadsDir string
	MeshDir    string // the mesh's certificates (meshtls.Generate)
}

// Start starts a mesh and registers its shutdown with t.Cleanup.
func Start(t testing.TB, opts Options) *Mesh {
	t.Helper()
	opts.FeedReplicas = cmp.Or(opts.FeedReplicas, 2)
	opts.MaxUploadsPerClient = cmp.Or(opts.MaxUploadsPerClient, 1000)
	dataDir, logger := t.TempDir(), storetest.Logger(t)
	meshDir := filepath.Join(dataDir, "mesh")
	if _, err := meshtls.Generate(meshDir); err != nil {
		t.Fatal(err)
	}
	if opts.HTTPSListener == nil {
		opts.HTTPSListener = listen(t)
	}
	cfg := app.UpConfig{
		Service: app.ServiceConfig{
			Store: opts.Store, UploadsDir: app.DefaultUploadsDir(dataDir),
			MaxUploadBytes: opts.MaxUploadBytes, Logger: logger, Telegram: opts.Telegram,
		},
		UploadListener: listen(t),
		BlobListener:   listen(t),
		Edge: edge.Options{
			DataDir: dataDir, MaxUploadBytes: opts.MaxUploadBytes, UploadRate: opts.UploadRate,
			ImageCacheBytes: opts.ImageCacheBytes, AskFeedPerView: opts.AskFeedPerView,
			MaxUploads: 1000, MaxUploadsPerClient: opts.MaxUploadsPerClient, UploadIdle: opts.UploadIdle,
			Logger: logger, HTTPSListener: opts.HTTPSListener, HTTPListener: listen(t), Telegram: opts.EdgeTelegram,
		},
		FeedStores:      opts.FeedStores,
		MetricsListener: func(string) (net.Listener, error) { return listen(t), nil },
		MeshDir:         meshDir,
	}
	for range opts.FeedReplicas {
		cfg.FeedListeners = append(cfg.FeedListeners, listen(t))
	}
	up, err := app.Up(t.Context(), cfg) // stopped as the test ends, before the cleanups
	if err != nil {
		t.Fatalf("mesh: %v", err)
	}
	t.Cleanup(func() {
		if err := up.Wait(); err != nil {
			t.Errorf("mesh: %v", err)
		}
	})
	m := &Mesh{
		URL:        up.URL,
		HTTPURL:    "http://" + cfg.Edge.HTTPListener.Addr().String(),
		Handler:    up.Edge.Handler(),
		Metrics:    map[string]string{"edge": "http://" + up.EdgeMetrics + "/metrics"},
		Store:      opts.Store,
		UploadsDir: cfg.Service.UploadsDir,
		MeshDir:    meshDir,
	}
	for _, r := range up.Roles {
		m.Metrics[r.Name] = "http://" + r.Metrics + "/metrics"
		switch r.Role {
		case "feed":
			m.FeedAddrs = append(m.FeedAddrs, r.Addr)
		case "upload":
			m.UploadAddr = r.Addr
		case "blob":
			m.BlobAddr = r.Addr
		}
	}
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
	m.WaitReady(t)
	return m
}

// WaitReady waits until the edge has a ready connection to every backend.
func (m *Mesh) WaitReady(t testing.TB) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, "/readyz", func() bool {
		resp, err := m.Client.Get(m.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// Conn is a gRPC connection to addr as the mesh's operator, closed when the
// test ends.
func (m *Mesh) Conn(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cfg, err := meshtls.ClientConfig(meshtls.DefaultFiles(m.MeshDir, meshtls.Operator), "")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
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
