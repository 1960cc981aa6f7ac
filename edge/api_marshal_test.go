package edge

import (
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
)

// The API's marshaler writes a page's JSON again only for the very
// response it marshalled last; another response, even an equal one, is
// marshalled anew, and other messages pass through.
func TestAPIMarshalerKeepsTheLastPage(t *testing.T) {
	m := &apiMarshaler{JSONPb: &runtime.JSONPb{}}
	a := &feedv1.ListPostsResponse{Posts: []*feedv1.Post{{Id: "a", Text: "first"}}}
	b := &feedv1.ListPostsResponse{Posts: []*feedv1.Post{{Id: "b", Text: "second"}}}
	marshal := func(v any) []byte {
		t.Helper()
		body, err := m.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	first := marshal(a)
	if !strings.Contains(string(first), `"first"`) {
		t.Fatalf("JSON of a: %s", first)
	}
	if again := marshal(a); &again[0] != &first[0] {
		t.Error("the same response was marshalled again")
	}
	if got := marshal(b); !strings.Contains(string(got), `"second"`) || strings.Contains(string(got), `"first"`) {
		t.Errorf("JSON of b: %s", got)
	}
	if got := marshal(a); string(got) != string(first) || &got[0] == &first[0] {
		t.Errorf("a after b: %s (reused: %v)", got, &got[0] == &first[0])
	}
	if got := marshal(&feedv1.Post{Id: "c"}); string(got) != `{"id":"c"}` {
		t.Errorf("a post: %s", got)
	}
}
