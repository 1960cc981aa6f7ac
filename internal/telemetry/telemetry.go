// Package telemetry holds a process's tracing switch and the
// instrumentation every role shares: W3C trace context travels with a
// request (in HTTP headers and gRPC metadata) once a tracer provider is in
// use (package otlp installs one that exports over OTLP). Without one, nothing
// is traced and nothing is instrumented: the HTTP handler, the gRPC stats
// handlers and the store's queries are built without the wrappers (which
// cost allocations on every request even when no span is recorded). It
// also holds the instrumentation every role shares: the gRPC stats
// handlers.
package telemetry

import (
	"sync/atomic"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

var enabled atomic.Bool

// Use makes tp the process's tracer provider, with W3C trace context
// across the hops, and turns the instrumentation on for whatever is built
// afterwards. otlp.Setup calls it; tests call it with an in-memory recorder.
func Use(tp trace.TracerProvider) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	otel.SetTracerProvider(tp)
	enabled.Store(true)
}

// Enabled reports whether traces are kept: the edge, the services and
// the store instrument themselves only then.
func Enabled() bool { return enabled.Load() }

// notHealth leaves the health checks out of the traces: they run every
// second on every connection and say nothing of a request.
var notHealth = filters.Not(filters.HealthCheck())

// ServerHandler is the stats handler that traces a service's calls (none
// while tracing is off).
func ServerHandler() grpc.ServerOption {
	if !Enabled() {
		return grpc.EmptyServerOption{}
	}
	return grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithFilter(notHealth)))
}

// ClientHandler is the stats handler that traces a client's calls, one
// span per attempt (none while tracing is off).
func ClientHandler() grpc.DialOption {
	if !Enabled() {
		return grpc.EmptyDialOption{}
	}
	return grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithFilter(notHealth)))
}
