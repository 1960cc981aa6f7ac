// Package convert turns store values into API messages and store errors
// into gRPC statuses, the same way for every service.
package convert

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Post converts a stored post.
func Post(p store.Post) *feedv1.Post {
	out := &feedv1.Post{
		Id:         p.ID.String(),
		Text:       p.Text,
		CreateTime: timestamppb.New(p.CreatedAt),
	}
	if p.Image != nil {
		out.Image = &feedv1.Image{
			Id:          p.Image.ID.String(),
			ContentType: p.Image.ContentType,
			SizeBytes:   p.Image.Size,
			Width:       int32(p.Image.Width),
			Height:      int32(p.Image.Height),
		}
	}
	return out
}

// ParseID parses a client-supplied id; a malformed one is InvalidArgument.
func ParseID(field, s string) (contract.ID, error) {
	id, err := contract.ParseID(s)
	if err != nil {
		return id, status.Errorf(codes.InvalidArgument, "%s %q is not a valid id: %s", field, contract.Truncate(s, 40), contract.IDForm)
	}
	return id, nil
}

// StoreError turns a store error into a status: NotFound, Unavailable when
// the database cannot be reached (the client may try again), the context's
// own code when the call was cancelled, Internal otherwise (logged, with no
// detail sent to the client).
func StoreError(ctx context.Context, logger *slog.Logger, what string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return status.Errorf(codes.NotFound, "%s not found", what)
	case errors.Is(err, store.ErrInvalid):
		return status.Error(codes.InvalidArgument, strings.TrimPrefix(err.Error(), "store: "))
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded while reading the store")
	case errors.Is(err, store.ErrUnavailable):
		logger.WarnContext(ctx, "store unavailable", "err", err)
		return status.Error(codes.Unavailable, "the database is unavailable; try again shortly")
	default:
		logger.ErrorContext(ctx, "store error", "err", err)
		return status.Error(codes.Internal, "internal error reading the store")
	}
}
