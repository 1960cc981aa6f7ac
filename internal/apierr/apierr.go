// Package apierr writes and reads the error details the API defines: a
// refused upload carries a google.rpc.ErrorInfo whose reason is an
// UploadErrorReason's name and whose domain is the UploadService's full
// name. The upload service writes them; the edge, tests and any other gRPC
// client read them the same way grpcurl shows them.
package apierr

import (
	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// UploadDomain is the ErrorInfo domain of UploadService's errors.
var UploadDomain = uploadv1.UploadService_ServiceDesc.ServiceName

// Upload returns a status error with code and msg that names reason.
func Upload(code codes.Code, reason uploadv1.UploadErrorReason, msg string) error {
	st := status.New(code, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason.String(), Domain: UploadDomain}); err == nil {
		st = d
	}
	return st.Err()
}

// UploadReason returns the UploadErrorReason an error carries, or
// UPLOAD_ERROR_REASON_UNSPECIFIED when it carries none (not a refusal of
// the upload itself, or not from UploadService).
func UploadReason(err error) uploadv1.UploadErrorReason {
	st, ok := status.FromError(err)
	if !ok {
		return uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_UNSPECIFIED
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == UploadDomain {
			return uploadv1.UploadErrorReason(uploadv1.UploadErrorReason_value[info.GetReason()])
		}
	}
	return uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_UNSPECIFIED
}
