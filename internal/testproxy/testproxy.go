// Package testproxy is a TCP proxy for tests that can be cut and restored.
// Put one between a service and its database (MySQL) and cut it: the
// service then meets a real outage (connections reset, new ones refused)
// without anyone stopping the database server, which other tests share.
package testproxy

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
)

// Proxy forwards every connection made to Addr to its target.
type Proxy struct {
	target string
	addr   string

	mu       sync.Mutex
	ln       net.Listener // nil while cut
	conns    map[net.Conn]struct{}
	closed   bool
	accepted int
	wg       sync.WaitGroup
}

// New starts a proxy to target on 127.0.0.1, on a port of its own.
func New(target string) (*Proxy, error) {
	ln, err := listen()
	if err != nil {
		return nil, fmt.Errorf("testproxy: %w", err)
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	return p, nil
}

// Start is New for a test: it fails the test on error and closes the proxy
// when the test ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Addr is the address clients connect to; it stays the same across Cut
// and Restore.
func (p *Proxy) Addr() string { return p.addr }

// Accepted is the number of connections accepted so far.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Cut makes the target unreachable, as a stopped server or a broken link
// would: every open connection is closed (the client sees a reset or EOF
// mid-conversation) and the listener is closed, so new connections are
// refused until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	for c := range conns {
		closeHard(c)
	}
}

// Restore listens again on the same address; new connections reach the
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
	// Go sets SO_REUSEADDR, so the port can be bound again even while
	// connections the proxy closed linger in TIME_WAIT.
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("testproxy: listen again on %s: %w", p.addr, err)
	}
	p.serveLocked(ln)
	return nil
}

// Close cuts the proxy for good and waits for its goroutines.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.serveLocked(ln)
}

func (p *Proxy) serveLocked(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by Cut or Close
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(ln, c)
			}()
		}
	}()
}

// forward connects c to the target and copies both ways until either side
// ends or the proxy is cut.
func (p *Proxy) forward(ln net.Listener, c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		closeHard(c)
		return
	}
	p.mu.Lock()
	if p.ln != ln { // cut while dialling
		p.mu.Unlock()
		closeHard(c)
		closeHard(up)
		return
	}
	p.accepted++
	p.conns[c] = struct{}{}
	p.conns[up] = struct{}{}
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

// Ports the proxy listens on: below the kernel's ephemeral range (32768
// and up on Linux), which 127.0.0.1:0 listeners and outgoing connections
// use. While the proxy is cut its port is free; were it an ephemeral port,
// an outgoing connection could take it and Restore could not listen again
// (or a client dialling the proxy could even connect to itself). The
// range also stays clear of other test helpers' fixed-port picks
// (20000 and up).
const (
	portLow  = 10000
	portHigh = 20000
)

func listen() (net.Listener, error) {
	var err error
	for range 200 {
		port := portLow + rand.IntN(portHigh-portLow)
		var ln net.Listener
		ln, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			return ln, nil
		}
	}
	return nil, fmt.Errorf("no free port in %d-%d: %w", portLow, portHigh, err)
}

// closeHard closes a connection with a reset rather than a FIN, the way a
// crashed server or a broken link ends it.
func closeHard(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
