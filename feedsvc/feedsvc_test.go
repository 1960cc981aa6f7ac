package feedsvc

import (
	"testing"

	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestWatchFeed, over bufconn: the first message is the newest page; then
// heartbeats, and the page again once it changes, as ListPosts gives it;
// Close ends the stream with UNAVAILABLE and refuses new watches.
func TestWatchFeed(t *testing.T) {
	st := storetest.Embedded(t)
	srv := New(st, storetest.Logger(t))
	client := feedv1.NewFeedServiceClient(testutil.Bufconn(t, func(gs *grpc.Server) { feedv1.RegisterFeedServiceServer(gs, srv) }))
	post := func(text string) string {
		p, err := st.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: text})
		if err != nil {
			t.Fatal(err)
		}
		return p.ID.String()
	}
	// watch opens a watch and returns its first message, with the stream's error.
	watch := func(size int32) (feedv1.FeedService_WatchFeedClient, *feedv1.WatchFeedResponse, error) {
		s, err := client.WatchFeed(t.Context(), &feedv1.WatchFeedRequest{PageSize: size})
		if err != nil {
			return nil, nil, err
		}
		msg, err := s.Recv()
		return s, msg, err
	}
	first := post("first")
	for _, size := range []int32{-1, MaxPageSize + 1} {
		if _, _, err := watch(size); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("page_size %d: %v, want InvalidArgument", size, err)
		}
	}
	stream, msg, err := watch(2)
	if ps := msg.GetFirstPage().GetPosts(); err != nil || len(ps) != 1 || ps[0].GetId() != first {
		t.Fatalf("first message %v, %v; want the page with the one post", msg, err)
	}
	if msg, err = stream.Recv(); err != nil || msg.GetFirstPage() != nil {
		t.Fatalf("second message %v, %v; want a heartbeat", msg, err)
	}
	second, third := post("second"), post("third")
	for msg.GetFirstPage() == nil {
		if msg, err = stream.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	page := msg.GetFirstPage()
	if ps := page.GetPosts(); len(ps) != 2 || ps[0].GetId() != third || ps[1].GetId() != second ||
		page.GetNextPageToken() == "" {
		t.Fatalf("changed page %v, want the two newest posts and a next page", page)
	}
	listed, err := client.ListPosts(t.Context(), &feedv1.ListPostsRequest{PageSize: 2})
	if err != nil || listed.GetNextPageToken() != page.GetNextPageToken() {
		t.Fatalf("ListPosts = %v, %v; want the pushed page", listed, err)
	}

	srv.Close()
	for err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("after Close: %v, want Unavailable", err)
	}
	// A replica that is closing refuses new watches at once (the page may
	// be sent before the stream notices).
	s, _, err := watch(0)
	if err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("a watch after Close: %v, want Unavailable", err)
	}
}

func TestPageToken(t *testing.T) {
	for _, key := range []int64{1, 2, 127, 128, 1 << 20, 1<<62 - 1} {
		if got, err := DecodePageToken(EncodePageToken(key)); err != nil || got != key {
			t.Errorf("key %d: token %q decodes to %d, %v", key, EncodePageToken(key), got, err)
		}
	}
	if k, err := DecodePageToken(""); k != 0 || err != nil {
		t.Errorf("empty token: %d, %v", k, err)
	}
	valid := EncodePageToken(300)
	for _, tok := range []string{
		"garbage!", "AQ", "AA", "Ag", // bad alphabet, no key, version 0, version 2
		valid + "A", valid[:len(valid)-1], "AYCAgICAgICAgIAB", // trailing, cut, overlong varint
		"AQA", // key 0
		"AYGA", "AYCAAA",
	} {
		if k, err := DecodePageToken(tok); err == nil {
			t.Errorf("forged token %q accepted as key %d", tok, k)
		}
	}
}
