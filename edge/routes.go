package edge

import (
	"context"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/extagram/extagram/edge/web"
	"github.com/extagram/extagram/internal/telemetry"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
)

func (e *Edge) routes() (http.Handler, error) {
	mux := http.NewServeMux()
	page := named("page", http.HandlerFunc(e.handleFeed))
	mux.Handle("GET /{$}", page)
	mux.Handle("GET /extagram.php", page)

	upload := http.NewCrossOriginProtection().Handler(http.HandlerFunc(e.handleUpload))
	mux.Handle("POST /upload.php", named("upload", upload))
	mux.Handle("GET /storage/{id}", named("storage", http.HandlerFunc(e.handleStorage)))
	mux.Handle("GET /posts/{id}", named("post", http.HandlerFunc(e.handlePost)))
	e.telegramRoutes(mux)
	mux.Handle("/static/", named("static", web.Static()))
	mux.Handle("GET /favicon.ico", http.RedirectHandler("/static/favicon.svg", http.StatusMovedPermanently))

	gw := runtime.NewServeMux(
		runtime.WithErrorHandler(e.apiError),
		runtime.WithRoutingErrorHandler(e.apiRoutingError),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &apiMarshaler{JSONPb: &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: false, UseProtoNames: false},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		}}),
	)
	if err := e.backends.registerAPI(context.Background(), gw, e.feed); err != nil {
		return nil, err
	}
	mux.Handle("/api/", named("api", headAsGet(gw)))

	mux.Handle("GET /healthz", named("health", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})))
	mux.Handle("GET /readyz", named("health", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if bad := e.backends.notReady(); len(bad) > 0 {
			retryAfter(w, time.Second)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + strings.Join(bad, ", ") + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})))
	h := securityHeaders(e.observe(rejectDotSegments(http.MaxBytesHandler(mux, e.opts.MaxUploadBytes+formOverhead))))
	if !telemetry.Enabled() {
		return h, nil
	}
	// The trace of a request starts here. The edge faces the internet: a
	// client's trace context is linked, not continued.
	return otelhttp.NewHandler(h, "edge", otelhttp.WithPublicEndpointFn(func(*http.Request) bool { return true }),
		otelhttp.WithFilter(func(r *http.Request) bool { return r.URL.Path != "/healthz" && r.URL.Path != "/readyz" })), nil
}

// headAsGet serves HEAD requests as the GET of the same URL, without the
// body: the gateway routes GET only.
func headAsGet(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			r = r.Clone(r.Context())
			r.Method = http.MethodGet
			w = bodiless{w}
		}
		h.ServeHTTP(w, r)
	})
}

// bodiless drops what is written as a body.
type bodiless struct{ http.ResponseWriter }

func (b bodiless) Write(p []byte) (int, error) { return len(p), nil }

func (b bodiless) Unwrap() http.ResponseWriter { return b.ResponseWriter }

// rejectDotSegments answers 400 for paths with ".." segments or NUL bytes
// (also when percent-encoded), instead of the mux's redirect to the
// cleaned path: no route takes such a path, and saying so is clearer.
func rejectDotSegments(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if strings.ContainsRune(p, 0) || p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
			http.Error(w, "bad path", http.StatusBadRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}
