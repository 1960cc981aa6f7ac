// Package testproxy is a TCP proxy for tests that can be cut and restored.
// Put one between a service and its database (MySQL) and cut it: the
// service then meets a real outage (connections reset, new ones refused)
// without anyone stopping the database server, which other tests share.
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

// Start starts a proxy to target on 127.0.0.1, on a port of its own, and
// closes it when the test ends.
//
// The port is below the kernel's ephemeral range (32768 and up on Linux),
// which 127.0.0.1:0 listeners and outgoing connections use: while the proxy
// is cut its port is free, and were it ephemeral an outgoing connection
// could take it (Restore could not listen again, or a client dialling the
// proxy could connect to itself). The range stays clear of other test
// helpers' fixed-port picks (20000 and up).
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

// Addr is the address clients connect to; it stays the same across Cut
// and Restore.
func (p *Proxy) Addr() string { return p.addr }

// Cut makes the target unreachable, as a stopped server or a broken link
// would: every open connection is closed with a reset (the client sees it
// mid-conversation) and the listener is closed, so new connections are
// refused until Restore.
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

// Restore listens again on the same address (Go sets SO_REUSEADDR, so
// connections in TIME_WAIT do not stop it); new connections reach the
// target again.
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

// close cuts the proxy for good and waits for its goroutines.
func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.Cut()
	p.wg.Wait()
}

// forward connects c to the target and copies both ways until either side
// ends or the proxy is cut.
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
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	// One direction ended: end the other, so that neither side waits on a
	// half-open connection.
	_ = c.Close()
	_ = up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// closeHard closes a connection with a reset rather than a FIN, the way a
// crashed server or a broken link ends it.
func closeHard(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
