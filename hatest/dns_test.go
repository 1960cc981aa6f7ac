package hatest_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extagram/extagram/hatest"
	"github.com/extagram/extagram/store/storetest"
	"github.com/miekg/dns"
)

// dnsServer answers A queries for its names from a map the test changes,
// over UDP and TCP on one 127.0.0.1 port.
type dnsServer struct {
	addr string
	mu   sync.Mutex
	a    map[string][]string // FQDN -> IPv4 addresses
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	d := &dnsServer{a: map[string][]string{}}
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ln == nil; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		// The same port for TCP, which the resolver uses for long answers.
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err != nil {
			pc.Close()
			if try == 10 {
				t.Fatalf("no port free for both UDP and TCP: %v", err)
			}
		}
	}
	d.addr = pc.LocalAddr().String()
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: d}, {Listener: ln, Handler: d}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go func() { _ = s.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = s.Shutdown() })
	}
	return d
}

// set makes name resolve to ips.
func (d *dnsServer) set(name string, ips ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.a[dns.Fqdn(name)] = ips
}

func (d *dnsServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, q := range r.Question {
		ips, ok := d.a[strings.ToLower(q.Name)]
		if !ok {
			m.Rcode = dns.RcodeNameError
			continue
		}
		if q.Qtype != dns.TypeA {
			continue // no AAAA, TXT or SRV records: an empty answer
		}
		for _, ip := range ips {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
				A:   net.ParseIP(ip),
			})
		}
	}
	_ = w.WriteMsg(m)
}

// sharedPort returns a TCP port free on every host at the time of the
// call: replicas behind one name differ by address, not by port.
func sharedPort(t *testing.T, hosts ...string) string {
	t.Helper()
	for range 20 {
		addr, err := hatest.FreePort(hosts[0])
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(addr)
		free := true
		for _, h := range hosts[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(h, port))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return port
		}
	}
	t.Fatalf("no port free on all of %v", hosts)
	return ""
}

// The edge's feed target is a dns:/// name; a replica added behind the
// name is used without restarting the edge. The servers' max connection
// age (here 2s, 30s by default) closes connections, which makes the edge
// resolve the name again (at most every 5s, see edge/clients.go).
func TestDNSScaleOut(t *testing.T) {
	const name = "feed"                           // a name the feed replicas' certificates carry, as in Compose and Kubernetes
	const hostA, hostB = "127.0.0.2", "127.0.0.3" // loopback on Linux, no set-up needed
	d := startDNS(t)
	port := sharedPort(t, hostA, hostB)
	d.set(name, hostA)
	c := startCluster(t, hatest.Options{
		DSN:              storetest.MySQLDSN(t),
		Replicas:         1,
		FeedAddrs:        []string{net.JoinHostPort(hostA, port)},
		FeedTarget:       "dns://" + d.addr + "/" + name + ":" + port,
		MaxConnectionAge: 2 * time.Second,
	})
	load := startLoad(t, c, 8, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	added, err := c.AddFeed(ctx, "feed-2", net.JoinHostPort(hostB, port))
	if err != nil {
		t.Fatal(err)
	}
	calls := followCalls(t, []*hatest.Proc{added}, 100*time.Millisecond)
	d.set(name, hostA, hostB)
	calls.Mark(added)
	checkNoFailures(t, runUntilServed(t, load, calls, added, 30*time.Second))
}
