// Package telemetry sets up a process's traces: W3C trace context always
// travels with a request (in HTTP headers and gRPC metadata), and spans
// are exported over OTLP when an endpoint is given (the standard
// OTEL_EXPORTER_OTLP_ENDPOINT, or --otlp-endpoint). Without one, nothing
// is traced and nothing is instrumented: the HTTP handler, the gRPC stats
// handlers and the store's queries are built without the wrappers (which
// cost allocations on every request even when no span is recorded). It
// also holds the instrumentation every role shares: the gRPC stats
// handlers.
package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// Setup installs the process's propagation and, when an OTLP endpoint is
// set (endpoint, else the environment), a tracer provider that exports
// spans of service over OTLP/gRPC in batches. shutdown flushes them.
func Setup(ctx context.Context, service, endpoint string) (shutdown func(context.Context) error, err error) {
	if endpoint == "" && os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return func(context.Context) error { return nil }, nil
	}
	var opts []otlptracegrpc.Option
	if endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--otlp-endpoint must be an http:// or https:// URL of an OTLP/gRPC collector, not %q", endpoint)
		}
		opts = append(opts, otlptracegrpc.WithEndpointURL(endpoint))
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName("extagram-"+service)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	Use(tp)
	return tp.Shutdown, nil
}

var enabled atomic.Bool

// Use makes tp the process's tracer provider, with W3C trace context
// across the hops, and turns the instrumentation on for whatever is built
// afterwards. Setup calls it; tests call it with an in-memory recorder.
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
