// Package blobsvc implements extagram.blob.v1.BlobService (S5 of the seed
// design). It serves an image from its file in the uploads folder after
// checking the file against the SHA-256 recorded in the database; when the
// file is missing or differs, it serves the database copy (verified too)
// and rewrites the file. When the database cannot be reached, files
// already on disk are still served.
package blobsvc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"log/slog"

	blobv1 "github.com/extagram/extagram/gen/extagram/blob/v1"
	"github.com/extagram/extagram/imaging"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/convert"
	"github.com/extagram/extagram/internal/uploads"
	"github.com/extagram/extagram/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ChunkSize is the most image bytes sent in one stream message.
const ChunkSize = 64 << 10

// Server serves BlobService.
type Server struct {
	blobv1.UnimplementedBlobServiceServer
	store   store.Store
	uploads *uploads.Dir
	logger  *slog.Logger
}

var _ blobv1.BlobServiceServer = (*Server)(nil)

// New returns a BlobService over st and the uploads folder.
func New(st store.Store, dir *uploads.Dir, logger *slog.Logger) (*Server, error) {
	if dir == nil {
		return nil, errors.New("blobsvc: no uploads folder")
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{store: st, uploads: dir, logger: logger}, nil
}

// GetBlobMetadata returns an image's metadata.
func (s *Server) GetBlobMetadata(ctx context.Context, req *blobv1.GetBlobMetadataRequest) (*blobv1.GetBlobMetadataResponse, error) {
	id, err := convert.ParseID("id", req.GetId())
	if err != nil {
		return nil, err
	}
	img, err := s.store.ImageInfo(ctx, id)
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
	return &blobv1.GetBlobMetadataResponse{Metadata: metadata(img)}, nil
}

// GetBlob streams an image's metadata, then the requested bytes.
func (s *Server) GetBlob(req *blobv1.GetBlobRequest, stream blobv1.BlobService_GetBlobServer) error {
	ctx := stream.Context()
	id, err := convert.ParseID("id", req.GetId())
	if err != nil {
		return err
	}
	if req.GetReadOffset() < 0 || req.GetReadLimit() < 0 {
		return status.Error(codes.InvalidArgument, "read_offset and read_limit must not be negative")
	}
	img, data, err := s.load(ctx, id)
	if err != nil {
		return err
	}
	off, n := req.GetReadOffset(), req.GetReadLimit()
	if off > int64(len(data)) {
		return status.Errorf(codes.OutOfRange, "read_offset %d is past the end of the %d-byte image", off, len(data))
	}
	end := int64(len(data))
	if n > 0 && off+n < end {
		end = off + n
	}
	if err := stream.Send(&blobv1.GetBlobResponse{Payload: &blobv1.GetBlobResponse_Metadata{Metadata: metadata(img)}}); err != nil {
		return err
	}
	for p := off; p < end; p += ChunkSize {
		q := min(p+ChunkSize, end)
		if err := stream.Send(&blobv1.GetBlobResponse{Payload: &blobv1.GetBlobResponse_Chunk{Chunk: data[p:q]}}); err != nil {
			return err
		}
	}
	return nil
}

// load returns an image's metadata and verified bytes.
func (s *Server) load(ctx context.Context, id contract.ID) (store.Image, []byte, error) {
	img, err := s.store.ImageInfo(ctx, id)
	if errors.Is(err, store.ErrUnavailable) {
		if data, ferr := s.uploads.Read(id); ferr == nil {
			if fimg, ok := s.describeFile(id, data); ok {
				s.logger.WarnContext(ctx, "database unavailable; serving the file unverified", "image", id.String())
				return fimg, data, nil
			}
		}
	}
	if err != nil {
		return img, nil, convert.StoreError(ctx, s.logger, "image", err)
	}

	data, ferr := s.uploads.Read(id)
	if ferr == nil && int64(len(data)) == img.Size && sha256.Sum256(data) == img.SHA256 {
		return img, data, nil
	}
	switch {
	case errors.Is(ferr, fs.ErrNotExist):
		s.logger.WarnContext(ctx, "file missing; serving the database copy", "image", id.String())
	case ferr != nil:
		s.logger.WarnContext(ctx, "file unreadable; serving the database copy", "image", id.String(), "err", ferr)
	default:
		s.logger.WarnContext(ctx, "file does not match its checksum; serving the database copy", "image", id.String(), "file_bytes", len(data))
	}
	img, data, err = s.store.ImageData(ctx, id)
	if err != nil {
		return img, nil, convert.StoreError(ctx, s.logger, "image", err)
	}
	if sum := sha256.Sum256(data); int64(len(data)) != img.Size || !bytes.Equal(sum[:], img.SHA256[:]) {
		s.logger.ErrorContext(ctx, "database copy does not match its checksum", "image", id.String())
		return img, nil, status.Error(codes.DataLoss, "the stored image is damaged")
	}
	if err := s.uploads.Write(id, data); err != nil {
		s.logger.WarnContext(ctx, "could not rewrite the file", "image", id.String(), "err", err)
	} else {
		s.logger.InfoContext(ctx, "file restored from the database copy", "image", id.String())
	}
	return img, data, nil
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
