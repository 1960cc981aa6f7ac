package edge

import (
	"context"
	"net/http"
	"time"

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
