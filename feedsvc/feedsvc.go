// Package feedsvc implements extagram.feed.v1.FeedService (S2, S3 of the
// seed design): the feed, newest first, read from the store with keyset
// pagination, and WatchFeed, which keeps clients (the edges) up to date with
// the newest page by polling the store for them. It keeps no state, so any
// number of replicas can serve it.
package feedsvc

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"log/slog"
	"sync"
	"time"

	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
	"github.com/extagram/extagram/internal/convert"
	"github.com/extagram/extagram/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

const (
	// DefaultPageSize is used when a request asks for 0 posts.
	DefaultPageSize = 20
	// MaxPageSize is the largest page a client may ask for.
	MaxPageSize = 100
)

// WatchInterval is how often a WatchFeed stream polls the store, and so
// how often it sends a message: the page when it changed, a heartbeat
// otherwise.
const WatchInterval = 250 * time.Millisecond

// Server serves FeedService over a store.
type Server struct {
	feedv1.UnimplementedFeedServiceServer
	store  store.Store
	logger *slog.Logger
	// closed ends the WatchFeed streams (see Close).
	closed    chan struct{}
	closeOnce sync.Once
}

var _ feedv1.FeedServiceServer = (*Server)(nil)

// New returns a FeedService over st.
func New(st store.Store, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{store: st, logger: logger, closed: make(chan struct{})}
}

// Close ends every WatchFeed stream, as the replica starts to drain: a
// stream lasts as long as its client, and would otherwise hold the drain up
// to its time limit. Clients watch again on another replica.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// ListPosts returns one page of the feed.
func (s *Server) ListPosts(ctx context.Context, req *feedv1.ListPostsRequest) (*feedv1.ListPostsResponse, error) {
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	before, err := DecodePageToken(req.GetPageToken())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "page_token is not a token issued by this service; start again without one")
	}
	return s.page(ctx, size, before)
}

// pageSize checks a requested page size; 0 is the default.
func pageSize(size int32) (int, error) {
	switch {
	case size < 0:
		return 0, status.Errorf(codes.InvalidArgument, "page_size must not be negative, got %d", size)
	case size > MaxPageSize:
		return 0, status.Errorf(codes.InvalidArgument, "page_size must be at most %d, got %d", MaxPageSize, size)
	case size == 0:
		return DefaultPageSize, nil
	}
	return int(size), nil
}

// page reads the size posts before key (0: the newest).
func (s *Server) page(ctx context.Context, size int, before int64) (*feedv1.ListPostsResponse, error) {
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

// WatchFeed sends the newest page, then polls the store every
// WatchInterval and sends the page again when it changed, a heartbeat
// otherwise. Polling catches every change, a post committed after newer
// ones included, with one indexed query per interval.
func (s *Server) WatchFeed(req *feedv1.WatchFeedRequest, stream feedv1.FeedService_WatchFeedServer) error {
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return err
	}
	ctx := stream.Context()
	tick := time.NewTicker(WatchInterval)
	defer tick.Stop()
	var last *feedv1.ListPostsResponse
	for {
		page, err := s.page(ctx, size, 0)
		if err != nil {
			if status.Code(err) == codes.Canceled {
				return err
			}
			return status.Errorf(codes.Unavailable, "watch ended: %v", status.Convert(err).Message())
		}
		msg := &feedv1.WatchFeedResponse{}
		if last == nil || !proto.Equal(page, last) {
			msg.FirstPage, last = page, page
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.closed:
			return status.Error(codes.Unavailable, "this replica is shutting down; watch another")
		case <-tick.C:
		}
	}
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
