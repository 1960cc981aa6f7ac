package hatest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/telegram/telegramtest"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store/storetest"
	"github.com/miekg/dns"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

var bin string // the extagram binary, built by TestMain

func TestMain(m *testing.M) {
	// The tests wait on processes, timeouts and the network far more than
	// they compute: unless -parallel is given, all of them run at once.
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		flag.Set("test.parallel", "4")
	}
	dir, err := os.MkdirTemp("", "extagram-hatest-")
	if err == nil {
		bin, err = Build(context.Background(), dir)
	}
	code := 1
	if err == nil {
		code = m.Run()
	} else {
		fmt.Fprintln(os.Stderr, err)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

const clients = 32

// startCluster starts a cluster (on a new database unless opts has one),
// killed when the test ends, its logs shown if it failed.
func startCluster(t *testing.T, opts Options) *Cluster {
	t.Helper()
	if opts.DSN == "" {
		opts.DSN = storetest.MySQLDSN(t)
	}
	opts.Bin, opts.Dir = bin, t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			t.Logf("process logs:\n%s", c.Logs(4000))
		}
	})
	return c
}

// killAtEnd kills p when the test ends, showing its log if it failed.
func killAtEnd(t *testing.T, p *Proc) {
	t.Cleanup(func() {
		_ = p.Kill()
		if t.Failed() {
			t.Logf("%s log:\n%s", p.Name, p.Log(4000))
		}
	})
}

// startLoad is StartLoad of the page, stopped when the test ends.
func startLoad(t *testing.T, c *Cluster, clients int, limit int64) *Load {
	load := StartLoad(NewClient(clients), c.URL+"/", clients, limit)
	t.Cleanup(func() { load.Stop() })
	return load
}

// followCalls is FollowCalls, stopped when the test ends.
func followCalls(t *testing.T, procs []*Proc, interval time.Duration) *Calls {
	calls := FollowCalls(procs, interval)
	t.Cleanup(func() { calls.Stop() })
	return calls
}

// checkNoFailures logs the figures of the page loads and fails the test if
// one did not answer 200.
func checkNoFailures(t *testing.T, samples []Sample) {
	t.Helper()
	st := Summarize(samples, 0, 0)
	t.Logf("%d page loads, %d failed; p50 %s, p99 %s, max %s", st.Sent, st.Failed, st.P50, st.P99, st.Max)
	if st.Sent == 0 || st.Failed > 0 {
		t.Errorf("%d of %d page loads failed (statuses %v); first: %v", st.Failed, st.Sent, st.FailedStatuses, st.FirstFailures)
	}
}

// runUntilServed keeps the load going until p serves after calls.Mark(p),
// for limit at most, then half a second more, and checks no load failed.
func runUntilServed(t *testing.T, load *Load, calls *Calls, p *Proc, limit time.Duration) {
	t.Helper()
	testutil.Within(limit, func() bool { _, ok := calls.ServedAgain(p); return ok })
	time.Sleep(500 * time.Millisecond)
	samples := load.Stop()
	calls.Stop()
	if d, ok := calls.ServedAgain(p); ok {
		t.Logf("%s served %s after being restarted, resumed or added", p.Name, d.Round(time.Millisecond))
	} else {
		t.Errorf("%s did not serve again within %s", p.Name, limit)
	}
	checkNoFailures(t, samples)
}

// Two feed replicas, the first over a proxy to the database that can be
// cut, through each failure the design rules on, in turn.
func TestFailover(t *testing.T) {
	t.Parallel()
	dsn := storetest.MySQLDSN(t)
	cfg, px := storetest.ThroughProxy(t, dsn)
	c := startCluster(t, Options{DSN: dsn, FeedDSNs: []string{cfg.FormatDSN(), dsn}})
	a, b := c.Feeds[0], c.Feeds[1]
	al := startAlerting(t, c)
	ctx := t.Context()

	// Over 1,000 page loads each replica handles 40% to 60% of the calls.
	t.Run("share", func(t *testing.T) {
		calls := followCalls(t, c.Feeds, time.Hour) // read at the start and at Stop
		samples := startLoad(t, c, clients, 1000).Wait()
		handled := calls.Stop()
		checkNoFailures(t, samples)
		for name, share := range Shares(handled) {
			t.Logf("%s: %.0f calls, %.1f%%", name, handled[name], 100*share)
			if share < 0.40 || share > 0.60 {
				t.Errorf("%s handled %.1f%% of the calls, want 40%% to 60%% (%v)", name, 100*share, handled)
			}
		}
	})

	// A replica out under load, then back: no page load fails, the other
	// serves meanwhile, the first serves again.
	signal := func(sig syscall.Signal) func() error { return func() error { return a.Signal(sig) } }
	for _, ev := range []struct {
		name       string
		start, end func() error
		out        time.Duration
	}{
		{"kill -9, restart", a.Kill, a.Start, time.Second},
		{"SIGTERM, restart", func() error { // it drains and exits cleanly
			if err := a.Signal(syscall.SIGTERM); err != nil {
				return err
			}
			return a.Wait(20 * time.Second)
		}, a.Start, 0},
		// The edge hedges the frozen replica's calls; the freeze outlasts a
		// call's 2s deadline.
		{"SIGSTOP, SIGCONT", signal(syscall.SIGSTOP), signal(syscall.SIGCONT), 3 * time.Second},
		// Without its database it reports NOT_SERVING and, once the edge
		// has seen it, gets no calls; with it, SERVING again.
		{"database lost, back", func() error {
			px.Cut()
			if err := WaitStatus(ctx, c.Operator, a.Addr, healthpb.HealthCheckResponse_NOT_SERVING, 10*time.Second); err != nil {
				return err
			}
			time.Sleep(300 * time.Millisecond)
			n1, err1 := ListPostsHandled(ctx, a.MetricsAddr)
			time.Sleep(time.Second)
			n2, err2 := ListPostsHandled(ctx, a.MetricsAddr)
			if n2 != n1 || err1 != nil || err2 != nil {
				return fmt.Errorf("%s, NOT_SERVING, got %.0f calls in 1s (%v, %v)", a.Name, n2-n1, err1, err2)
			}
			return nil
		}, func() error {
			if err := px.Restore(); err != nil {
				return err
			}
			return WaitHealth(ctx, c.Operator, a.Addr, 20*time.Second)
		}, 0},
	} {
		t.Run(ev.name, func(t *testing.T) {
			calls := followCalls(t, c.Feeds, 100*time.Millisecond)
			load := startLoad(t, c, clients, 0)
			time.Sleep(time.Second)
			if err := ev.start(); err != nil {
				t.Fatal(err)
			}
			calls.Mark(b)
			time.Sleep(ev.out)
			if err := ev.end(); err != nil {
				t.Fatal(err)
			}
			calls.Mark(a)
			runUntilServed(t, load, calls, a, 15*time.Second)
			if _, ok := calls.ServedAgain(b); !ok {
				t.Errorf("%s served nothing while %s was out", b.Name, a.Name)
			}
		})
	}

	// Every replica down: 503 with Retry-After, and the alert reaches
	// Telegram; one back: 200, and the resolution reaches Telegram.
	t.Run("every replica down", func(t *testing.T) {
		before := len(al.tg.Calls("")) // before the kill
		for _, f := range c.Feeds {
			if err := f.Kill(); err != nil {
				t.Fatal(err)
			}
		}
		for range 5 {
			code, retryAfter, d, err := Get(ctx, c.Client, c.URL+"/")
			if err != nil || code != http.StatusServiceUnavailable || retryAfter == "" {
				t.Errorf("every replica down: got %d with Retry-After %q (%v), want 503 with Retry-After", code, retryAfter, err)
			}
			t.Logf("every replica down: %d in %s", code, d.Round(time.Microsecond))
		}
		t.Run("alert fires", func(t *testing.T) {
			p := al.waitMessage(t, before, "FIRING", "ExtagramNoFeedReplicaServing").Params
			if !strings.Contains(p["text"], "No feed replica is serving") || p["chat_id"] != "-1001234500042" || p["parse_mode"] != "HTML" {
				t.Errorf("firing message: %v", p)
			}
		})
		started := time.Now()
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 20*time.Second, "a 200 after starting "+b.Name, func() bool {
			code, _, _, err := Get(ctx, c.Client, c.URL+"/")
			return err == nil && code == http.StatusOK
		})
		t.Logf("first 200 %s after starting %s", time.Since(started).Round(time.Millisecond), b.Name)
		t.Run("alert resolved", func(t *testing.T) { al.waitMessage(t, before, "RESOLVED", "ExtagramNoFeedReplicaServing") })
	})
}

const obsDir, alertToken, alertChatID = "../deploy/observability", "4242:alerts-token", -1001234500042

// alerting is the real Prometheus with deploy/observability's rules and
// Alertmanager with its configuration, sending to the Telegram stand-in.
type alerting struct {
	prom    *Monitor
	tg      *telegramtest.Server
	missing error // prometheus or alertmanager not installed
}

// startAlerting starts alerting on c, with copies of the files changed
// only in time and place: the alerts' "for" 1s, grouping within 1s,
// Telegram the stand-in with the token inline (Alertmanager before 0.26
// has no bot_token_file), the templates where they are.
func startAlerting(t *testing.T, c *Cluster) *alerting {
	promBin, errP := exec.LookPath("prometheus")
	amBin, errA := exec.LookPath("prometheus-alertmanager")
	if errA != nil {
		amBin, errA = exec.LookPath("alertmanager")
	}
	tg := telegramtest.Start(t, alertToken)
	if err := errors.Join(errP, errA); err != nil {
		return &alerting{tg: tg, missing: err}
	}
	dir := t.TempDir()
	templates, _ := filepath.Abs(filepath.Join(obsDir, "templates"))
	rules := copyFile(t, dir, "rules/extagram.yml", `(?m)^(\s+for: )\S+$`, "${1}1s")
	amConfig := copyFile(t, dir, "alertmanager.yml",
		`(?m)^(\s+group_(wait|interval): )\S+$`, "${1}1s",
		`(?m)^(\s+- )bot_token_file: .*$`, fmt.Sprintf("${1}bot_token: %q", alertToken),
		`(?m)^(\s+)chat_id: .*$`, fmt.Sprintf("${1}chat_id: %d\n${1}api_url: %s", alertChatID, tg.URL),
		`(?m)^(\s+- )templates/`, "${1}"+templates+"/")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	am, err := StartAlertmanager(ctx, amBin, dir, amConfig)
	if err != nil {
		t.Fatal(err)
	}
	killAtEnd(t, am.Proc)
	prom, err := StartPrometheus(ctx, PrometheusOptions{
		Bin: promBin, Dir: dir, Targets: c.MetricsTargets(), RuleFiles: []string{rules}, Alertmanager: strings.TrimPrefix(am.URL, "http://"),
	})
	if err != nil {
		t.Fatal(err)
	}
	killAtEnd(t, prom.Proc)
	return &alerting{prom: prom, tg: tg}
}

// copyFile writes obsDir's file name into dir with each regexp of edits
// (pattern, replacement, ...) replaced, and returns the copy's path; a
// pattern that matches nothing fails the test.
func copyFile(t *testing.T, dir, name string, edits ...string) string {
	dst := filepath.Join(dir, filepath.Base(name))
	b, err := os.ReadFile(filepath.Join(obsDir, name))
	for i := 0; err == nil && i < len(edits); i += 2 {
		re := regexp.MustCompile(edits[i])
		if !re.Match(b) {
			t.Fatalf("%s has no %s", name, edits[i])
		}
		b = re.ReplaceAll(b, []byte(edits[i+1]))
	}
	if err == nil {
		err = os.WriteFile(dst, b, 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// waitMessage waits for a delivered message after the first skip calls
// whose text has state and alert.
func (al *alerting) waitMessage(t *testing.T, skip int, state, alert string) (found telegramtest.Call) {
	t.Helper()
	if al.missing != nil {
		testutil.NeedTool(t, "%v; install with: apt-get install -y --no-install-recommends prometheus prometheus-alertmanager", al.missing)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	calls, err := al.tg.Wait(ctx, func(calls []telegramtest.Call) bool {
		for _, c := range calls[min(skip, len(calls)):] {
			if c.Method == "sendMessage" && c.Delivered && strings.Contains(c.Params["text"], state) && strings.Contains(c.Params["text"], alert) {
				found = c
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("no %s %s message: %v; calls: %v\n%s", state, alert, err, calls, al.prom.Log(2000))
	}
	t.Logf("%s message after %s:\n%s", state, time.Since(start).Round(time.Millisecond), found.Params["text"])
	return found
}

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
	// Shutdown before the server has started would leave it serving.
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
