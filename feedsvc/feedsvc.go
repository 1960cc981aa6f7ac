// Package feedsvc implements extagram.feed.v1.FeedService (S2, S3 of the
// seed design): the feed, newest first, read from the store with keyset
// pagination. It keeps no state, so any number of replicas can serve it.
package feedsvc

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"log/slog"

	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
	"github.com/extagram/extagram/internal/convert"
	"github.com/extagram/extagram/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	// DefaultPageSize is used when a request asks for 0 posts.
	DefaultPageSize = 20
	// MaxPageSize is the largest page a client may ask for.
	MaxPageSize = 100
)

// Server serves FeedService over a store.
type Server struct {
	feedv1.UnimplementedFeedServiceServer
	store  store.Store
	logger *slog.Logger
}

var _ feedv1.FeedServiceServer = (*Server)(nil)

// New returns a FeedService over st.
func New(st store.Store, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{store: st, logger: logger}
}

// ListPosts returns one page of the feed.
func (s *Server) ListPosts(ctx context.Context, req *feedv1.ListPostsRequest) (*feedv1.ListPostsResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, status.Errorf(codes.InvalidArgument, "page_size must not be negative, got %d", size)
	case size > MaxPageSize:
		return nil, status.Errorf(codes.InvalidArgument, "page_size must be at most %d, got %d", MaxPageSize, size)
	case size == 0:
		size = DefaultPageSize
	}
	before, err := DecodePageToken(req.GetPageToken())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "page_token is not a token issued by this service; start again without one")
	}
	// One post more than asked tells whether a next page exists without a
	// second query.
	posts, err := s.store.ListPosts(ctx, store.ListOptions{Before: before, Limit: size + 1})
	if err != nil {
		return nil, convert.StoreError(ctx, s.logger, "posts", err)
	}
	resp := &feedv1.ListPostsResponse{}
	if len(posts) > size {
		posts = posts[:size]
		resp.NextPageToken = EncodePageToken(posts[len(posts)-1].Key)
	}
	resp.Posts = make([]*feedv1.Post, len(posts))
	for i, p := range posts {
		resp.Posts[i] = convert.Post(p)
	}
	return resp, nil
}

// GetPost returns one post.
func (s *Server) GetPost(ctx context.Context, req *feedv1.GetPostRequest) (*feedv1.GetPostResponse, error) {
	id, err := convert.ParseID("id", req.GetId())
	if err != nil {
		return nil, err
	}
	p, err := s.store.GetPost(ctx, id)
	if err != nil {
		return nil, convert.StoreError(ctx, s.logger, "post", err)
	}
	return &feedv1.GetPostResponse{Post: convert.Post(p)}, nil
}

// Page tokens are a version byte and the last key of the page as a uvarint,
// in unpadded base64url. They are opaque to clients; the version byte lets
// the format change without misreading old tokens.
const tokenVersion = 1

var tokenEncoding = base64.RawURLEncoding.Strict()

// EncodePageToken returns the token for the page after the post with key.
func EncodePageToken(key int64) string {
	buf := make([]byte, 1, 1+binary.MaxVarintLen64)
	buf[0] = tokenVersion
	buf = binary.AppendUvarint(buf, uint64(key))
	return tokenEncoding.EncodeToString(buf)
}

// DecodePageToken returns the key a token continues after; "" is 0 (the
// newest page).
func DecodePageToken(tok string) (int64, error) {
	if tok == "" {
		return 0, nil
	}
	if len(tok) > 16 {
		return 0, errBadToken
	}
	b, err := tokenEncoding.DecodeString(tok)
	if err != nil || len(b) < 2 || b[0] != tokenVersion {
		return 0, errBadToken
	}
	key, n := binary.Uvarint(b[1:])
	if n != len(b)-1 || key == 0 || key > 1<<62 {
		return 0, errBadToken
	}
	// Re-encoding must give the same token: one token per key.
	if EncodePageToken(int64(key)) != tok {
		return 0, errBadToken
	}
	return int64(key), nil
}

var errBadToken = status.Error(codes.InvalidArgument, "bad page token")
