// Package otlp exports a process's spans over OTLP/gRPC when an endpoint
// is given (the standard OTEL_EXPORTER_OTLP_ENDPOINT, or --otlp-endpoint).
// It is the only package that builds the OpenTelemetry SDK, so that the
// edge and the services depend on the API alone.
package otlp

import (
	"context"
	"fmt"
	"net/url"
	"os"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"

	"github.com/extagram/extagram/internal/telemetry"
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
	telemetry.Use(tp)
	return tp.Shutdown, nil
}
