package edge

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/balancer/roundrobin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // enables healthCheckConfig: without it client-side health checks are silently skipped
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/dns"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Service configs. Every connection balances round robin over all the
// addresses of its target and watches each backend's health, so a replica
// that dies or reports NOT_SERVING leaves the rotation at once.
//
// Feed reads are idempotent: they are hedged (see hedgedServices; grpc-go
// does not implement the service config's hedgingPolicy and ignores it). A
// call that has no answer after 250ms, or fails with UNAVAILABLE, is sent
// again to a replica it has not tried, and the first answer wins; so one
// dead, frozen or draining replica costs no failed page. Blob reads are
// retried before their first byte. Uploads are never retried.
const (
	feedServiceConfig = `{
  "loadBalancingConfig": [{"` + spreadName + `": {}}],
  "healthCheckConfig": {"serviceName": "extagram.feed.v1.FeedService"},
  "methodConfig": [{
    "name": [{"service": "extagram.feed.v1.FeedService"}],
    "timeout": "2s"
  }]
}`
	blobServiceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": "extagram.blob.v1.BlobService"},
  "methodConfig": [{
    "name": [{"service": "extagram.blob.v1.BlobService"}],
    "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.5s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
  }],
  "retryThrottling": {"maxTokens": 100, "tokenRatio": 0.2}
}`
	uploadServiceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": "extagram.upload.v1.UploadService"}
}`
)

var staticScheme atomic.Int64

// dial makes the one long-lived connection to a service. target is either
// a gRPC target with a scheme (dns:///feed:50051, dns://127.0.0.1:53/feed:50051)
// or a comma-separated list of host:port addresses.
func dial(target, serviceConfig string, metrics *grpcprom.ClientMetrics) (*grpc.ClientConn, error) {
	target = strings.TrimSpace(target)
	if target == "" {
		return nil, fmt.Errorf("empty target")
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			// grpc-go's lower bound; the servers permit it.
			Time:                10 * time.Second,
			Timeout:             2 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8 << 20)),
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
	opts = append(opts, grpc.WithChainUnaryInterceptor(hedge))
	if !strings.Contains(target, "://") && !strings.HasPrefix(target, "dns:") && !strings.HasPrefix(target, "unix:") {
		addrs, err := splitAddrs(target)
		if err != nil {
			return nil, err
		}
		scheme := fmt.Sprintf("extagram-static-%d", staticScheme.Add(1))
		r := manual.NewBuilderWithScheme(scheme)
		state := resolver.State{}
		for _, a := range addrs {
			state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
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

// hedgePolicy sends a unary call again when it has no answer after delay,
// or at once when an attempt fails with UNAVAILABLE, up to maxAttempts
// attempts in all; the first answer wins and the others are cancelled.
// With the spread balancer each attempt goes to a replica the call has not
// tried yet, so a frozen replica (which TCP and the health stream cannot
// tell from a slow one) costs a page delay, never the page.
type hedgePolicy struct {
	delay       time.Duration
	maxAttempts int
}

// hedgedServices maps method prefixes to their policy. Only idempotent
// reads belong here. No token-bucket throttling: a replica that loses its
// database answers UNAVAILABLE to every call for up to a second (until its
// health check notices), and those calls must all go elsewhere; attempts
// are bounded by maxAttempts and the 2s deadline instead.
var hedgedServices = map[string]hedgePolicy{
	"/extagram.feed.v1.FeedService/": {delay: 250 * time.Millisecond, maxAttempts: 3},
}

func hedgePolicyFor(method string) (hedgePolicy, bool) {
	if i := strings.LastIndexByte(method, '/'); i >= 0 {
		p, ok := hedgedServices[method[:i+1]]
		return p, ok
	}
	return hedgePolicy{}, false
}

// triedKey carries a hedged call's *triedBackends to the picker.
type triedKey struct{}

// triedBackends are the addresses a call's attempts were sent to.
type triedBackends struct {
	mu    sync.Mutex
	addrs []string
}

func (t *triedBackends) has(addr string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Contains(t.addrs, addr)
}

func (t *triedBackends) add(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addrs = append(t.addrs, addr)
}

// hedge is the unary client interceptor that applies hedgedServices.
func hedge(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	pol, ok := hedgePolicyFor(method)
	out, isMsg := reply.(proto.Message)
	if !ok || !isMsg {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // the attempts that lost
	ctx = context.WithValue(ctx, triedKey{}, &triedBackends{})
	done := make(chan *attempt, pol.maxAttempts)
	sent := 0
	send := func() {
		sent++
		a := newAttempt(out, opts)
		go func() {
			a.err = invoker(ctx, method, req, a.reply, cc, a.opts...)
			done <- a
		}()
	}
	send()
	timer := time.NewTimer(pol.delay)
	defer timer.Stop()
	var last *attempt
	for running := 1; running > 0; {
		select {
		case <-timer.C:
			if sent < pol.maxAttempts {
				send()
				running++
				timer.Reset(pol.delay)
			}
		case a := <-done:
			running--
			last = a
			if a.err == nil || status.Code(a.err) != codes.Unavailable {
				a.deliver(out, opts)
				return a.err
			}
			if sent < pol.maxAttempts {
				send()
				running++
				timer.Reset(pol.delay)
			}
		}
	}
	last.deliver(out, opts)
	return last.err
}

// attempt is one try of a hedged call, with its own reply and its own
// header, trailer and peer (the caller's are filled from the winner).
type attempt struct {
	reply           proto.Message
	opts            []grpc.CallOption
	header, trailer metadata.MD
	peer            peer.Peer
	err             error
}

func newAttempt(out proto.Message, opts []grpc.CallOption) *attempt {
	a := &attempt{reply: out.ProtoReflect().New().Interface(), opts: make([]grpc.CallOption, 0, len(opts))}
	for _, o := range opts {
		switch o.(type) {
		case grpc.HeaderCallOption:
			o = grpc.Header(&a.header)
		case grpc.TrailerCallOption:
			o = grpc.Trailer(&a.trailer)
		case grpc.PeerCallOption:
			o = grpc.Peer(&a.peer)
		}
		a.opts = append(a.opts, o)
	}
	return a
}

func (a *attempt) deliver(out proto.Message, opts []grpc.CallOption) {
	if a.err == nil {
		proto.Reset(out)
		proto.Merge(out, a.reply)
	}
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = a.header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = a.trailer
		case grpc.PeerCallOption:
			*o.PeerAddr = a.peer
		}
	}
}

// spreadName is round_robin (with its health checks) whose picker sends
// the attempts of one hedged call to different backends. Plain round_robin
// cannot: under concurrent calls its next pick is as likely as not the
// replica the first attempt is stuck on.
const spreadName = "extagram_spread_round_robin"

type spreadBuilder struct{}

func (spreadBuilder) Name() string { return spreadName }

func (spreadBuilder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	return balancer.Get(roundrobin.Name).Build(&spreadCC{ClientConn: cc, outliers: newOutliers()}, opts)
}

// spreadCC wraps every picker round_robin publishes.
type spreadCC struct {
	balancer.ClientConn
	// outliers outlives the pickers: a replica's record must survive the
	// state updates of the others.
	outliers *outliers
}

func (c *spreadCC) UpdateState(s balancer.State) {
	p := &spreadPicker{fallback: s.Picker, outliers: c.outliers}
	for _, cs := range endpointsharding.ChildStatesFromPicker(s.Picker) {
		if cs.State.ConnectivityState == connectivity.Ready && len(cs.Endpoint.Addresses) > 0 {
			p.ready = append(p.ready, readyBackend{addr: cs.Endpoint.Addresses[0].Addr, picker: cs.State.Picker})
		}
	}
	if n := len(p.ready); n > 0 {
		p.next.Store(uint32(rand.IntN(n)))
	}
	s.Picker = p
	c.ClientConn.UpdateState(s)
}

type readyBackend struct {
	addr   string
	picker balancer.Picker
}

// spreadPicker picks in turn among the ready (and healthy) backends,
// skipping those the call has tried; calls that are not hedged, and picks
// while no backend is ready, go to round_robin's own picker.
type spreadPicker struct {
	ready    []readyBackend
	next     atomic.Uint32
	fallback balancer.Picker
	outliers *outliers
}

func (p *spreadPicker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	tried, _ := info.Ctx.Value(triedKey{}).(*triedBackends)
	if tried == nil || len(p.ready) == 0 {
		return p.fallback.Pick(info)
	}
	n := uint32(len(p.ready))
	start := p.next.Add(1)
	now := time.Now()
	// Best: a replica the call has not tried and that answers; then one it
	// has not tried; then any (every one tried: start again).
	b, rank := p.ready[start%n], 0
	for i := range n {
		c := p.ready[(start+i)%n]
		r := 1
		if !tried.has(c.addr) {
			r = 2
			if !p.outliers.ejected(c.addr, now) {
				r = 3
			}
		}
		if r > rank {
			b, rank = c, r
		}
		if r == 3 {
			break
		}
	}
	tried.add(b.addr)
	res, err := b.picker.Pick(info)
	if err != nil {
		return res, err
	}
	done := res.Done
	res.Done = func(di balancer.DoneInfo) {
		p.outliers.record(b.addr, di.Err, time.Now())
		if done != nil {
			done(di)
		}
	}
	return res, nil
}

// outliers takes replicas that stop answering out of the picks for a
// while. A frozen replica (SIGSTOP, a stuck host) keeps its connection and
// its last health status, so round_robin and the health checks keep it in
// rotation; hedging saves every call sent to it, but each one waits for the
// hedging delay. After ejectAfter attempts in a row that failed or lost to
// a hedge, the replica gets no first attempts for an ejection time that
// doubles while it goes on failing (from ejectBase to ejectMax), and one
// answered attempt clears its record. It still takes attempts when every
// other replica has been tried or is ejected too, so ejection never costs
// a page.
type outliers struct {
	mu sync.Mutex
	by map[string]*outlierRecord
}

type outlierRecord struct {
	failures     int
	ejections    int
	ejectedUntil time.Time
}

const (
	ejectAfter = 3
	ejectBase  = 500 * time.Millisecond
	ejectMax   = 2 * time.Second
)

func newOutliers() *outliers { return &outliers{by: map[string]*outlierRecord{}} }

func (o *outliers) ejected(addr string, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.by[addr]
	return r != nil && now.Before(r.ejectedUntil)
}

func (o *outliers) record(addr string, err error, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.by[addr]
	if err == nil {
		delete(o.by, addr)
		return
	}
	switch status.Code(err) {
	case codes.Canceled, codes.DeadlineExceeded, codes.Unavailable:
	default:
		// An answer, if not a happy one: the replica is alive.
		delete(o.by, addr)
		return
	}
	if r == nil {
		r = &outlierRecord{}
		o.by[addr] = r
	}
	r.failures++
	if r.failures >= ejectAfter && !now.Before(r.ejectedUntil) {
		d := min(ejectBase<<min(r.ejections, 8), ejectMax)
		r.ejectedUntil = now.Add(d)
		r.ejections++
		r.failures = 0
	}
}
