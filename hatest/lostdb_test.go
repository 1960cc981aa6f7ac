package hatest_test

import (
	"context"
	"testing"
	"time"

	"github.com/extagram/extagram/hatest"
	"github.com/extagram/extagram/internal/testproxy"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store/storetest"
	"github.com/go-sql-driver/mysql"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// A replica whose database becomes unreachable reports NOT_SERVING and
// leaves the rotation while the other serves every page; when the database
// is back, it reports SERVING and serves again.
func TestLostDatabase(t *testing.T) {
	dsn := storetest.MySQLDSN(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	px := testproxy.Start(t, cfg.Addr)
	viaProxy := cfg.Clone()
	viaProxy.Addr = px.Addr()
	c := startCluster(t, hatest.Options{DSN: dsn, FeedDSNs: []string{viaProxy.FormatDSN(), dsn}})
	sick, healthy := c.Feeds[0], c.Feeds[1]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	calls := followCalls(t, c.Feeds, 100*time.Millisecond)
	load := startLoad(t, c, clients, 0)
	load.SleepUntil(2 * time.Second)
	px.Cut()
	if err := hatest.WaitStatus(ctx, c.Operator, sick.Addr, healthpb.HealthCheckResponse_NOT_SERVING, 10*time.Second); err != nil {
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

	if err := px.Restore(); err != nil {
		t.Fatal(err)
	}
	if err := hatest.WaitHealth(ctx, c.Operator, sick.Addr, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	calls.Mark(sick)
	testutil.Within(10*time.Second, func() bool { _, ok := calls.ServedAgain(sick); return ok })
	samples := load.Stop()
	calls.Stop()
	if d, ok := calls.ServedAgain(sick); ok {
		t.Logf("%s served again %s after reporting SERVING", sick.Name, d.Round(time.Millisecond))
	} else {
		t.Errorf("%s did not serve again within 10s of its database coming back", sick.Name)
	}
	checkNoFailures(t, samples)
}
