package apierr

import (
	"errors"
	"testing"

	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestUploadReasonRoundTrip(t *testing.T) {
	for v := range uploadv1.UploadErrorReason_name {
		reason := uploadv1.UploadErrorReason(v)
		err := Upload(codes.InvalidArgument, reason, "refused")
		if got := UploadReason(err); got != reason {
			t.Errorf("UploadReason(Upload(%v)) = %v", reason, got)
		}
		if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != "refused" {
			t.Errorf("Upload(%v) = %v, want INVALID_ARGUMENT \"refused\"", reason, err)
		}
	}
	// What grpcurl users see: the enum's name in the given domain.
	for _, d := range status.Convert(Upload(codes.InvalidArgument, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_UNSUPPORTED_TYPE, "x")).Details() {
		info := d.(*errdetails.ErrorInfo)
		if info.GetReason() != "UPLOAD_ERROR_REASON_UNSUPPORTED_TYPE" || info.GetDomain() != "extagram.upload.v1.UploadService" {
			t.Errorf("ErrorInfo = %v", info)
		}
	}
	// Anything else has no reason.
	other, _ := status.New(codes.InvalidArgument, "x").WithDetails(&errdetails.ErrorInfo{Reason: "UPLOAD_ERROR_REASON_TOO_LARGE", Domain: "example.com"})
	unknown, _ := status.New(codes.InvalidArgument, "x").WithDetails(&errdetails.ErrorInfo{Reason: "SOMETHING_NEW", Domain: UploadDomain})
	for name, err := range map[string]error{
		"nil":           nil,
		"plain error":   errors.New("x"),
		"no details":    status.Error(codes.InvalidArgument, "x"),
		"other domain":  other.Err(),
		"unknown value": unknown.Err(),
	} {
		if got := UploadReason(err); got != uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_UNSPECIFIED {
			t.Errorf("%s: UploadReason = %v, want UNSPECIFIED", name, got)
		}
	}
}
