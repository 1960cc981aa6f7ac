package edge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	blobv1 "github.com/extagram/extagram/gen/extagram/blob/v1"
	"github.com/maypok86/otter/v2"
)

// DefaultImageCacheBytes is the default size of the edge's image cache.
const DefaultImageCacheBytes = 64 << 20

// imageOverhead is what a cached image costs besides its bytes (headers,
// metadata, the cache's own entry), counted in its weight.
const imageOverhead = 1 << 10

// cachedImage is an image held by the edge: its bytes, checked against
// their SHA-256, and the response headers that go with them.
type cachedImage struct {
	data    []byte
	modTime time.Time
	// Header values, made once per image: http.Header maps take them
	// without a copy.
	contentType, etag, lastModified, length []string
}

var (
	immutableCaching = []string{"public, max-age=31536000, immutable"}
	noSniff          = []string{"nosniff"}
	acceptRanges     = []string{"bytes"}
)

// setHeaders sets the headers of an image response on h.
func (img *cachedImage) setHeaders(h http.Header) {
	h["Content-Type"] = img.contentType
	h["Etag"] = img.etag
	h["Cache-Control"] = immutableCaching
	h["X-Content-Type-Options"] = noSniff
}

func newCachedImage(meta *blobv1.BlobMetadata, data []byte) *cachedImage {
	modTime := meta.GetCreateTime().AsTime()
	return &cachedImage{
		data:         data,
		modTime:      modTime,
		contentType:  []string{meta.GetContentType()},
		etag:         []string{`"` + hex.EncodeToString(meta.GetSha256()) + `"`},
		lastModified: []string{modTime.UTC().Format(http.TimeFormat)},
		length:       []string{strconv.Itoa(len(data))},
	}
}

// imageWrite is how much of an image one write hands to the connection,
// each with writeProgress to complete.
const imageWrite = 256 << 10

// serve answers a plain GET or HEAD (no range, no condition: nearly all
// of them) with the whole image, with the headers http.ServeContent would
// send, in writes of imageWrite. It reports false, having written nothing,
// for the requests that need ServeContent.
func (img *cachedImage) serve(w http.ResponseWriter, r *http.Request) bool {
	rh := r.Header
	if rh["Range"] != nil || rh["If-None-Match"] != nil || rh["If-Modified-Since"] != nil ||
		rh["If-Match"] != nil || rh["If-Unmodified-Since"] != nil || rh["If-Range"] != nil {
		return false
	}
	h := w.Header()
	img.setHeaders(h)
	h["Accept-Ranges"] = acceptRanges
	h["Last-Modified"] = img.lastModified
	h["Content-Length"] = img.length
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodGet {
		return true
	}
	rc := http.NewResponseController(w)
	for b := img.data; len(b) > 0; {
		n := min(len(b), imageWrite)
		_ = rc.SetWriteDeadline(time.Now().Add(writeProgress))
		if _, err := w.Write(b[:n]); err != nil {
			break
		}
		b = b[n:]
	}
	return true
}

// imageCache keeps hot images in memory, bounded by bytes. Images never
// change, so an entry is good until it is evicted.
type imageCache struct {
	cache *otter.Cache[string, *cachedImage]
	// maxImage is the largest image kept: a few large images must not
	// push out many small ones.
	maxImage int64
}

// newImageCache returns a cache of at most maxBytes, or nil when maxBytes
// is not positive (no cache).
func newImageCache(maxBytes int64) (*imageCache, error) {
	if maxBytes <= 0 {
		return nil, nil
	}
	c, err := otter.New(&otter.Options[string, *cachedImage]{
		MaximumWeight: uint64(maxBytes),
		Weigher: func(_ string, img *cachedImage) uint32 {
			return uint32(min(int64(len(img.data))+imageOverhead, 1<<32-1))
		},
	})
	if err != nil {
		return nil, fmt.Errorf("edge: image cache: %w", err)
	}
	return &imageCache{cache: c, maxImage: maxBytes / 8}, nil
}

// errNotCached says an image is too large for the cache; it carries the
// metadata the attempt read.
type errNotCached struct{ meta *blobv1.BlobMetadata }

func (e errNotCached) Error() string { return "image too large to cache" }

// get returns an image from the cache or, on a miss, from the blob
// service: its metadata, then, when it is small enough to keep, one GetBlob
// call that reads it whole. Concurrent misses of one image share those
// calls; they run on their own deadline, so one client going away does not
// fail the others. An image over maxImage is not read: get returns
// errNotCached with its metadata.
func (c *imageCache) get(ctx context.Context, b *backends, id string) (*cachedImage, error) {
	return c.cache.Get(ctx, id, otter.LoaderFunc[string, *cachedImage](func(ctx context.Context, id string) (*cachedImage, error) {
		ctx = context.WithoutCancel(ctx)
		meta, err := b.blobMetadata(ctx, id)
		if err != nil {
			return nil, err
		}
		if meta.GetSizeBytes() > c.maxImage {
			return nil, errNotCached{meta}
		}
		meta, stream, err := b.openBlob(ctx, id, 0, 0)
		if err != nil {
			return nil, err
		}
		defer stream.close()
		data := make([]byte, 0, meta.GetSizeBytes())
		for {
			chunk, err := stream.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			if int64(len(data)+len(chunk)) > meta.GetSizeBytes() {
				return nil, errors.New("blob stream sent more bytes than the image has")
			}
			data = append(data, chunk...)
		}
		if sum := sha256.Sum256(data); int64(len(data)) != meta.GetSizeBytes() || !bytes.Equal(sum[:], meta.GetSha256()) {
			return nil, fmt.Errorf("image %s: the bytes received do not match its size and SHA-256", id)
		}
		return newCachedImage(meta, data), nil
	}))
}
