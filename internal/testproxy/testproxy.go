// Package testproxy is a TCP proxy for tests that can be cut and restored:
// between a service and MySQL, it makes a real outage (connections reset,
// new ones refused) without stopping the server other tests share.
package testproxy

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
)

// Proxy forwards every connection made to Addr to its target.
type Proxy struct {
	target, addr string

	mu     sync.Mutex
	ln     net.Listener // nil while cut
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

// Start starts a proxy to target on 127.0.0.1, closed when the test ends.
// Its port is in 10000-20000: below the kernel's ephemeral range, which an
// outgoing connection could take while the proxy is cut, and below other
// test helpers' fixed ports (20000 and up).
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{target: target, conns: map[net.Conn]bool{}}
	var err error
	for range 200 {
		p.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(10000+rand.IntN(10000)))
		if err = p.Restore(); err == nil {
			t.Cleanup(p.close)
			return p
		}
	}
	t.Fatalf("testproxy: no free port in 10000-20000: %v", err)
	return nil
}

// Addr is the address clients connect to, the same across Cut and Restore.
func (p *Proxy) Addr() string { return p.addr }

// Cut makes the target unreachable: open connections are reset and new
// ones refused until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	ln, conns := p.ln, p.conns
	p.ln, p.conns = nil, map[net.Conn]bool{}
	p.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	for c := range conns {
		closeHard(c)
	}
}

// Restore listens again on the same address (Go sets SO_REUSEADDR).
func (p *Proxy) Restore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("testproxy: closed")
	}
	if p.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.ln = ln
	p.wg.Go(func() {
		for c, err := ln.Accept(); err == nil; c, err = ln.Accept() { // until Cut
			p.wg.Go(func() { p.forward(ln, c) })
		}
	})
	return nil
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.Cut()
	p.wg.Wait()
}

// forward copies between c and the target until either side ends or the
// proxy is cut.
func (p *Proxy) forward(ln net.Listener, c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	p.mu.Lock()
	if err != nil || p.ln != ln { // unreachable, or cut while dialling
		p.mu.Unlock()
		closeHard(c)
		if up != nil {
			closeHard(up)
		}
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	for _, pair := range [][2]net.Conn{{up, c}, {c, up}} {
		go func() {
			_, _ = io.Copy(pair[0], pair[1])
			done <- struct{}{}
		}()
	}
	<-done
	// End the other direction too: neither side waits on a half-open connection.
	_ = c.Close()
	_ = up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// closeHard closes with a reset rather than a FIN, as a crashed server or
// a broken link would.
func closeHard(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
