package hatest_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/extagram/extagram/hatest"
	"github.com/extagram/extagram/store/storetest"
	"github.com/go-sql-driver/mysql"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// proxy forwards TCP connections to a target until it is cut: then open
// connections are closed and new ones refused, as when a database host
// goes away, without stopping the database other tests share.
type proxy struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener // nil while cut
	conns map[net.Conn]bool
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p := &proxy{target: target, conns: map[net.Conn]bool{}}
	// Not a port of the ephemeral range, which an outgoing connection
	// could take while the proxy is cut.
	addr, err := hatest.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *proxy) forward(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // cut meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
	}
	go pipe(up, c)
	go pipe(c, up)
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// cut closes the listener and every open connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// restore listens on the same address again.
func (p *proxy) restore(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.serve(ln)
}

// A replica whose database becomes unreachable reports NOT_SERVING and
// leaves the rotation while the other serves every page; when the database
// is back, it reports SERVING and serves again.
func TestLostDatabase(t *testing.T) {
	dsn := storetest.MySQLDSN(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, cfg.Addr)
	viaProxy := cfg.Clone()
	viaProxy.Addr = px.addr
	c := startCluster(t, hatest.Options{DSN: dsn, FeedDSNs: []string{viaProxy.FormatDSN(), dsn}})
	sick, healthy := c.Feeds[0], c.Feeds[1]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	calls := followCalls(t, c.Feeds, 100*time.Millisecond)
	load := startLoad(t, c, clients, 0)
	load.SleepUntil(2 * time.Second)
	px.cut()
	if err := hatest.WaitStatus(ctx, sick.Addr, healthpb.HealthCheckResponse_NOT_SERVING, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Out of rotation: once the edge has seen the status, its counter stands
	// still while the other's grows.
	time.Sleep(300 * time.Millisecond)
	sick1, err1 := hatest.ListPostsHandled(ctx, sick.MetricsAddr)
	healthy1, err2 := hatest.ListPostsHandled(ctx, healthy.MetricsAddr)
	time.Sleep(2 * time.Second)
	sick2, err3 := hatest.ListPostsHandled(ctx, sick.MetricsAddr)
	healthy2, err4 := hatest.ListPostsHandled(ctx, healthy.MetricsAddr)
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("database cut: in 2s %s handled %.0f calls, %s %.0f", sick.Name, sick2-sick1, healthy.Name, healthy2-healthy1)
	if sick2 != sick1 {
		t.Errorf("%s, NOT_SERVING, still got %.0f calls in 2s", sick.Name, sick2-sick1)
	}
	if healthy2 <= healthy1 {
		t.Errorf("%s served nothing while %s was out", healthy.Name, sick.Name)
	}

	px.restore(t)
	if err := hatest.WaitHealth(ctx, sick.Addr, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	calls.Mark(sick)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := calls.ServedAgain(sick); ok {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	samples := load.Stop()
	calls.Stop()
	if d, ok := calls.ServedAgain(sick); ok {
		t.Logf("%s served again %s after reporting SERVING", sick.Name, d.Round(time.Millisecond))
	} else {
		t.Errorf("%s did not serve again within 10s of its database coming back", sick.Name)
	}
	checkNoFailures(t, samples)
}
