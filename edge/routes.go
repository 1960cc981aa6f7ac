package edge

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/extagram/extagram/edge/web"
	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// Deadlines of the calls a page makes. They are short because every page
// must answer quickly, even when every replica is down.
const (
	feedTimeout   = 2 * time.Second
	uploadTimeout = 2 * time.Minute
	blobTimeout   = time.Minute
)

func (e *Edge) routes() (http.Handler, error) {
	mux := http.NewServeMux()
	page := e.instrument("page", http.HandlerFunc(e.handleFeed))
	mux.Handle("GET /{$}", page)
	mux.Handle("GET /extagram.php", page)

	upload := http.NewCrossOriginProtection().Handler(http.HandlerFunc(e.handleUpload))
	mux.Handle("POST /upload.php", e.instrument("upload", upload))
	mux.Handle("GET /storage/{id}", e.instrument("storage", http.HandlerFunc(e.handleStorage)))
	mux.Handle("/static/", e.instrument("static", web.Static()))
	mux.Handle("GET /favicon.ico", http.RedirectHandler("/static/favicon.svg", http.StatusMovedPermanently))

	gw := runtime.NewServeMux(
		runtime.WithErrorHandler(e.apiError),
		runtime.WithRoutingErrorHandler(e.apiRoutingError),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: false, UseProtoNames: false},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		}),
	)
	if err := feedv1.RegisterFeedServiceHandlerClient(context.Background(), gw, e.feed); err != nil {
		return nil, err
	}
	mux.Handle("/api/", e.instrument("api", gw))

	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if bad := e.notReady(); len(bad) > 0 {
			retryAfter(w, time.Second)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + strings.Join(bad, ", ") + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return securityHeaders(e.withRequestID(rejectDotSegments(http.MaxBytesHandler(mux, e.opts.MaxUploadBytes+formOverhead)))), nil
}

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

// instrument counts and times requests by handler, when metrics are on.
func (e *Edge) instrument(name string, h http.Handler) http.Handler {
	if e.metrics == nil {
		return h
	}
	labels := prometheus.Labels{"handler": name}
	return promhttp.InstrumentHandlerDuration(e.metrics.duration.MustCurryWith(labels),
		promhttp.InstrumentHandlerCounter(e.metrics.requests.MustCurryWith(labels), h))
}

// apiError writes a failed API call as JSON (google.rpc.Status) with the
// status from the one table.
func (e *Edge) apiError(ctx context.Context, _ *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	st := status.Convert(err)
	code := HTTPStatus(err)
	pb := st.Proto()
	if code >= 500 {
		pb.Message = userMessage(err)
		pb.Details = nil
	}
	body, merr := m.Marshal(pb)
	if merr != nil {
		grpclog.Errorf("edge: marshal error: %v", merr)
		body = []byte(`{"code":13,"message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	if code == http.StatusServiceUnavailable {
		retryAfter(w, 2*time.Second)
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func (e *Edge) apiRoutingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	msg := http.StatusText(httpStatus)
	if httpStatus == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", "GET, HEAD")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	body, _ := m.Marshal(map[string]any{"code": httpStatus, "message": msg})
	_, _ = w.Write(body)
}
