// Package uploadsvc implements extagram.upload.v1.UploadService (S4 of the
// seed design). It validates the text, reads the photo from the client
// stream into a buffer that never grows past the size limit, decides the
// image type from its bytes, strips privacy metadata, stores the post and
// its image in one transaction, and only then writes the file copy.
package uploadsvc

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"github.com/extagram/extagram/imaging"
	"github.com/extagram/extagram/internal/apierr"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/convert"
	"github.com/extagram/extagram/internal/uploads"
	"github.com/extagram/extagram/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Options configures the service.
type Options struct {
	// MaxBytes is the photo size limit; 0 means
	// contract.DefaultMaxPhotoBytes.
	MaxBytes int64
	// Limits are the pixel limits; zero values mean imaging.DefaultLimits.
	Limits imaging.Limits
	// Uploads is the folder the file copies go to.
	Uploads *uploads.Dir
	Logger  *slog.Logger
}

// Server serves UploadService.
type Server struct {
	uploadv1.UnimplementedUploadServiceServer
	store store.Store
	opts  Options
}

var _ uploadv1.UploadServiceServer = (*Server)(nil)

// New returns an UploadService over st.
func New(st store.Store, opts Options) (*Server, error) {
	if opts.Uploads == nil {
		return nil, errors.New("uploadsvc: no uploads folder")
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = contract.DefaultMaxPhotoBytes
	}
	def := imaging.DefaultLimits()
	if opts.Limits.MaxPixels <= 0 {
		opts.Limits.MaxPixels = def.MaxPixels
	}
	if opts.Limits.MaxSide <= 0 {
		opts.Limits.MaxSide = def.MaxSide
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Server{store: st, opts: opts}, nil
}

// Upload creates a post from the stream.
func (s *Server) Upload(stream uploadv1.UploadService_UploadServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err == io.EOF {
		return badRequest("empty upload: the first message must carry the header")
	}
	if err != nil {
		return recvError(err)
	}
	hdr := first.GetHeader()
	if hdr == nil {
		return badRequest("the first message must carry the header (text and photo description)")
	}
	text, err := contract.CheckText(hdr.GetText())
	if err != nil {
		return apierr.Upload(codes.InvalidArgument, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_BAD_TEXT, err.Error())
	}
	if err := checkClaims(hdr.GetPhoto()); err != nil {
		return badRequest(err.Error())
	}
	key := hdr.GetIdempotencyKey()
	if len(key) > MaxIdempotencyKey {
		return badRequest(fmt.Sprintf("the idempotency key is %d bytes long; the limit is %d", len(key), MaxIdempotencyKey))
	}

	np := store.NewPost{ID: contract.NewID(), Text: text}
	var removed []string
	var data []byte // the photo as received
	if hdr.GetPhoto() != nil {
		if data, err = s.readPhoto(stream); err != nil {
			return err
		}
		res, err := imaging.Inspect(data, s.opts.Limits)
		if err != nil {
			return imageError(err)
		}
		removed = res.Removed
		w, h := res.DisplaySize()
		np.Image = &store.NewImage{
			ID:          contract.NewID(),
			ContentType: res.ContentType,
			Width:       w,
			Height:      h,
			Data:        res.Data,
		}
	} else if msg, err := stream.Recv(); err != io.EOF {
		if err != nil {
			return recvError(err)
		}
		if msg.GetHeader() != nil {
			return badRequest("the header must be sent only once")
		}
		return badRequest("photo bytes were sent but the header announced no photo")
	}

	if key != "" {
		np.Request = requestKey(key, text, data)
	}
	post, err := s.store.CreatePost(ctx, np)
	repeated := errors.Is(err, store.ErrRepeated)
	switch {
	case repeated:
		s.opts.Logger.InfoContext(ctx, "upload repeated; answered with the post it made before", "post", post.ID.String())
		return stream.SendAndClose(&uploadv1.UploadResponse{Post: convert.Post(post), Repeated: true})
	case errors.Is(err, store.ErrKeyReused):
		return apierr.Upload(codes.FailedPrecondition, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_KEY_REUSED,
			"this upload's idempotency key was used before for another text or photo")
	case err != nil:
		return convert.StoreError(ctx, s.opts.Logger, "post", err)
	}
	attrs := []any{"post", post.ID.String()}
	if post.Image != nil {
		attrs = append(attrs, "image", post.Image.ID.String(), "type", post.Image.ContentType,
			"bytes", post.Image.Size, "width", post.Image.Width, "height", post.Image.Height,
			"client_name", contract.Truncate(hdr.GetPhoto().GetFileName(), 80), "client_type", contract.Truncate(hdr.GetPhoto().GetContentType(), 80))
		if len(removed) > 0 {
			attrs = append(attrs, "metadata_removed", removed)
		}
		// The post is committed: a failed file write loses nothing, the
		// blob service serves the database copy and rewrites the file.
		if err := s.opts.Uploads.Write(post.Image.ID, np.Image.Data); err != nil {
			s.opts.Logger.WarnContext(ctx, "file copy not written; the database copy will be served", "image", post.Image.ID.String(), "err", err)
		}
	}
	s.opts.Logger.InfoContext(ctx, "post created", attrs...)
	return stream.SendAndClose(&uploadv1.UploadResponse{Post: convert.Post(post)})
}

// MaxIdempotencyKey is the longest idempotency key an upload may carry.
const MaxIdempotencyKey = 255

// requestKey names an upload for the store: its key, and what it asks to
// store (the text, and the photo as sent), so that the key reused for
// another request is told apart from a retry.
func requestKey(key, text string, photo []byte) *store.RequestKey {
	h := sha256.New()
	h.Write([]byte(text))
	h.Write([]byte{0})
	h.Write(photo)
	rk := &store.RequestKey{Key: sha256.Sum256([]byte(key))}
	h.Sum(rk.Hash[:0])
	return rk
}

// readPhoto reads the chunks that follow the header. The buffer grows with
// what arrives and never past the limit: one byte more is an error.
func (s *Server) readPhoto(stream uploadv1.UploadService_UploadServer) ([]byte, error) {
	var buf []byte
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, recvError(err)
		}
		if msg.GetHeader() != nil {
			return nil, badRequest("the header must be sent only once")
		}
		chunk := msg.GetChunk()
		if int64(len(buf))+int64(len(chunk)) > s.opts.MaxBytes {
			return nil, apierr.Upload(codes.ResourceExhausted, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_TOO_LARGE,
				fmt.Sprintf("the photo is larger than the %s limit", contract.FormatBytes(s.opts.MaxBytes)))
		}
		if buf == nil {
			// Most photos are far below the limit; start small.
			buf = make([]byte, 0, min(s.opts.MaxBytes, 256<<10))
		}
		buf = append(buf, chunk...)
	}
	if len(buf) == 0 {
		return nil, apierr.Upload(codes.InvalidArgument, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_MALFORMED_IMAGE, "the photo is empty (0 bytes)")
	}
	return buf, nil
}

// checkClaims checks what the client says of its photo. The name and type
// are only logged, never used as a path or a type, but a NUL in them is a
// classic way to cut a name short ("shell.php\x00.jpg") and is refused.
func checkClaims(p *uploadv1.PhotoInfo) error {
	if strings.ContainsRune(p.GetFileName(), 0) {
		return errors.New("the file name contains a NUL character; rename the file and try again")
	}
	if strings.ContainsRune(p.GetContentType(), 0) {
		return errors.New("the file's content type contains a NUL character")
	}
	return nil
}

func imageError(err error) error {
	switch {
	case errors.Is(err, imaging.ErrTooLarge):
		return apierr.Upload(codes.ResourceExhausted, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_TOO_LARGE, err.Error())
	case errors.Is(err, imaging.ErrUnsupported):
		return apierr.Upload(codes.InvalidArgument, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_UNSUPPORTED_TYPE, err.Error())
	default:
		return apierr.Upload(codes.InvalidArgument, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_MALFORMED_IMAGE, err.Error())
	}
}

// badRequest refuses a stream that is not one header followed by chunks,
// or a header whose claims are unusable.
func badRequest(msg string) error {
	return apierr.Upload(codes.InvalidArgument, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_BAD_REQUEST, msg)
}

func recvError(err error) error {
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, "upload cancelled")
	}
	return status.Errorf(codes.Unknown, "receiving the upload: %v", err)
}

// ForgetKeys deletes idempotency keys older than store.RequestKeyLifetime
// now and then every interval, until ctx ends.
func (s *Server) ForgetKeys(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.store.DeleteRequestKeys(ctx, time.Now().Add(-store.RequestKeyLifetime))
		switch {
		case err != nil && ctx.Err() == nil:
			s.opts.Logger.WarnContext(ctx, "expired idempotency keys not deleted", "err", err)
		case n > 0:
			s.opts.Logger.InfoContext(ctx, "expired idempotency keys deleted", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
