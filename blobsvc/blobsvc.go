// Package blobsvc implements extagram.blob.v1.BlobService (S5 of the seed
// design). It serves an image from its file in the uploads folder, which
// it checks against the SHA-256 recorded in the database; when the file is
// missing or differs, it serves the database copy (verified too) and
// rewrites the file. When the database cannot be reached, files already on
// disk are still served.
//
// Images never change, so what the database says of one is kept by id,
// and a file is hashed only when its identity (size, modification time,
// inode) is new: once when first read, again only if it is replaced. A
// stream reads the file as it sends, a chunk at a time, and a range reads
// only its bytes.
package blobsvc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"

	blobv1 "github.com/extagram/extagram/gen/extagram/blob/v1"
	"github.com/extagram/extagram/imaging"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/convert"
	"github.com/extagram/extagram/internal/uploads"
	"github.com/extagram/extagram/store"
	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ChunkSize is the most image bytes sent in one stream message. A message
// of it fits the 32 KiB buffers of gRPC's buffer pool: at 64 KiB each
// message queued for a slow reader would take a buffer of 1 MiB (the next
// size the pool has).
const ChunkSize = 32<<10 - 64

// knownImages bounds how many images' metadata and verified file
// identities are kept (about 250 bytes each).
const knownImages = 20000

// Server serves BlobService.
type Server struct {
	blobv1.UnimplementedBlobServiceServer
	store   store.Store
	uploads *uploads.Dir
	logger  *slog.Logger
	known   *otter.Cache[contract.ID, *known]
	// repairs counts the files served from the database copy, by cause;
	// a steady rate is a sign of disk trouble.
	repairs *prometheus.CounterVec
}

var _ blobv1.BlobServiceServer = (*Server)(nil)

// known is what the service knows of an image: its record and the
// identity of its file when the file last matched the record.
type known struct {
	img store.Image
	mu  sync.Mutex
	// verified is the identity of the file when it was last hashed and
	// found to match; the zero Identity when it never was.
	verified uploads.Identity
}

func (k *known) isVerified(id uploads.Identity) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.verified == id && id != uploads.Identity{}
}

func (k *known) setVerified(id uploads.Identity) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.verified = id
}

// New returns a BlobService over st and the uploads folder.
func New(st store.Store, dir *uploads.Dir, logger *slog.Logger) (*Server, error) {
	if dir == nil {
		return nil, errors.New("blobsvc: no uploads folder")
	}
	if logger == nil {
		logger = slog.Default()
	}
	known, err := otter.New(&otter.Options[contract.ID, *known]{MaximumSize: knownImages})
	if err != nil {
		return nil, err
	}
	repairs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "extagram_blob_repairs_total",
		Help: "Image files served from the database copy and rewritten, by cause: missing, damaged (checksum) or unreadable.",
	}, []string{"cause"})
	for _, c := range []string{"missing", "damaged", "unreadable"} {
		repairs.WithLabelValues(c)
	}
	return &Server{store: st, uploads: dir, logger: logger, known: known, repairs: repairs}, nil
}

// Collectors are the service's metrics, for the role's registry.
func (s *Server) Collectors() []prometheus.Collector { return []prometheus.Collector{s.repairs} }

// GetBlobMetadata returns an image's metadata.
func (s *Server) GetBlobMetadata(ctx context.Context, req *blobv1.GetBlobMetadataRequest) (*blobv1.GetBlobMetadataResponse, error) {
	id, err := convert.ParseID("id", req.GetId())
	if err != nil {
		return nil, err
	}
	k, err := s.lookup(ctx, id)
	if errors.Is(err, store.ErrUnavailable) {
		// The file alone can still describe the image.
		if data, ferr := s.uploads.Read(id); ferr == nil {
			if fimg, ok := s.describeFile(id, data); ok {
				return &blobv1.GetBlobMetadataResponse{Metadata: metadata(fimg)}, nil
			}
		}
	}
	if err != nil {
		return nil, convert.StoreError(ctx, s.logger, "image", err)
	}
	return &blobv1.GetBlobMetadataResponse{Metadata: metadata(k.img)}, nil
}

// GetBlob streams an image's metadata, then the requested bytes.
func (s *Server) GetBlob(req *blobv1.GetBlobRequest, stream blobv1.BlobService_GetBlobServer) error {
	ctx := stream.Context()
	id, err := convert.ParseID("id", req.GetId())
	if err != nil {
		return err
	}
	off, limit := req.GetReadOffset(), req.GetReadLimit()
	if off < 0 || limit < 0 {
		return status.Error(codes.InvalidArgument, "read_offset and read_limit must not be negative")
	}
	img, r, err := s.open(ctx, id)
	if err != nil {
		return err
	}
	defer r.Close()
	if off > img.Size {
		return status.Errorf(codes.OutOfRange, "read_offset %d is past the end of the %d-byte image", off, img.Size)
	}
	end := img.Size
	// Compared without adding, so that no limit can overflow.
	if limit > 0 && limit < end-off {
		end = off + limit
	}
	if err := stream.Send(&blobv1.GetBlobResponse{Payload: &blobv1.GetBlobResponse_Metadata{Metadata: metadata(img)}}); err != nil {
		return err
	}
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	for p := off; p < end; {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), end-p)], p)
		if n > 0 {
			// Send has marshalled the message when it returns, so buf can
			// be read into again.
			if serr := stream.Send(&blobv1.GetBlobResponse{Payload: &blobv1.GetBlobResponse_Chunk{Chunk: buf[:n]}}); serr != nil {
				return serr
			}
			p += int64(n)
		}
		if err != nil && !(errors.Is(err, io.EOF) && p == end) {
			s.logger.ErrorContext(ctx, "reading a verified image failed", "image", id.String(), "offset", p, "err", err)
			return status.Error(codes.Internal, "the image could not be read")
		}
	}
	return nil
}

var chunkPool = sync.Pool{New: func() any { b := make([]byte, ChunkSize); return &b }}

// readerAtCloser is an image's verified bytes: its file, or the database
// copy in memory.
type readerAtCloser interface {
	io.ReaderAt
	io.Closer
}

type memImage struct{ *bytes.Reader }

func (memImage) Close() error { return nil }

// lookup returns what is known of an image, asking the database the first
// time.
func (s *Server) lookup(ctx context.Context, id contract.ID) (*known, error) {
	if k, ok := s.known.GetIfPresent(id); ok {
		return k, nil
	}
	img, err := s.store.ImageInfo(ctx, id)
	if err != nil {
		return nil, err
	}
	k, _ := s.known.SetIfAbsent(id, &known{img: img})
	return k, nil
}

// open returns an image's metadata and its verified bytes. The file is
// used when it matches the record: at once when its identity was verified
// before, after hashing it otherwise. Else the database copy is served and
// the file rewritten from it.
func (s *Server) open(ctx context.Context, id contract.ID) (store.Image, readerAtCloser, error) {
	k, err := s.lookup(ctx, id)
	if errors.Is(err, store.ErrUnavailable) {
		if data, ferr := s.uploads.Read(id); ferr == nil {
			if fimg, ok := s.describeFile(id, data); ok {
				s.logger.WarnContext(ctx, "database unavailable; serving the file unverified", "image", id.String())
				return fimg, memImage{bytes.NewReader(data)}, nil
			}
		}
	}
	if err != nil {
		return store.Image{}, nil, convert.StoreError(ctx, s.logger, "image", err)
	}
	img := k.img

	f, ident, ferr := s.uploads.Open(id)
	if ferr == nil {
		if k.isVerified(ident) {
			return img, f, nil
		}
		if ident.Size == img.Size && hashOf(f) == img.SHA256 {
			k.setVerified(ident)
			return img, f, nil
		}
		f.Close()
		s.repairs.WithLabelValues("damaged").Inc()
		s.logger.WarnContext(ctx, "file does not match its checksum; serving the database copy", "image", id.String(), "file_bytes", ident.Size)
	} else if errors.Is(ferr, fs.ErrNotExist) {
		s.repairs.WithLabelValues("missing").Inc()
		s.logger.WarnContext(ctx, "file missing; serving the database copy", "image", id.String())
	} else {
		s.repairs.WithLabelValues("unreadable").Inc()
		s.logger.WarnContext(ctx, "file unreadable; serving the database copy", "image", id.String(), "err", ferr)
	}

	img, data, err := s.store.ImageData(ctx, id)
	if err != nil {
		return img, nil, convert.StoreError(ctx, s.logger, "image", err)
	}
	if int64(len(data)) != img.Size || sha256.Sum256(data) != img.SHA256 {
		s.logger.ErrorContext(ctx, "database copy does not match its checksum", "image", id.String())
		return img, nil, status.Error(codes.DataLoss, "the stored image is damaged")
	}
	if err := s.uploads.Write(id, data); err != nil {
		s.logger.WarnContext(ctx, "could not rewrite the file", "image", id.String(), "err", err)
	} else {
		s.logger.InfoContext(ctx, "file restored from the database copy", "image", id.String())
		if fi, err := s.uploads.Stat(id); err == nil {
			k.setVerified(uploads.IdentityOf(fi))
		}
	}
	return img, memImage{bytes.NewReader(data)}, nil
}

// hashOf returns the SHA-256 of a file, read from its start; the zero sum
// when it cannot be read.
func hashOf(f *os.File) [32]byte {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return [32]byte{}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// describeFile derives metadata from a file alone, for when the database
// cannot be reached; ok is false when the file is not a valid image.
func (s *Server) describeFile(id contract.ID, data []byte) (store.Image, bool) {
	res, err := imaging.Inspect(data, imaging.Limits{MaxPixels: 1 << 62, MaxSide: 1 << 30})
	if err != nil {
		return store.Image{}, false
	}
	w, h := res.DisplaySize()
	img := store.Image{
		ID:          id,
		ContentType: res.ContentType,
		Size:        int64(len(data)),
		SHA256:      sha256.Sum256(data),
		Width:       w,
		Height:      h,
	}
	if fi, err := s.uploads.Stat(id); err == nil {
		img.CreatedAt = fi.ModTime().UTC()
	}
	return img, true
}

func metadata(img store.Image) *blobv1.BlobMetadata {
	return &blobv1.BlobMetadata{
		Id:          img.ID.String(),
		ContentType: img.ContentType,
		SizeBytes:   img.Size,
		Sha256:      img.SHA256[:],
		Width:       int32(img.Width),
		Height:      int32(img.Height),
		CreateTime:  timestamppb.New(img.CreatedAt),
	}
}
