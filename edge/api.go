package edge

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/status"
)

// apiError writes a failed API call as JSON (google.rpc.Status) with the
// status from the one table.
func (e *Edge) apiError(ctx context.Context, _ *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	st := status.Convert(err)
	code := HTTPStatus(err)
	pb := st.Proto()
	if code >= 500 {
		pb.Message = userMessage(err)
		pb.Details = nil
	}
	body, merr := m.Marshal(pb)
	if merr != nil {
		grpclog.Errorf("edge: marshal error: %v", merr)
		body = []byte(`{"code":13,"message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	if code == http.StatusServiceUnavailable {
		retryAfter(w, 2*time.Second)
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func (e *Edge) apiRoutingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	msg := http.StatusText(httpStatus)
	if httpStatus == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", "GET, HEAD")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	body, _ := m.Marshal(map[string]any{"code": httpStatus, "message": msg})
	_, _ = w.Write(body)
}

// apiMarshaler is the JSON API's marshaler. The feed cache hands out the
// same response for a page until the page changes, and posts never change,
// so the JSON of the last page marshalled is kept and written again while
// that same response is asked for. protojson, with its reflection, took
// half of the API's CPU (BenchmarkFeedPage/api).
type apiMarshaler struct {
	*runtime.JSONPb
	last atomic.Pointer[marshaledPage]
}

// marshaledPage is a page and its JSON. Holding resp keeps its address
// from being reused by another response while the entry lives.
type marshaledPage struct {
	resp *feedv1.ListPostsResponse
	body []byte
}

func (m *apiMarshaler) Marshal(v any) ([]byte, error) {
	resp, ok := v.(*feedv1.ListPostsResponse)
	if !ok {
		return m.JSONPb.Marshal(v)
	}
	if last := m.last.Load(); last != nil && last.resp == resp {
		return last.body, nil
	}
	body, err := m.JSONPb.Marshal(v)
	if err == nil {
		m.last.Store(&marshaledPage{resp: resp, body: body})
	}
	return body, err
}
