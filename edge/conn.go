package edge

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	blobv1 "github.com/extagram/extagram/gen/extagram/blob/v1"
	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"github.com/extagram/extagram/internal/requestid"
	"github.com/extagram/extagram/internal/telemetry"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/health" // enables healthCheckConfig: without it client-side health checks are silently skipped
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/dns"
	"google.golang.org/grpc/resolver/manual"
)

// Service names, from the generated descriptors.
var (
	feedService   = feedv1.FeedService_ServiceDesc.ServiceName
	uploadService = uploadv1.UploadService_ServiceDesc.ServiceName
	blobService   = blobv1.BlobService_ServiceDesc.ServiceName
)

// Service configs. Every connection balances over all the addresses of
// its target and watches each backend's health, so a replica that dies or
// reports NOT_SERVING leaves the rotation at once.
//
// Feed reads are idempotent and hedged by the edge itself (hedge.go;
// grpc-go ignores the service config's hedgingPolicy), over the spread
// balancer (balancer.go) that sends each attempt of a call to another
// replica. Blob reads are retried before their first byte. Uploads are
// never retried.
var (
	feedServiceConfig = fmt.Sprintf(`{
  "loadBalancingConfig": [{%q: {}}],
  "healthCheckConfig": {"serviceName": %q}
}`, spreadName, feedService)
	blobServiceConfig = fmt.Sprintf(`{
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": %q},
  "methodConfig": [{
    "name": [{"service": %q}],
    "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.5s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
  }],
  "retryThrottling": {"maxTokens": 100, "tokenRatio": 0.2}
}`, blobService, blobService)
	uploadServiceConfig = fmt.Sprintf(`{
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": %q}
}`, uploadService)
)

// Flow-control windows of the connections to the services: enough for a
// chunk in flight and the next one, over a network with a short round
// trip.
const (
	streamWindow = 256 << 10
	connWindow   = 2 << 20
)

var staticScheme atomic.Int64

// dial makes the one long-lived connection to a service. target is either
// a gRPC target with a scheme (dns:///feed:50051, dns://127.0.0.1:53/feed:50051)
// or a comma-separated list of host:port addresses.
func dial(target, serviceConfig string, creds credentials.TransportCredentials, metrics *grpcprom.ClientMetrics) (*grpc.ClientConn, error) {
	target = strings.TrimSpace(target)
	if target == "" {
		return nil, fmt.Errorf("empty target")
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		// A span per attempt: a hedged call shows as two.
		telemetry.ClientHandler(),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			// grpc-go's lower bound; the servers permit it.
			Time:                10 * time.Second,
			Timeout:             2 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8 << 20)),
		// Fixed flow-control windows (this turns off the growth grpc-go
		// would otherwise give them): a stream whose HTTP client reads
		// slowly or not at all holds at most streamWindow here, and the
		// service sending it stops there too.
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(connWindow),
		// Reconnect quickly: a replica that comes back is in rotation again
		// within about a second, however long it was down (the default
		// backoff grows to two minutes).
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
	}
	if metrics != nil {
		opts = append(opts,
			grpc.WithChainUnaryInterceptor(metrics.UnaryClientInterceptor()),
			grpc.WithChainStreamInterceptor(metrics.StreamClientInterceptor()))
	}
	// Inside the metrics interceptor: a hedged call counts once.
	opts = append(opts,
		grpc.WithChainUnaryInterceptor(sendRequestID, hedge),
		grpc.WithChainStreamInterceptor(sendRequestIDStream))
	if !strings.Contains(target, "://") && !strings.HasPrefix(target, "dns:") && !strings.HasPrefix(target, "unix:") {
		addrs, err := splitAddrs(target)
		if err != nil {
			return nil, err
		}
		scheme := fmt.Sprintf("extagram-static-%d", staticScheme.Add(1))
		r := manual.NewBuilderWithScheme(scheme)
		state := resolver.State{}
		for _, a := range addrs {
			// Each address is its own TLS server name: the target as a
			// whole ("host:port,host:port") names no host.
			host, _, _ := net.SplitHostPort(a)
			state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a, ServerName: host}}})
		}
		r.InitialState(state)
		opts = append(opts, grpc.WithResolvers(r))
		target = scheme + ":///" + strings.Join(addrs, ",")
	}
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", target, err)
	}
	return cc, nil
}

func splitAddrs(list string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(list, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if !strings.Contains(a, ":") {
			return nil, fmt.Errorf("address %q has no port", a)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no address in %q", list)
	}
	return out, nil
}

// dnsMinResolutionInterval is how often, at most, a dns:/// target is
// resolved again. grpc-go re-resolves when a connection closes, which the
// servers' max connection age (30s by default) makes happen regularly, but
// by default no sooner than 30s after the previous resolution; 5s lets new
// replicas be found within about one connection age.
const dnsMinResolutionInterval = 5 * time.Second

func init() {
	// Must be set before any channel resolves: the resolver reads it
	// without locking.
	dns.SetMinResolutionInterval(dnsMinResolutionInterval)
	balancer.Register(spreadBuilder{})
}

// sendRequestID puts the id of the HTTP request a call serves in the call's
// metadata (x-request-id), for the services' logs.
func sendRequestID(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(requestid.Outgoing(ctx), method, req, reply, cc, opts...)
}

func sendRequestIDStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(requestid.Outgoing(ctx), desc, cc, method, opts...)
}
