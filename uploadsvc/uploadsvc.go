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
	"golang.org/x/sync/semaphore"
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
	// MemoryBytes bounds the memory all uploads in flight hold for their
	// photos (what was received, and the cleaned copy); an upload waits
	// for room rather than going past it. 0 means DefaultMemoryBytes.
	MemoryBytes int64
	// Idle is how long an upload may go without a message before it is
	// refused (0: 30 s); MaxDuration bounds an upload as a whole (0: 5
	// minutes).
	Idle, MaxDuration time.Duration
	Logger            *slog.Logger
}

// DefaultMemoryBytes is the default memory for the photos of the uploads
// in flight: three of the largest photos at once, or hundreds of the usual
// ones.
const DefaultMemoryBytes = 64 << 20

// startBuffer is what a photo's buffer starts with: most photos fit; a
// larger one gets, once, a buffer for the largest photo allowed.
const startBuffer = 256 << 10

// Server serves UploadService.
type Server struct {
	uploadv1.UnimplementedUploadServiceServer
	store  store.Store
	opts   Options
	memory *semaphore.Weighted
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
	if opts.MemoryBytes <= 0 {
		opts.MemoryBytes = DefaultMemoryBytes
	}
	if min := 2 * (opts.MaxBytes + 1); opts.MemoryBytes < min {
		// Room for at least one photo of the largest size.
		opts.MemoryBytes = min
	}
	if opts.Idle <= 0 {
		opts.Idle = 30 * time.Second
	}
	if opts.MaxDuration <= 0 {
		opts.MaxDuration = 5 * time.Minute
	}
	return &Server{store: st, opts: opts, memory: semaphore.NewWeighted(opts.MemoryBytes)}, nil
}

// Upload creates a post from the stream.
func (s *Server) Upload(stream uploadv1.UploadService_UploadServer) error {
	ctx := stream.Context()
	rx := newReceiver(stream, s.opts.Idle, s.opts.MaxDuration)
	defer rx.stop()
	first, err := rx.recv()
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
		buf := &photoBuffer{memory: s.memory, limit: s.opts.MaxBytes}
		defer buf.release()
		if data, err = buf.read(ctx, rx); err != nil {
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
	} else if msg, err := rx.recv(); err != io.EOF {
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

// photoBuffer receives a photo within the size limit and the service's
// memory budget. It starts with startBuffer and, for a larger photo, takes
// once a buffer for the largest allowed: never more than limit+1 bytes,
// never a doubling. Each buffer is paid for twice in the budget, for the
// cleaned copy imaging makes of it, and waited for when the budget is
// spent.
type photoBuffer struct {
	memory *semaphore.Weighted
	limit  int64
	held   int64 // of memory
	buf    []byte
}

// read receives the chunks after the header until the client closes.
func (b *photoBuffer) read(ctx context.Context, rx *receiver) ([]byte, error) {
	for {
		msg, err := rx.recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if msg.GetHeader() != nil {
			return nil, badRequest("the header must be sent only once")
		}
		chunk := msg.GetChunk()
		if int64(len(b.buf))+int64(len(chunk)) > b.limit {
			return nil, apierr.Upload(codes.ResourceExhausted, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_TOO_LARGE,
				fmt.Sprintf("the photo is larger than the %s limit", contract.FormatBytes(b.limit)))
		}
		if len(b.buf)+len(chunk) > cap(b.buf) {
			size := min(b.limit, startBuffer)
			if b.buf != nil || len(chunk) > int(size) {
				size = b.limit
			}
			if err := b.grow(ctx, size); err != nil {
				return nil, err
			}
		}
		b.buf = append(b.buf, chunk...)
	}
	if len(b.buf) == 0 {
		return nil, apierr.Upload(codes.InvalidArgument, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_MALFORMED_IMAGE, "the photo is empty (0 bytes)")
	}
	return b.buf, nil
}

// grow replaces the buffer by one of size bytes, once the budget has room.
func (b *photoBuffer) grow(ctx context.Context, size int64) error {
	cost := 2 * size
	if err := b.memory.Acquire(ctx, cost); err != nil {
		return status.FromContextError(err).Err()
	}
	next := make([]byte, len(b.buf), size)
	copy(next, b.buf)
	b.release()
	b.buf, b.held = next, cost
	return nil
}

// release gives the budget back.
func (b *photoBuffer) release() {
	if b.held > 0 {
		b.memory.Release(b.held)
		b.held = 0
	}
}

// receiver receives an upload's messages, refusing a client that sends
// nothing for idle or takes longer than the whole upload may. A goroutine
// calls Recv, one message at a time as recv asks, so that no more is taken
// from the stream than the upload reads.
type receiver struct {
	want    chan struct{}
	msgs    chan received
	done    chan struct{}
	ended   chan struct{} // closed when the stream ended (endErr)
	endErr  error
	idle    time.Duration
	timeout <-chan time.Time
	end     *time.Timer
}

type received struct {
	msg *uploadv1.UploadRequest
	err error
}

func newReceiver(stream uploadv1.UploadService_UploadServer, idle, maxDuration time.Duration) *receiver {
	rx := &receiver{want: make(chan struct{}), msgs: make(chan received), done: make(chan struct{}), ended: make(chan struct{}),
		idle: idle, end: time.NewTimer(maxDuration)}
	rx.timeout = rx.end.C
	go func() {
		defer close(rx.ended)
		for {
			select {
			case <-rx.want:
			case <-rx.done:
				return
			}
			msg, err := stream.Recv()
			if err != nil {
				rx.endErr = err
			}
			select {
			case rx.msgs <- received{msg, err}:
			case <-rx.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return rx
}

// recv returns the next message, io.EOF when the client closed, or a
// status error.
func (rx *receiver) recv() (*uploadv1.UploadRequest, error) {
	idle := time.NewTimer(rx.idle)
	defer idle.Stop()
	select {
	case rx.want <- struct{}{}:
	case <-rx.ended:
		// Asked again after the end: the same answer.
		if rx.endErr != io.EOF {
			return nil, recvError(rx.endErr)
		}
		return nil, io.EOF
	case <-rx.timeout:
		return nil, status.Error(codes.DeadlineExceeded, "the upload took too long")
	}
	select {
	case r := <-rx.msgs:
		if r.err != nil && r.err != io.EOF {
			return nil, recvError(r.err)
		}
		return r.msg, r.err
	case <-idle.C:
		return nil, status.Errorf(codes.DeadlineExceeded, "the upload sent nothing for %s", rx.idle)
	case <-rx.timeout:
		return nil, status.Error(codes.DeadlineExceeded, "the upload took too long")
	}
}

// stop ends the receiving goroutine (it returns with the stream, which
// ends when the handler does).
func (rx *receiver) stop() {
	close(rx.done)
	rx.end.Stop()
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
