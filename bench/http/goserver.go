package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/extagram/extagram/internal/meshtls"
)

// goServer is the plain Go ceiling: net/http over crypto/tls, in the
// benchmark's own process (idle while wrk runs), writing from memory the
// bodies the edge served, with their Content-Type and nothing else. What
// separates it from nginx is the cost of Go's HTTP and TLS stack; what
// separates the edge from it is the edge's own work.
type goServer struct {
	url string
	srv *http.Server

	mu     sync.RWMutex
	bodies map[string]goBody // by request URI
}

type goBody struct {
	contentType string
	body        []byte
}

func startGoServer() (*goServer, error) {
	certPEM, keyPEM, err := meshtls.SelfSigned("Extagram HTTP benchmark (self-signed)", time.Now(), 7*24*time.Hour)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g := &goServer{url: "https://" + ln.Addr().String(), bodies: map[string]goBody{}}
	g.srv = &http.Server{
		Handler:           g,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = g.srv.ServeTLS(ln, "", "") }()
	return g, nil
}

// put makes the server answer uri with body.
func (g *goServer) put(uri, contentType string, body []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.bodies[uri] = goBody{contentType: contentType, body: body}
}

func (g *goServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.RLock()
	b, ok := g.bodies[r.URL.RequestURI()]
	g.mu.RUnlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", b.contentType)
	h.Set("Content-Length", strconv.Itoa(len(b.body)))
	_, _ = w.Write(b.body)
}

func (g *goServer) stop() { _ = g.srv.Close() }

func (g *goServer) String() string { return fmt.Sprintf("plain Go net/http at %s", g.url) }
