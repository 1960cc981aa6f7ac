package telemetry_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"io"
	"net/http"
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

// The mesh's traces, as the SDK records them in memory: the process's
// tracer provider is the test's for the whole package, so no other test
// belongs here.
var recorder = tracetest.NewSpanRecorder()

func TestMain(m *testing.M) {
	telemetry.Use(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder)))
	m.Run()
}

// slowFeed delays the newest page of one feed replica while on, as a
// replica whose database or CPU stalls would.
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

// TestTraces follows one upload and one feed page through the mesh: each
// is one trace from the edge's root span, which carries the request id,
// through the gRPC client and server spans to the store's queries. A
// hedged feed call shows as two client spans of one trace.
func TestTraces(t *testing.T) {
	st := storetest.Embedded(t)
	slow := &slowFeed{Store: st}
	m := testmesh.Start(t, testmesh.Options{Store: st, AskFeedPerView: true, FeedStores: []store.Store{slow}})

	t.Run("upload", func(t *testing.T) {
		body, ct := uploadForm(t, "traced upload")
		resp := do(t, m, http.MethodPost, "/upload.php", body, ct)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("upload: %d, want 303", resp.StatusCode)
		}
		tr := traceOf(t, resp.Header.Get("X-Request-Id"))
		client := tr.one(t, trace.SpanKindClient, "extagram.upload.v1.UploadService/Upload")
		server := tr.one(t, trace.SpanKindServer, "extagram.upload.v1.UploadService/Upload")
		tr.chain(t, tr.root, client, server)
		tr.queriesUnder(t, server)
	})

	t.Run("feed page", func(t *testing.T) {
		resp := do(t, m, http.MethodGet, "/", nil, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /: %d", resp.StatusCode)
		}
		tr := traceOf(t, resp.Header.Get("X-Request-Id"))
		client := tr.one(t, trace.SpanKindClient, "extagram.feed.v1.FeedService/ListPosts")
		server := tr.one(t, trace.SpanKindServer, "extagram.feed.v1.FeedService/ListPosts")
		tr.chain(t, tr.root, client, server)
		tr.queriesUnder(t, server)
	})

	t.Run("hedged feed call", func(t *testing.T) {
		slow.on.Store(true)
		defer slow.on.Store(false)
		// The first attempt goes to either replica: within a few pages
		// one starts at the slow one and is hedged to the other.
		for range 10 {
			resp := do(t, m, http.MethodGet, "/", nil, "")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /: %d", resp.StatusCode)
			}
			tr := traceOf(t, resp.Header.Get("X-Request-Id"))
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

func do(t *testing.T, m *testmesh.Mesh, method, path string, body []byte, ct string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, m.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := m.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("%s %s: no X-Request-Id", method, path)
	}
	return resp
}

func uploadForm(t *testing.T, text string) ([]byte, string) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 16, 16))
	for i := range img.Pix {
		img.Pix[i] = byte(i)
	}
	img.Set(0, 0, color.White)
	return testutil.Form(t, [][2]string{{"post", text}}, testutil.Photo("p.png", "application/octet-stream", testutil.EncodePNG(t, img)))
}

// spans is one trace's ended spans.
type spans struct {
	root  sdktrace.ReadOnlySpan
	spans []sdktrace.ReadOnlySpan
	byID  map[trace.SpanID]sdktrace.ReadOnlySpan
}

// traceOf waits for the edge's root span carrying the request id and
// returns its trace once the root has ended (it ends last: after the
// calls it made and the answer).
func traceOf(t *testing.T, id string) *spans {
	t.Helper()
	var tr *spans
	if !testutil.Within(5*time.Second, func() bool {
		for _, s := range recorder.Ended() {
			if s.SpanKind() != trace.SpanKindServer || attr(s, "extagram.request_id") != id {
				continue
			}
			if s.Parent().IsValid() {
				t.Fatalf("the edge's span has a parent: it must start the trace")
			}
			tr = &spans{root: s, byID: map[trace.SpanID]sdktrace.ReadOnlySpan{}}
			for _, o := range recorder.Ended() {
				if o.SpanContext().TraceID() == s.SpanContext().TraceID() {
					tr.spans = append(tr.spans, o)
					tr.byID[o.SpanContext().SpanID()] = o
				}
			}
			return true
		}
		return false
	}) {
		t.Fatalf("no edge span carries the request id %s", id)
	}
	return tr
}

func (tr *spans) all(kind trace.SpanKind, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range tr.spans {
		if s.SpanKind() == kind && s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func (tr *spans) one(t *testing.T, kind trace.SpanKind, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	found := tr.all(kind, name)
	if len(found) != 1 {
		t.Fatalf("%d %s spans named %s in the trace, want 1; the trace:\n%s", len(found), kind, name, tr)
	}
	return found[0]
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

func (tr *spans) descends(s, ancestor sdktrace.ReadOnlySpan) bool {
	for p := s.Parent(); p.IsValid(); {
		if p.SpanID() == ancestor.SpanContext().SpanID() {
			return true
		}
		next, ok := tr.byID[p.SpanID()]
		if !ok {
			return false
		}
		p = next.Parent()
	}
	return false
}

// queriesUnder checks that the service's span has store queries under it.
func (tr *spans) queriesUnder(t *testing.T, server sdktrace.ReadOnlySpan) {
	t.Helper()
	for _, s := range tr.spans {
		if strings.HasPrefix(s.Name(), "sql.") && attr(s, "db.system.name") == "sqlite" && tr.descends(s, server) {
			return
		}
	}
	t.Fatalf("no store query under %s; the trace:\n%s", server.Name(), tr)
}

func (tr *spans) String() string {
	var b strings.Builder
	for _, s := range tr.spans {
		b.WriteString("  " + s.SpanKind().String() + " " + s.Name() + " " + s.SpanContext().SpanID().String() + " parent " + s.Parent().SpanID().String() + "\n")
	}
	return b.String()
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if kv.Key == attribute.Key(key) {
			return kv.Value.Emit()
		}
	}
	return ""
}
