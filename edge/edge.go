// Package edge is Extagram's HTTPS front (S1 of the seed design, with S6's
// static assets embedded). It serves the browser routes of the original
// PHP site and the JSON API, and turns each request into gRPC calls to the
// feed replicas, the upload service and the blob service over one
// long-lived, client-side balanced connection per service.
package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/meshtls"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configures the edge.
type Options struct {
	// HTTPSAddr is where the site is served (HTTP/2 and HTTP/1.1 over TLS).
	HTTPSAddr string
	// HTTPAddr, when set, is a plain HTTP listener that redirects to HTTPS.
	HTTPAddr string
	// RedirectPort is the HTTPS port named in redirects; 0 means the port of
	// HTTPSAddr (set it when a proxy or container maps another port).
	RedirectPort int
	// PublicHost is the host name redirects to HTTPS name; empty means the
	// first name in the TLS certificate. A request's own Host header is
	// never copied into a redirect.
	PublicHost string
	// TLSCert and TLSKey name a certificate; without them a self-signed one
	// for localhost is created in DataDir and reused.
	TLSCert, TLSKey string
	DataDir         string
	// Targets of the services: "dns:///name:port" or "host:port,host:port".
	FeedTarget, UploadTarget, BlobTarget string
	// Mesh are the files of the edge's identity for the mutual TLS of its
	// connections to the services; MeshInsecure dials them in plaintext
	// instead (asked for explicitly).
	Mesh         meshtls.Files
	MeshInsecure bool
	// MaxUploadBytes is the photo size limit (the request body may exceed it
	// by the form's overhead). Default contract.DefaultMaxPhotoBytes, as
	// the upload service's.
	MaxUploadBytes int64
	// ImageCacheBytes bounds the memory of the cache of hot images; 0
	// means DefaultImageCacheBytes, negative turns the cache off.
	ImageCacheBytes int64
	// AskFeedPerView makes every view of the newest page ask FeedService
	// for it, instead of keeping it up to date with WatchFeed (for
	// measuring the path without the cache).
	AskFeedPerView bool
	// UploadIdle is how long an upload's body may send nothing before it is
	// answered 408 (0: DefaultUploadIdle).
	UploadIdle time.Duration
	// MaxUploads and MaxUploadsPerClient cap the uploads in flight, in all
	// and from one address (0: DefaultMaxUploads, DefaultMaxUploadsPerClient).
	MaxUploads, MaxUploadsPerClient int
	// UploadRate is the number of uploads a client may make per minute; 0
	// turns the limit off.
	UploadRate float64
	// DrainPeriod bounds how long shutdown waits for running requests.
	DrainPeriod time.Duration
	// AccessLog writes a line per request at INFO (method, path, status,
	// bytes, duration, request id); off, the lines are at DEBUG. Health
	// checks are never in it.
	AccessLog bool
	// Registry, when set, receives HTTP and gRPC client metrics.
	Registry prometheus.Registerer
	Logger   *slog.Logger
	// Listeners, when set, are used instead of listening on the addresses
	// (tests pass 127.0.0.1:0 listeners and read their addresses).
	HTTPSListener, HTTPListener net.Listener
	// Ready, when not nil, receives the HTTPS base URL once serving.
	Ready chan<- string
	// Telegram configures the bot that turns photos sent to it into posts
	// (see TelegramOptions); without a token there is none.
	Telegram TelegramOptions
}

// Edge holds the service connections and the HTTP handler.
type Edge struct {
	opts     Options
	logger   *slog.Logger
	backends *backends
	images   *imageCache // nil: no cache
	feed     *feedCache
	lim      *rateLimiter
	uploads  *uploadSlots
	metrics  *httpMetrics
	mux      http.Handler
	tg       *telegramBot // nil without a bot
}

// withDefaults fills in the options left zero.
func (opts Options) withDefaults() Options {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxUploadBytes <= 0 {
		opts.MaxUploadBytes = contract.DefaultMaxPhotoBytes
	}
	if opts.ImageCacheBytes == 0 {
		opts.ImageCacheBytes = DefaultImageCacheBytes
	}
	if opts.UploadIdle <= 0 {
		opts.UploadIdle = DefaultUploadIdle
	}
	if opts.MaxUploads <= 0 {
		opts.MaxUploads = DefaultMaxUploads
	}
	if opts.MaxUploadsPerClient <= 0 {
		opts.MaxUploadsPerClient = DefaultMaxUploadsPerClient
	}
	return opts
}

// New connects to the services (lazily: grpc.NewClient does not block) and
// builds the handler.
func New(opts Options) (*Edge, error) {
	opts = opts.withDefaults()
	if opts.FeedTarget == "" || opts.UploadTarget == "" || opts.BlobTarget == "" {
		return nil, errors.New("edge: --feed-target, --upload-target and --blob-target are required")
	}
	e := &Edge{opts: opts, logger: opts.Logger.With("service", "edge")}
	var cm *grpcprom.ClientMetrics
	if opts.Registry != nil {
		cm = grpcprom.NewClientMetrics(grpcprom.WithClientHandlingTimeHistogram())
		if err := opts.Registry.Register(cm); err != nil {
			return nil, fmt.Errorf("edge: register client metrics: %w", err)
		}
		hm, err := newHTTPMetrics(opts.Registry)
		if err != nil {
			return nil, fmt.Errorf("edge: register HTTP metrics: %w", err)
		}
		e.metrics = hm
	}
	images, err := newImageCache(opts.ImageCacheBytes)
	if err != nil {
		return nil, err
	}
	e.images = images
	b, err := dialBackends(opts, cm)
	if err != nil {
		return nil, err
	}
	e.backends = b
	if e.feed, err = newFeedCache(b, e.logger); err != nil {
		b.close()
		return nil, err
	}
	if opts.UploadRate > 0 {
		e.lim = newRateLimiter(opts.UploadRate, time.Minute)
	}
	e.uploads = newUploadSlots(opts.MaxUploads, opts.MaxUploadsPerClient)
	if e.tg, err = newTelegramBot(e, opts.Telegram); err != nil {
		e.Close()
		return nil, err
	}
	h, err := e.routes()
	if err != nil {
		e.Close()
		return nil, err
	}
	e.mux = h
	return e, nil
}

// Handler is the edge's whole HTTP handler.
func (e *Edge) Handler() http.Handler { return e.mux }

// Close closes the service connections.
func (e *Edge) Close() { e.backends.close() }

// Run serves until ctx is done, then stops accepting and waits for running
// requests (at most DrainPeriod, 10s when unset).
func Run(ctx context.Context, opts Options) error {
	e, err := New(opts)
	if err != nil {
		return err
	}
	defer e.Close()
	return e.Serve(ctx)
}

// Serve serves the edge's listeners until ctx is done.
func (e *Edge) Serve(ctx context.Context) error {
	opts := e.opts
	cert, err := loadOrCreateCert(opts.TLSCert, opts.TLSKey, opts.DataDir)
	if err != nil {
		return err
	}
	lis := opts.HTTPSListener
	if lis == nil {
		if lis, err = net.Listen("tcp", opts.HTTPSAddr); err != nil {
			return fmt.Errorf("edge: listen %s: %w", opts.HTTPSAddr, err)
		}
	}
	if !opts.AskFeedPerView {
		wctx, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		go e.feed.watch(wctx)
	}
	srv := newServer(e.mux)
	srv.TLSConfig = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
	}
	srv.ErrorLog = slog.NewLogLogger(e.logger.Handler(), slog.LevelDebug)
	servers := []*http.Server{srv}
	errc := make(chan error, 2)
	go func() { errc <- srv.ServeTLS(lis, "", "") }()
	base := "https://" + lis.Addr().String()
	e.logger.Info("HTTPS listening", "url", base+"/")

	if opts.HTTPAddr != "" || opts.HTTPListener != nil {
		hl := opts.HTTPListener
		if hl == nil {
			if hl, err = net.Listen("tcp", opts.HTTPAddr); err != nil {
				_ = srv.Close()
				return fmt.Errorf("edge: listen %s: %w", opts.HTTPAddr, err)
			}
		}
		port := opts.RedirectPort
		if port == 0 {
			_, p, _ := net.SplitHostPort(lis.Addr().String())
			port, _ = strconv.Atoi(p)
		}
		host := opts.PublicHost
		if host == "" {
			host = certHost(cert)
		}
		rs := newServer(securityHeaders(redirectHandler(host, port)))
		servers = append(servers, rs)
		go func() { errc <- rs.Serve(hl) }()
		e.logger.Info("HTTP redirect listening", "addr", hl.Addr().String(), "to_host", host, "to_port", port)
	}
	drain := opts.DrainPeriod
	if drain <= 0 {
		drain = 10 * time.Second
	}
	tctx, stopTelegram := context.WithCancel(ctx)
	waitTelegram := e.startTelegram(tctx, base, drain)
	defer func() { stopTelegram(); waitTelegram() }()
	if opts.Ready != nil {
		opts.Ready <- base
	}

	select {
	case err := <-errc:
		for _, s := range servers {
			_ = s.Close()
		}
		return fmt.Errorf("edge: serve: %w", err)
	case <-ctx.Done():
	}
	e.logger.Info("shutting down: finishing running requests", "max_wait", drain)
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	var firstErr error
	for _, s := range servers {
		if err := s.Shutdown(sctx); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("edge: shutdown: %w", err)
			_ = s.Close()
		}
	}
	return firstErr
}

// Default caps of the uploads in flight. An upload costs the edge little
// memory (the photo is streamed on, or held in a temporary file when it
// comes before the text); the caps keep one client from holding many.
const (
	DefaultMaxUploads          = 64
	DefaultMaxUploadsPerClient = 4
)

// maxStreams is how many requests one HTTP/2 connection may have running:
// a page needs a handful (the page, its images, three assets), and each
// stream holds memory while its client reads.
const maxStreams = 32

func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// Room for a 10 MiB upload over a slow link.
		ReadTimeout:    2 * time.Minute,
		WriteTimeout:   2 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 32 << 10,
		HTTP2:          &http.HTTP2Config{MaxConcurrentStreams: maxStreams},
	}
}

// redirectHandler sends plain HTTP requests to the same path over HTTPS on
// the site's own host: whatever Host a request names, the redirect never
// leads elsewhere.
func redirectHandler(host string, port int) http.Handler {
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		host = "[" + host + "]"
	}
	if port != 443 {
		host = host + ":" + strconv.Itoa(port)
	}
	base := "https://" + host
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, base+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}

// certHost is the first name a certificate is for: its first DNS name, else
// its first IP address, else localhost.
func certHost(cert tls.Certificate) string {
	leaf := cert.Leaf
	if leaf == nil && len(cert.Certificate) > 0 {
		leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	switch {
	case leaf == nil:
	case len(leaf.DNSNames) > 0:
		return leaf.DNSNames[0]
	case len(leaf.IPAddresses) > 0:
		return leaf.IPAddresses[0].String()
	}
	return "localhost"
}
