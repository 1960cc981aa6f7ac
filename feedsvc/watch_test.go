package feedsvc

import (
	"context"
	"testing"
	"time"

	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// serve serves FeedService over an in-memory listener.
func serve(t *testing.T, srv *Server) feedv1.FeedServiceClient {
	t.Helper()
	return feedv1.NewFeedServiceClient(testutil.Bufconn(t, func(gs *grpc.Server) { feedv1.RegisterFeedServiceServer(gs, srv) }))
}

func createPost(t *testing.T, st store.Store, text string) string {
	t.Helper()
	p, err := st.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: text})
	if err != nil {
		t.Fatal(err)
	}
	return p.ID.String()
}

// TestWatchFeed: the first message is the newest page; then heartbeats,
// and the page again once it changes; Close ends the stream with
// UNAVAILABLE.
func TestWatchFeed(t *testing.T) {
	st := storetest.Embedded(t)
	srv := New(st, storetest.Logger(t))
	client := serve(t, srv)
	first := createPost(t, st, "first")

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, size := range []int32{-1, MaxPageSize + 1} {
		bad, err := client.WatchFeed(ctx, &feedv1.WatchFeedRequest{PageSize: size})
		if err == nil {
			// A server stream's error comes with its first Recv.
			_, err = bad.Recv()
		}
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("page_size %d: %v, want InvalidArgument", size, err)
		}
	}
	stream, err := client.WatchFeed(ctx, &feedv1.WatchFeedRequest{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if ps := msg.GetFirstPage().GetPosts(); len(ps) != 1 || ps[0].GetId() != first {
		t.Fatalf("first message %v, want the page with the one post", msg)
	}
	// Nothing changed: a heartbeat.
	if msg, err = stream.Recv(); err != nil || msg.GetFirstPage() != nil {
		t.Fatalf("second message %v, %v; want a heartbeat", msg, err)
	}
	second := createPost(t, st, "second")
	third := createPost(t, st, "third")
	for {
		if msg, err = stream.Recv(); err != nil {
			t.Fatal(err)
		}
		if msg.GetFirstPage() != nil {
			break
		}
	}
	page := msg.GetFirstPage()
	if ps := page.GetPosts(); len(ps) != 2 || ps[0].GetId() != third || ps[1].GetId() != second || page.GetNextPageToken() == "" {
		t.Fatalf("changed page %v, want the two newest posts and a next page", page)
	}
	// The pushed page is what ListPosts returns.
	listed, err := client.ListPosts(ctx, &feedv1.ListPostsRequest{PageSize: 2})
	if err != nil || listed.GetNextPageToken() != page.GetNextPageToken() {
		t.Fatalf("ListPosts = %v, %v; want the pushed page", listed, err)
	}

	srv.Close()
	for {
		_, err := stream.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("after Close: %v, want Unavailable", err)
		}
		break
	}
	// A replica that is closing refuses new watches at once.
	s, err := client.WatchFeed(ctx, &feedv1.WatchFeedRequest{})
	if err == nil {
		_, _ = s.Recv() // the page, sent before the stream notices
		_, err = s.Recv()
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("a watch after Close: %v, want Unavailable", err)
	}
}
