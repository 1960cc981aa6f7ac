package testproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// roundTrip sends a line over c (a new connection to p if nil) and reads
// the echo.
func roundTrip(t *testing.T, p *Proxy, c net.Conn, msg string) (net.Conn, string, error) {
	if c == nil {
		var err error
		if c, err = net.Dial("tcp", p.Addr()); err != nil {
			return nil, "", err
		}
		t.Cleanup(func() { c.Close() })
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return c, "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return c, line, err
}

func TestCutAndRestore(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for c, err := echo.Accept(); err == nil; c, err = echo.Accept() {
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	p := Start(t, echo.Addr().String())
	c, got, err := roundTrip(t, p, nil, "hello")
	if err != nil || got != "hello\n" {
		t.Fatalf("through the proxy: %q, %v", got, err)
	}
	p.Cut()
	if _, _, err := roundTrip(t, p, c, "after cut"); err == nil {
		t.Fatal("an open connection still works after Cut")
	}
	if _, _, err := roundTrip(t, p, nil, "x"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after Cut: %v, want connection refused", err)
	}
	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	if _, got, err := roundTrip(t, p, nil, "again"); err != nil || got != "again\n" {
		t.Fatalf("after Restore: %q, %v", got, err)
	}

	// A dead target: the connection is accepted and reset, or refused; no data.
	echo.Close()
	if _, _, err := roundTrip(t, Start(t, echo.Addr().String()), nil, "x"); err == nil {
		t.Fatal("a connection to a dead target carried data")
	}
}
