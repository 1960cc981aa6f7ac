package edge

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/extagram/extagram/edge/web"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/metadata"
)

// securityHeaders sets the headers every edge response carries.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", web.CSP)
		hd.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		h.ServeHTTP(w, r)
	})
}

type ctxKey int

const requestIDKey ctxKey = iota

// withRequestID gives each request an id: in the response's X-Request-Id,
// in every log line of the request, and in the gRPC metadata of its calls.
func (e *Edge) withRequestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		w.Header().Set("X-Request-Id", id)
		ctx := metadata.AppendToOutgoingContext(r.Context(), "x-request-id", id)
		ctx = contextWithRequestID(ctx, id)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		h.ServeHTTP(rec, r.WithContext(ctx))
		lvl := slog.LevelDebug
		if rec.status >= 500 {
			lvl = slog.LevelWarn
		}
		e.logger.Log(ctx, lvl, "request", "request_id", id, "method", r.Method, "path", r.URL.Path,
			"status", rec.status, "bytes", rec.bytes, "duration", time.Since(start))
	})
}

// statusRecorder remembers the status for the log line; it passes Flush
// and ReadFrom through via Unwrap (http.ResponseController).
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
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
