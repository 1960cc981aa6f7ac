package app

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/extagram/extagram/edge"
	"github.com/extagram/extagram/internal/meshtls"
	"github.com/extagram/extagram/store"
)

// UpConfig describes a whole mesh in one process: feed replicas, upload,
// blob and the edge in front of them, each on its own listener.
type UpConfig struct {
	// Service configures every gRPC role (store, uploads folder, limits,
	// drain, logger).
	Service ServiceConfig
	// FeedListeners are the feed replicas' listeners, one replica each.
	FeedListeners []net.Listener
	// FeedStores, when set, are the feed replicas' stores, one each (for
	// example a database replica near each); the others use Service.Store.
	FeedStores                   []store.Store
	UploadListener, BlobListener net.Listener
	// Edge configures the edge; Up sets its targets to the roles above.
	Edge edge.Options
	// MeshDir holds the mesh's certificates, as meshtls.Generate writes
	// them: each role uses its own. MeshInsecure turns mutual TLS off.
	MeshDir      string
	MeshInsecure bool
	// MetricsListener, when not nil, returns the metrics listener of a
	// role ("feed-1", "feed-2", ..., "upload", "blob", "edge"), or nil for
	// none.
	MetricsListener func(role string) (net.Listener, error)
}

// Mesh is a mesh started by Up.
type Mesh struct {
	// Roles are the gRPC roles in start order: feed-1, feed-2, ...,
	// upload, blob.
	Roles []RoleAddr
	// URL is the edge's HTTPS base URL.
	URL string
	// Edge is the running edge (its Handler serves without TLS, for
	// in-process clients such as fuzz targets).
	Edge *Edge
	// EdgeMetrics is the edge's metrics address, "" without metrics.
	EdgeMetrics string

	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

// RoleAddr is where a gRPC role listens.
type RoleAddr struct {
	Name    string // "feed-1", "upload", ...
	Role    string // "feed", "upload" or "blob"
	Addr    string // gRPC host:port
	Metrics string // metrics host:port, "" without metrics
}

// Up builds every role, starts them and returns once the edge serves. The
// mesh runs until ctx ends; Wait waits for every role to drain. When a role
// fails, Up or Wait returns its error and the rest of the mesh is stopped.
func Up(ctx context.Context, cfg UpConfig) (*Mesh, error) {
	if len(cfg.FeedListeners) == 0 {
		return nil, fmt.Errorf("up: no feed replica")
	}
	ctx, cancelAll := context.WithCancel(ctx)
	m := &Mesh{}
	metricsFor := func(name string) (net.Listener, error) {
		if cfg.MetricsListener == nil {
			return nil, nil
		}
		return cfg.MetricsListener(name)
	}
	// start runs serve until ctx ends; an error stops the whole mesh.
	start := func(name string, serve func(context.Context) error) {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := serve(ctx); err != nil {
				m.mu.Lock()
				m.errs = append(m.errs, fmt.Errorf("%s: %w", name, err))
				m.mu.Unlock()
				cancelAll()
			}
		}()
	}
	fail := func(err error) (*Mesh, error) {
		cancelAll()
		_ = m.Wait()
		return nil, err
	}

	if cfg.Service.Telegram.Token != "" && cfg.Service.Telegram.PublicURL == "" {
		// Announcements link to the edge of this mesh: its address is
		// taken now, before the feed roles start.
		if cfg.Edge.HTTPSListener == nil {
			l, err := net.Listen("tcp", cfg.Edge.HTTPSAddr)
			if err != nil {
				return fail(fmt.Errorf("edge: listen %s: %w", cfg.Edge.HTTPSAddr, err))
			}
			cfg.Edge.HTTPSListener = l
		}
		cfg.Service.Telegram.PublicURL = localURL(cfg.Edge.HTTPSListener)
	}

	type grpcRole struct {
		name, role string
		replica    int // of a feed replica, from 0
		lis        net.Listener
	}
	var roles []grpcRole
	var feedAddrs []string
	for i, l := range cfg.FeedListeners {
		roles = append(roles, grpcRole{fmt.Sprintf("feed-%d", i+1), "feed", i, l})
		feedAddrs = append(feedAddrs, l.Addr().String())
	}
	roles = append(roles, grpcRole{"upload", "upload", 0, cfg.UploadListener}, grpcRole{"blob", "blob", 0, cfg.BlobListener})
	for _, r := range roles {
		scfg := cfg.Service
		scfg.Logger = cfg.Service.logger().With("replica", r.name)
		scfg.TLS = MeshTLS{Files: meshtls.DefaultFiles(cfg.MeshDir, r.role), Insecure: cfg.MeshInsecure}
		if r.role == "feed" && r.replica < len(cfg.FeedStores) && cfg.FeedStores[r.replica] != nil {
			scfg.Store = cfg.FeedStores[r.replica]
		}
		svc, err := Roles[r.role](scfg)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", r.name, err))
		}
		ml, err := metricsFor(r.name)
		if err != nil {
			return fail(err)
		}
		ra := RoleAddr{Name: r.name, Role: r.role, Addr: r.lis.Addr().String()}
		if ml != nil {
			ra.Metrics = ml.Addr().String()
		}
		m.Roles = append(m.Roles, ra)
		lis := r.lis
		start(r.name, func(ctx context.Context) error { return svc.Serve(ctx, lis, ml) })
	}

	opts := cfg.Edge
	opts.Mesh, opts.MeshInsecure = meshtls.DefaultFiles(cfg.MeshDir, meshtls.Edge), cfg.MeshInsecure
	opts.FeedTarget = strings.Join(feedAddrs, ",")
	opts.UploadTarget = cfg.UploadListener.Addr().String()
	opts.BlobTarget = cfg.BlobListener.Addr().String()
	ready := make(chan string, 1)
	opts.Ready = ready
	e, err := NewEdge(opts)
	if err != nil {
		return fail(err)
	}
	m.Edge = e
	ml, err := metricsFor("edge")
	if err != nil {
		e.Close()
		return fail(err)
	}
	if ml != nil {
		m.EdgeMetrics = ml.Addr().String()
	}
	start("edge", func(ctx context.Context) error { return e.Serve(ctx, ml) })
	select {
	case m.URL = <-ready:
		return m, nil
	case <-ctx.Done():
		return fail(ctx.Err())
	}
}

// Wait waits until every role has stopped (the mesh's context ended, or a
// role failed) and returns the first error of a role.
func (m *Mesh) Wait() error {
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.errs) > 0 {
		return m.errs[0]
	}
	return nil
}

// localURL is the HTTPS URL of a listener on a specific address, "" for
// one on every interface (no one address would reach it from elsewhere).
func localURL(l net.Listener) string {
	if a, ok := l.Addr().(*net.TCPAddr); ok && a.IP != nil && !a.IP.IsUnspecified() {
		return "https://" + a.String()
	}
	return ""
}
