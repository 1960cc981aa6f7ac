package telemetry_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/telemetry"
	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// The mesh's traces, recorded in memory: the process's tracer provider is
// this package's for good, so no other test belongs here.
var recorder = tracetest.NewSpanRecorder()

func TestMain(m *testing.M) {
	telemetry.Use(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder)))
	m.Run()
}

// slowFeed delays the pages of one feed replica while on, as a stalled one would.
type slowFeed struct {
	store.Store
	on atomic.Bool
}

func (s *slowFeed) ListPosts(ctx context.Context, o store.ListOptions) ([]store.Post, error) {
	if s.on.Load() {
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.Store.ListPosts(ctx, o)
}

// TestTraces: an upload and a feed page are each one trace, from the edge's
// root span with the request id through the gRPC client and server spans to
// the store's queries; a hedged feed call is two client spans of one trace.
func TestTraces(t *testing.T) {
	st := storetest.Embedded(t)
	slow := &slowFeed{Store: st}
	m := testmesh.Start(t, testmesh.Options{Store: st, AskFeedPerView: true, FeedStores: []store.Store{slow}})
	// do makes a request (a feed page without a body), wants status and returns its trace.
	do := func(t *testing.T, status int, body, contentType string) *spans {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, m.URL+"/", nil)
		if body != "" {
			req, _ = http.NewRequest(http.MethodPost, m.URL+"/upload.php", strings.NewReader(body))
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := m.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("X-Request-Id")
		if resp.StatusCode != status || id == "" {
			t.Fatalf("%s %s: %d with request id %q, want %d and an id", req.Method, req.URL, resp.StatusCode, id, status)
		}
		return traceOf(t, id)
	}
	// Each call is one client and one server span, with queries under it.
	oneCall := func(t *testing.T, tr *spans, method string) {
		client, server := tr.all(trace.SpanKindClient, method), tr.all(trace.SpanKindServer, method)
		if len(client) != 1 || len(server) != 1 {
			t.Fatalf("%d client and %d server spans named %s, want 1 each; the trace:\n%s", len(client), len(server), method, tr)
		}
		tr.chain(t, tr.root, client[0], server[0])
		if !slices.ContainsFunc(tr.spans, func(s sdktrace.ReadOnlySpan) bool {
			return strings.HasPrefix(s.Name(), "sql.") && attr(s, "db.system.name") == "sqlite" && tr.descends(s, server[0])
		}) {
			t.Fatalf("no store query under %s; the trace:\n%s", method, tr)
		}
	}

	t.Run("upload", func(t *testing.T) {
		body, ct := testutil.Form(t, [][2]string{{"post", "traced upload"}},
			testutil.Photo("p.png", "application/octet-stream", testutil.PNG(t, 16, 16)))
		oneCall(t, do(t, http.StatusSeeOther, string(body), ct), "extagram.upload.v1.UploadService/Upload")
	})
	t.Run("feed page", func(t *testing.T) {
		oneCall(t, do(t, http.StatusOK, "", ""), "extagram.feed.v1.FeedService/ListPosts")
	})
	t.Run("hedged feed call", func(t *testing.T) {
		slow.on.Store(true)
		defer slow.on.Store(false)
		// Within a few pages one starts at the slow replica and is hedged.
		for range 10 {
			tr := do(t, http.StatusOK, "", "")
			clients := tr.all(trace.SpanKindClient, "extagram.feed.v1.FeedService/ListPosts")
			if len(clients) < 2 {
				continue
			}
			if clients[0].Parent().SpanID() != clients[1].Parent().SpanID() {
				t.Fatalf("the two attempts have different parents")
			}
			peers := map[string]bool{}
			for _, c := range clients {
				tr.chain(t, tr.root, c)
				peers[attr(c, "server.address")+":"+attr(c, "server.port")] = true
			}
			if len(peers) < 2 {
				t.Fatalf("the attempts went to one replica: %v", peers)
			}
			return
		}
		t.Fatal("no page of 10 shows a hedged feed call as two client spans")
	})
}

// spans is one trace's ended spans, and each one's parent.
type spans struct {
	root   sdktrace.ReadOnlySpan
	spans  []sdktrace.ReadOnlySpan
	parent map[trace.SpanID]trace.SpanID
}

// traceOf returns the trace of the edge's root span with the request id,
// once that span has ended (last, after its calls and the answer).
func traceOf(t *testing.T, id string) *spans {
	t.Helper()
	tr := &spans{parent: map[trace.SpanID]trace.SpanID{}}
	testutil.Eventually(t, 5*time.Second, "an edge span with request id "+id, func() bool {
		ended := recorder.Ended()
		i := slices.IndexFunc(ended, func(s sdktrace.ReadOnlySpan) bool {
			return s.SpanKind() == trace.SpanKindServer && attr(s, "extagram.request_id") == id
		})
		if i < 0 {
			return false
		}
		tr.root = ended[i]
		for _, o := range ended {
			if o.SpanContext().TraceID() == tr.root.SpanContext().TraceID() {
				tr.spans = append(tr.spans, o)
				tr.parent[o.SpanContext().SpanID()] = o.Parent().SpanID()
			}
		}
		return true
	})
	if tr.root.Parent().IsValid() {
		t.Fatalf("the edge's span has a parent: it must start the trace")
	}
	return tr
}

func (tr *spans) all(kind trace.SpanKind, name string) []sdktrace.ReadOnlySpan {
	return slices.DeleteFunc(slices.Clone(tr.spans), func(s sdktrace.ReadOnlySpan) bool { return s.SpanKind() != kind || s.Name() != name })
}

// chain checks that each span descends from the one before.
func (tr *spans) chain(t *testing.T, ss ...sdktrace.ReadOnlySpan) {
	t.Helper()
	for i := 1; i < len(ss); i++ {
		if !tr.descends(ss[i], ss[i-1]) {
			t.Fatalf("%s does not descend from %s; the trace:\n%s", ss[i].Name(), ss[i-1].Name(), tr)
		}
	}
}

// descends walks up from s; a parent outside the trace ends the walk.
func (tr *spans) descends(s, ancestor sdktrace.ReadOnlySpan) bool {
	for p := s.Parent().SpanID(); p.IsValid(); p = tr.parent[p] {
		if p == ancestor.SpanContext().SpanID() {
			return true
		}
	}
	return false
}

func (tr *spans) String() string {
	var b strings.Builder
	for _, s := range tr.spans {
		fmt.Fprintf(&b, "  %s %s %s parent %s\n", s.SpanKind(), s.Name(), s.SpanContext().SpanID(), s.Parent().SpanID())
	}
	return b.String()
}

// attr is a span attribute's value, "unknown" if it has none.
func attr(s sdktrace.ReadOnlySpan, key string) string {
	set := attribute.NewSet(s.Attributes()...)
	v, _ := set.Value(attribute.Key(key))
	return v.Emit()
}
