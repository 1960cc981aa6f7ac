package edge

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/extagram/extagram/edge/web"
	"github.com/extagram/extagram/internal/requestid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"
)

// securityHeaderValues are the headers every edge response carries, as
// header map entries made once.
var securityHeaderValues = []struct {
	key   string // canonical
	value []string
}{
	{"Content-Security-Policy", []string{web.CSP}},
	{"Strict-Transport-Security", []string{"max-age=63072000; includeSubDomains"}},
	{"Referrer-Policy", []string{"no-referrer"}},
	{"X-Content-Type-Options", []string{"nosniff"}},
	{"X-Frame-Options", []string{"DENY"}},
	{"Cross-Origin-Opener-Policy", []string{"same-origin"}},
	{"Permissions-Policy", []string{"camera=(), microphone=(), geolocation=()"}},
}

// securityHeaders sets the headers every edge response carries.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		for _, sh := range securityHeaderValues {
			hd[sh.key] = sh.value
		}
		h.ServeHTTP(w, r)
	})
}

// observe gives each request an id, the client's X-Request-Id when it is
// valid, else a new one: in the response's X-Request-Id, in every log line
// of the request (requestid.Handler), on the trace's root span and,
// through the connections' interceptors, in the gRPC metadata of its
// calls. Then it counts the request under the name its route gave it (see
// named) and writes its access log line.
func (e *Edge) observe(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !requestid.Valid(id) {
			id = requestid.New()
		}
		w.Header()["X-Request-Id"] = []string{id}
		ctx := requestid.NewContext(r.Context(), id)
		trace.SpanFromContext(ctx).SetAttributes(attribute.String("extagram.request_id", id))
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		h.ServeHTTP(rec, r.WithContext(ctx))
		elapsed := time.Since(start)
		if errors.Is(ctx.Err(), context.Canceled) {
			// The client went away (closed the connection, reset the
			// stream): whatever was answered, nobody read it, and it says
			// nothing of the site's health. Counted and logged as nginx
			// does, 499, at debug level.
			rec.status = statusClientClosed
		}
		if e.metrics != nil && rec.handler != "" {
			e.metrics.observe(rec.handler, r.Method, rec.status, elapsed)
		}
		// The access log: one line per request at INFO (5xx at WARN
		// even without it); health checks and clients gone at debug.
		lvl := slog.LevelInfo
		switch {
		case rec.status == statusClientClosed, rec.handler == "health":
			lvl = slog.LevelDebug
		case rec.status >= 500:
			lvl = slog.LevelWarn
		case !e.opts.AccessLog:
			lvl = slog.LevelDebug
		}
		if e.logger.Enabled(ctx, lvl) {
			e.logger.LogAttrs(ctx, lvl, "request", slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", rec.status), slog.Int64("bytes", rec.bytes), slog.Duration("duration", elapsed))
		}
	})
}

// statusClientClosed is nginx's status for a request whose client closed
// the connection before the answer.
const statusClientClosed = 499

// named gives a route's requests their name in the metrics.
func named(name string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rec, ok := w.(*statusRecorder); ok {
			rec.handler = name
		}
		if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
			span.SetName(r.Method + " " + name)
		}
		h.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status and size for the log line and the
// metrics; it passes Flush and ReadFrom through via Unwrap
// (http.ResponseController).
type statusRecorder struct {
	http.ResponseWriter
	handler string
	status  int
	bytes   int64
	wrote   bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// rateLimiter is a token bucket per client address.
type rateLimiter struct {
	mu      sync.Mutex
	perMin  float64
	buckets map[string]*bucket
	ttl     time.Duration
	last    time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newRateLimiter(perMinute float64, ttl time.Duration) *rateLimiter {
	return &rateLimiter{perMin: perMinute, buckets: map[string]*bucket{}, ttl: ttl}
}

// allow takes a token for client; when none is left it returns how long
// until one is.
func (l *rateLimiter) allow(client string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Forget idle clients now and then so the map stays small.
	if now.Sub(l.last) > l.ttl {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > l.ttl {
				delete(l.buckets, k)
			}
		}
		l.last = now
	}
	b := l.buckets[client]
	if b == nil {
		burst := max(1, int(math.Ceil(l.perMin)))
		b = &bucket{lim: rate.NewLimiter(rate.Limit(l.perMin/60), burst)}
		l.buckets[client] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func retryAfter(w http.ResponseWriter, d time.Duration) {
	secs := int(math.Ceil(d.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(max(1, secs)))
}
