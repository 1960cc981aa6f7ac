package edge

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Counters of the feed calls' failover, kept by the hedging interceptor and
// the spread balancer (which the gRPC library builds, so they are the
// process's) and registered with every edge's registry.
var (
	hedgedAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "extagram_feed_hedged_attempts_total",
		Help: "Feed calls sent again to another replica, by why: the first had no answer in time (slow) or failed with UNAVAILABLE.",
	}, []string{"reason"})
	ejections = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "extagram_feed_replica_ejections_total",
		Help: "Times a feed replica that kept failing or losing to hedges was taken out of the first picks for a while.",
	})
)

// httpMetrics are the edge's HTTP metrics, registered on Options.Registry.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "extagram_http_requests_total",
			Help: "HTTP requests served by the edge, by handler, method and status code.",
		}, []string{"handler", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "extagram_http_request_duration_seconds",
			Help:    "Time to serve HTTP requests at the edge, by handler and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"handler", "method"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, hedgedAttempts, ejections} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe counts and times one request.
func (m *httpMetrics) observe(handler, method string, code int, elapsed time.Duration) {
	m.requests.WithLabelValues(handler, method, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(handler, method).Observe(elapsed.Seconds())
}
