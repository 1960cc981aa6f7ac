package edge

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/balancer/roundrobin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

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
		ejections.Inc()
		r.ejections++
		r.failures = 0
	}
}
