package edge

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
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
