package edge

import (
	"net/http"

	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"

	"github.com/extagram/extagram/internal/apierr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// HTTPStatus is the one table from gRPC results to HTTP statuses, used by
// the pages, /storage/ and the JSON API alike.
func HTTPStatus(err error) int {
	if err == nil {
		return http.StatusOK
	}
	switch status.Code(err) {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.FailedPrecondition:
		switch apierr.UploadReason(err) {
		case uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_UNSUPPORTED_TYPE:
			return http.StatusUnsupportedMediaType
		case uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_KEY_REUSED:
			return http.StatusUnprocessableEntity
		}
		return http.StatusBadRequest
	case codes.OutOfRange:
		return http.StatusRequestedRangeNotSatisfiable
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		// The services use it for size and pixel limits; the edge's own
		// rate limit answers 429 before any call is made.
		return http.StatusRequestEntityTooLarge
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		// A replica that is down, frozen or draining: the client may retry.
		return http.StatusServiceUnavailable
	default: // Unknown, Internal, DataLoss
		return http.StatusInternalServerError
	}
}

// userMessage is what a person is told about a failed call: the service's
// own message for client errors (they are written for users), a generic
// sentence for server errors (whose details stay in the logs).
func userMessage(err error) string {
	code := HTTPStatus(err)
	switch {
	case code == http.StatusServiceUnavailable:
		return "Extagram is unavailable right now. Please try again in a moment."
	case code >= 500:
		return "Something went wrong on our side. Please try again."
	}
	msg := status.Convert(err).Message()
	if msg == "" {
		return http.StatusText(code)
	}
	return upperFirst(msg) + "."
}

func upperFirst(s string) string {
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}
