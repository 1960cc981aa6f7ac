package hatest

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// startDNS serves over UDP the A records of name, the addresses last given
// to set, and returns the server's address.
func startDNS(t *testing.T, name string) (addr string, set func(ips ...string)) {
	var ips atomic.Pointer[[]string]
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		m.Authoritative = true
		for _, q := range r.Question {
			switch {
			case !strings.EqualFold(q.Name, dns.Fqdn(name)):
				m.Rcode = dns.RcodeNameError
			case q.Qtype == dns.TypeA: // no AAAA, TXT or SRV records: an empty answer
				for _, ip := range *ips.Load() {
					m.Answer = append(m.Answer, &dns.A{A: net.ParseIP(ip),
						Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0}})
				}
			}
		}
		_ = w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dns.Server{PacketConn: pc, Handler: handler}
	started := make(chan struct{})
	s.NotifyStartedFunc = func() { close(started) }
	go func() { _ = s.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = s.Shutdown() })
	return pc.LocalAddr().String(), func(v ...string) { ips.Store(&v) }
}

// A replica added behind the edge's dns:/// feed target is used without a
// restart: the servers' max connection age (2s here, 30s by default) makes
// the edge resolve the name again (at most every 5s, see edge/conn.go).
func TestDNSScaleOut(t *testing.T) {
	t.Parallel()
	const name = "feed"                           // in the replicas' certificates, as in Compose and Kubernetes
	const hostA, hostB = "127.0.0.2", "127.0.0.3" // loopback on Linux
	dnsAddr, set := startDNS(t, name)
	set(hostA)
	// Replicas behind one name differ by address, not by port.
	var port string
	for i := 0; port == ""; i++ {
		addr, err := FreePort(hostA)
		if err != nil || i == 20 {
			t.Fatalf("no port free on both %s and %s: %v", hostA, hostB, err)
		}
		_, p, _ := net.SplitHostPort(addr)
		if l, err := net.Listen("tcp", net.JoinHostPort(hostB, p)); err == nil {
			l.Close()
			port = p
		}
	}
	c := startCluster(t, Options{
		Replicas:         1,
		FeedAddrs:        []string{net.JoinHostPort(hostA, port)},
		FeedTarget:       "dns://" + dnsAddr + "/" + name + ":" + port,
		MaxConnectionAge: 2 * time.Second,
	})
	load := startLoad(t, c, 8, 0)
	added, err := c.run(t.Context(), "feed-2", "feed", net.JoinHostPort(hostB, port), c.opts.DSN)
	if err != nil {
		t.Fatal(err)
	}
	calls := followCalls(t, []*Proc{added}, 100*time.Millisecond)
	set(hostA, hostB)
	calls.Mark(added)
	runUntilServed(t, load, calls, added, 30*time.Second)
}
