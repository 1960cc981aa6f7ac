package requestid

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

func TestValid(t *testing.T) {
	for id, want := range map[string]bool{"0123456789abcdef": true, "client-id_1.2": true, strings.Repeat("a", 64): true, New(): true,
		"": false, strings.Repeat("a", 65): false, "two words": false, "line\nbreak": false, "quote\"": false, "é": false, "semi;colon": false} {
		if Valid(id) != want {
			t.Errorf("Valid(%q) = %v", id, !want)
		}
	}
	if a, b := New(), New(); a == b || len(a) != 16 {
		t.Errorf("New gave %q and %q", a, b)
	}
}

// TestThroughACall: the client context's id reaches the handler through the metadata; an invalid one does not.
func TestThroughACall(t *testing.T) {
	for sent, want := range map[string]string{"abc-1": "abc-1", "bad id": ""} {
		out := Outgoing(NewContext(context.Background(), sent))
		md, _ := metadata.FromOutgoingContext(out)
		in := metadata.NewIncomingContext(context.Background(), md)
		var got string
		_, _ = UnaryServerInterceptor(in, nil, &grpc.UnaryServerInfo{}, func(ctx context.Context, _ any) (any, error) {
			got = FromContext(ctx)
			return nil, nil
		})
		if got != want {
			t.Errorf("sent %q, the handler saw %q, want %q", sent, got, want)
		}
	}
	if md, ok := metadata.FromOutgoingContext(Outgoing(context.Background())); ok && len(md.Get(MetadataKey)) > 0 {
		t.Error("a context without an id sent one")
	}
}

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	l := Logger(slog.New(slog.NewTextHandler(&buf, nil))).With("service", "x")
	if Logger(l) != l {
		t.Error("Logger wrapped a logger twice")
	}
	ctx := NewContext(context.Background(), "id-1")
	l.InfoContext(ctx, "one")
	l.InfoContext(ctx, "two", Key, "id-1")
	l.Info("three")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	for i, want := range []int{1, 1, 0} {
		if n := strings.Count(lines[i], "request_id=id-1"); n != want {
			t.Errorf("line %q has the id %d times, want %d", lines[i], n, want)
		}
	}
}
