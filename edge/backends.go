package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	blobv1 "github.com/extagram/extagram/gen/extagram/blob/v1"
	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"github.com/extagram/extagram/internal/meshtls"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Deadlines of the calls that are not hedged (feed calls take theirs from
// hedgedServices). An upload may take a while over a slow link; an image
// is streamed within a minute.
const (
	uploadTimeout = 2 * time.Minute
	blobTimeout   = time.Minute
)

// pageSize is the number of posts on a feed page, as in the design.
const pageSize = 20

// chunkSize is the size of the upload stream's messages: as blobsvc's, it
// keeps a message within the 32 KiB buffers of gRPC's pool.
const chunkSize = 32<<10 - 64

// backends holds the one long-lived connection per service and is the only
// user of the generated clients: every call the edge makes is one of its
// small typed methods, so handlers never touch a stub.
type backends struct {
	conns  []namedConn
	feed   feedv1.FeedServiceClient
	upload uploadv1.UploadServiceClient
	blob   blobv1.BlobServiceClient
}

type namedConn struct {
	name string
	cc   *grpc.ClientConn
}

// dialBackends connects to the services (lazily: grpc.NewClient does not
// block). metrics may be nil.
func dialBackends(opts Options, metrics *grpcprom.ClientMetrics) (*backends, error) {
	b := &backends{}
	for _, c := range []struct{ name, target, config string }{
		{meshtls.Feed, opts.FeedTarget, feedServiceConfig},
		{meshtls.Upload, opts.UploadTarget, uploadServiceConfig},
		{meshtls.Blob, opts.BlobTarget, blobServiceConfig},
	} {
		creds := insecure.NewCredentials()
		if !opts.MeshInsecure {
			cfg, err := meshtls.ClientConfig(opts.Mesh, c.name)
			if err != nil {
				b.close()
				return nil, fmt.Errorf("edge: %s: %w", c.name, err)
			}
			creds = credentials.NewTLS(cfg)
		}
		cc, err := dial(c.target, c.config, creds, metrics)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("edge: %s: %w", c.name, err)
		}
		b.conns = append(b.conns, namedConn{c.name, cc})
	}
	b.feed = feedv1.NewFeedServiceClient(b.conns[0].cc)
	b.upload = uploadv1.NewUploadServiceClient(b.conns[1].cc)
	b.blob = blobv1.NewBlobServiceClient(b.conns[2].cc)
	return b, nil
}

func (b *backends) close() {
	for _, c := range b.conns {
		_ = c.cc.Close()
	}
}

// notReady reports which services have no ready connection. It also asks
// idle connections to connect, so the next check can succeed.
func (b *backends) notReady() []string {
	var out []string
	for _, c := range b.conns {
		if st := c.cc.GetState(); st != connectivity.Ready {
			c.cc.Connect()
			out = append(out, c.name+": "+st.String())
		}
	}
	return out
}

// listPosts returns a page of the feed; token "" is the newest page.
func (b *backends) listPosts(ctx context.Context, token string) (*feedv1.ListPostsResponse, error) {
	return b.feed.ListPosts(ctx, &feedv1.ListPostsRequest{PageSize: pageSize, PageToken: token})
}

// getPost returns one post.
func (b *backends) getPost(ctx context.Context, id string) (*feedv1.Post, error) {
	resp, err := b.feed.GetPost(ctx, &feedv1.GetPostRequest{Id: id})
	return resp.GetPost(), err
}

// watchFeed opens a WatchFeed stream of the newest page.
func (b *backends) watchFeed(ctx context.Context) (feedv1.FeedService_WatchFeedClient, error) {
	return b.feed.WatchFeed(ctx, &feedv1.WatchFeedRequest{PageSize: pageSize})
}

// registerAPI serves the JSON API on gw over the feed connection, with the
// same balancing, hedging and deadline as the pages, and pages of the
// pages' size from the feed cache.
func (b *backends) registerAPI(ctx context.Context, gw *runtime.ServeMux, pages *feedCache) error {
	return feedv1.RegisterFeedServiceHandlerClient(ctx, gw, apiFeedClient{FeedServiceClient: b.feed, pages: pages})
}

// apiFeedClient is the FeedService client of the JSON API: ListPosts of the
// default page size comes from the feed cache, as the pages do.
type apiFeedClient struct {
	feedv1.FeedServiceClient
	pages *feedCache
}

func (c apiFeedClient) ListPosts(ctx context.Context, req *feedv1.ListPostsRequest, opts ...grpc.CallOption) (*feedv1.ListPostsResponse, error) {
	// The API defines 0 as the default size, 20, the pages' size.
	if size := req.GetPageSize(); size != 0 && size != pageSize {
		return c.FeedServiceClient.ListPosts(ctx, req, opts...)
	}
	p, err := c.pages.page(ctx, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return p.resp, nil
}

// photoUpload is a photo on its way to UploadService.
type photoUpload struct {
	// fileName and contentType are what the client says of its file; the
	// service only logs them.
	fileName, contentType string
	// body reads the photo's bytes. An error from it (the photo over its
	// limit, a form that turns out to be bad after the photo) abandons
	// the upload: nothing is stored.
	body io.Reader
}

// createPost streams a post into UploadService: the header, then the
// photo's bytes in chunks, and returns the post created (or, for a repeat
// of key, the post made the first time). The post is stored only when
// every byte has been read and sent; any error before that cancels the
// stream.
func (b *backends) createPost(ctx context.Context, text, key string, photo *photoUpload) (*feedv1.Post, error) {
	ctx, cancel := context.WithTimeout(ctx, uploadTimeout)
	defer cancel()
	stream, err := b.upload.Upload(ctx)
	if err != nil {
		return nil, err
	}
	hdr := &uploadv1.UploadHeader{Text: text, IdempotencyKey: key}
	if photo != nil {
		hdr.Photo = &uploadv1.PhotoInfo{FileName: photo.fileName, ContentType: photo.contentType}
	}
	err = stream.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Header{Header: hdr}})
	if err == nil && photo != nil {
		err = sendChunks(stream, photo.body)
	}
	if errors.Is(err, io.EOF) {
		// The service has already answered, with a refusal: Send reports
		// only io.EOF, and the reason comes with CloseAndRecv.
		err = nil
	}
	if err != nil {
		return nil, err // cancel() abandons the stream
	}
	resp, err := stream.CloseAndRecv()
	return resp.GetPost(), err
}

// sendChunks sends r's bytes in chunkSize messages. A send that fails
// because the service has answered returns io.EOF.
func sendChunks(stream uploadv1.UploadService_UploadClient, r io.Reader) error {
	buf := make([]byte, chunkSize)
	for {
		n, err := io.ReadFull(r, buf)
		end := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !end {
			// The form failed (too large, stalled, malformed): that is
			// the answer, whatever the stream would say of being cut.
			return err
		}
		if n > 0 {
			if serr := stream.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Chunk{Chunk: buf[:n]}}); serr != nil {
				return serr
			}
		}
		if end {
			return nil
		}
	}
}

// blobMetadata returns an image's metadata alone.
func (b *backends) blobMetadata(ctx context.Context, id string) (*blobv1.BlobMetadata, error) {
	ctx, cancel := context.WithTimeout(ctx, blobTimeout)
	defer cancel()
	resp, err := b.blob.GetBlobMetadata(ctx, &blobv1.GetBlobMetadataRequest{Id: id})
	return resp.GetMetadata(), err
}

// blobStream is an open GetBlob stream, positioned after its metadata.
type blobStream struct {
	stream blobv1.BlobService_GetBlobClient
	cancel context.CancelFunc
}

// openBlob starts streaming an image's bytes from offset, at most limit
// of them (0: to the end), and returns its metadata (the stream's first
// message) and the stream.
func (b *backends) openBlob(ctx context.Context, id string, offset, limit int64) (*blobv1.BlobMetadata, *blobStream, error) {
	ctx, cancel := context.WithTimeout(ctx, blobTimeout)
	stream, err := b.blob.GetBlob(ctx, &blobv1.GetBlobRequest{Id: id, ReadOffset: offset, ReadLimit: limit})
	if err != nil {
		cancel()
		return nil, nil, err
	}
	first, err := stream.Recv()
	if err != nil {
		cancel()
		return nil, nil, err
	}
	meta := first.GetMetadata()
	if meta == nil {
		cancel()
		return nil, nil, errors.New("blob stream did not start with metadata")
	}
	return meta, &blobStream{stream: stream, cancel: cancel}, nil
}

// next returns the next chunk of bytes; io.EOF at the end of the stream.
func (s *blobStream) next() ([]byte, error) {
	msg, err := s.stream.Recv()
	if err != nil {
		return nil, err
	}
	return msg.GetChunk(), nil
}

// close ends the stream (whether or not it was read to the end).
func (s *blobStream) close() { s.cancel() }
