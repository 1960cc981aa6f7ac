// Package requestid carries the id of an HTTP request through the mesh:
// the edge takes it from a valid X-Request-Id or makes one, puts it in the
// context and in the gRPC metadata of its calls (x-request-id); the
// services' interceptors put it back in the call's context; and Handler
// adds it to every log line written with that context, so that one id
// finds every line of one request in every process.
package requestid

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// MetadataKey is the gRPC metadata key of the request id.
const MetadataKey = "x-request-id"

// Key is the name of the id in log lines.
const Key = "request_id"

// maxLen bounds an id taken from a client.
const maxLen = 64

type ctxKey struct{}

// New returns a fresh id: 64 random bits in hex.
func New() string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

// Valid reports whether an id sent by a client may be used: 1 to 64
// characters of letters, digits, '-', '_' and '.' (nothing that could
// split a log line or a header).
func Valid(id string) bool {
	if id == "" || len(id) > maxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the id ctx carries, or "".
func FromContext(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// Outgoing returns ctx with its id, if any, in the outgoing gRPC metadata.
func Outgoing(ctx context.Context) context.Context {
	if id := FromContext(ctx); id != "" {
		return metadata.AppendToOutgoingContext(ctx, MetadataKey, id)
	}
	return ctx
}

// fromIncoming returns ctx carrying the id of the incoming metadata, when
// it holds a valid one.
func fromIncoming(ctx context.Context) context.Context {
	if v := metadata.ValueFromIncomingContext(ctx, MetadataKey); len(v) > 0 && Valid(v[0]) {
		return NewContext(ctx, v[0])
	}
	return ctx
}

// UnaryServerInterceptor puts the call's request id in its context.
func UnaryServerInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return handler(fromIncoming(ctx), req)
}

// StreamServerInterceptor puts the stream's request id in its context.
func StreamServerInterceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &stream{ServerStream: ss, ctx: fromIncoming(ss.Context())})
}

type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stream) Context() context.Context { return s.ctx }

// Handler adds request_id to every record logged with a context that
// carries an id, unless the record has one already (the gRPC logging
// interceptor adds it as one of its fields).
func Handler(h slog.Handler) slog.Handler {
	if _, ok := h.(handler); ok {
		return h
	}
	return handler{h}
}

// Logger returns l with its handler wrapped by Handler.
func Logger(l *slog.Logger) *slog.Logger {
	if _, ok := l.Handler().(handler); ok {
		return l
	}
	return slog.New(handler{l.Handler()})
}

type handler struct{ slog.Handler }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	if id := FromContext(ctx); id != "" && !hasID(r) {
		r.AddAttrs(slog.String(Key, id))
	}
	return h.Handler.Handle(ctx, r)
}

func hasID(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == Key
		return !found
	})
	return found
}

func (h handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return handler{h.Handler.WithAttrs(attrs)}
}

func (h handler) WithGroup(name string) slog.Handler { return handler{h.Handler.WithGroup(name)} }
