package edge

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// hedgePolicy sends a unary call again when it has no answer after delay,
// or at once when an attempt fails with UNAVAILABLE, up to maxAttempts
// attempts in all, all within timeout; the first answer wins and the others
// are cancelled. With the spread balancer each attempt goes to a replica
// the call has not tried yet, so a frozen replica (which TCP and the health
// stream cannot tell from a slow one) costs a page delay, never the page.
type hedgePolicy struct {
	delay       time.Duration
	maxAttempts int
	// timeout is the deadline of the whole call, every attempt included
	// (an earlier deadline of the caller's wins). It is the one deadline
	// of feed calls, pages and JSON API alike: short, because a page must
	// answer quickly even when every replica is down.
	timeout time.Duration
}

// hedgedServices maps method prefixes to their policy. Only idempotent
// reads belong here. No token-bucket throttling: a replica that loses its
// database answers UNAVAILABLE to every call for up to a second (until its
// health check notices), and those calls must all go elsewhere; attempts
// are bounded by maxAttempts and the deadline instead.
var hedgedServices = map[string]hedgePolicy{
	"/" + feedService + "/": {delay: 250 * time.Millisecond, maxAttempts: 3, timeout: 2 * time.Second},
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
	ctx, cancel := context.WithTimeout(ctx, pol.timeout)
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
				hedgedAttempts.WithLabelValues("slow").Inc()
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
				hedgedAttempts.WithLabelValues("unavailable").Inc()
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
