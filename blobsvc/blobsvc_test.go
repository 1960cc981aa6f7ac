package blobsvc

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	blobv1 "github.com/extagram/extagram/gen/extagram/blob/v1"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/internal/uploads"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// countingStore counts the reads of image records and image bytes.
type countingStore struct {
	store.Store
	infos, datas atomic.Int64
}

func (c *countingStore) ImageInfo(ctx context.Context, id contract.ID) (store.Image, error) {
	c.infos.Add(1)
	return c.Store.ImageInfo(ctx, id)
}

func (c *countingStore) ImageData(ctx context.Context, id contract.ID) (store.Image, []byte, error) {
	c.datas.Add(1)
	return c.Store.ImageData(ctx, id)
}

type fixture struct {
	client blobv1.BlobServiceClient
	st     *countingStore
	path   string // the image's file
	id     string
	data   []byte
}

// newFixture serves a BlobService over an in-memory listener, with one
// stored image of n random bytes whose file is in the folder.
func newFixture(t testing.TB, n int) *fixture {
	t.Helper()
	st := &countingStore{Store: storetest.Embedded(t)}
	dir, err := uploads.Open(filepath.Join(t.TempDir(), "uploads"))
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, n)
	_, _ = rand.Read(data)
	id := contract.NewID()
	_, err = st.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: "x",
		Image: &store.NewImage{ID: id, ContentType: "image/png", Width: 1, Height: 1, Data: data}})
	if err = cmp.Or(err, dir.Write(id, data)); err != nil {
		t.Fatal(err)
	}
	srv, err := New(st, dir, storetest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	cc := testutil.Bufconn(t, func(gs *grpc.Server) { blobv1.RegisterBlobServiceServer(gs, srv) })
	return &fixture{blobv1.NewBlobServiceClient(cc), st, filepath.Join(dir.Path(), id.String()), id.String(), data}
}

// read returns the bytes GetBlob streams from off, limit bytes at most (0:
// to the end), checking the metadata and the chunk sizes.
func (f *fixture) read(t testing.TB, off, limit int64) ([]byte, error) {
	t.Helper()
	s, err := f.client.GetBlob(t.Context(), &blobv1.GetBlobRequest{Id: f.id, ReadOffset: off, ReadLimit: limit})
	if err != nil {
		return nil, err
	}
	var out []byte
	for first := true; ; first = false {
		msg, err := s.Recv()
		switch {
		case err == io.EOF:
			return out, nil
		case err != nil:
			return nil, err
		case first && msg.GetMetadata().GetSizeBytes() != int64(len(f.data)):
			t.Fatalf("metadata %v", msg.GetMetadata())
		case len(msg.GetChunk()) > ChunkSize:
			t.Fatalf("a chunk of %d bytes", len(msg.GetChunk()))
		}
		out = append(out, msg.GetChunk()...)
	}
}

// TestServedFromTheVerifiedFile: the record is read from the database
// once, the file hashed once; later reads, whole or in ranges, only read
// the file. A file replaced by another (a new identity) is hashed again; a
// damaged one is answered from the database copy and rewritten.
func TestServedFromTheVerifiedFile(t *testing.T) {
	f := newFixture(t, 300<<10)
	n := int64(len(f.data))
	for _, c := range []struct{ off, limit, want int64 }{
		{0, 0, n}, {0, 0, n}, {0, 0, n}, {0, 10, 10}, {100 << 10, 70 << 10, 70 << 10}, {n - 5, 0, 5}, {n, 0, 0},
		{1, math.MaxInt64, n - 1}, // a limit that would overflow off+limit reads to the end
	} {
		got, err := f.read(t, c.off, c.limit)
		if err != nil || !bytes.Equal(got, f.data[c.off:c.off+c.want]) {
			t.Fatalf("range %d+%d: %d bytes, %v; want %d", c.off, c.limit, len(got), err, c.want)
		}
	}
	for off, want := range map[int64]codes.Code{n + 1: codes.OutOfRange, -1: codes.InvalidArgument} {
		if _, err := f.read(t, off, 0); status.Code(err) != want {
			t.Fatalf("offset %d: %v, want %v", off, err, want)
		}
	}
	if _, err := f.client.GetBlobMetadata(t.Context(), &blobv1.GetBlobMetadataRequest{Id: f.id}); err != nil {
		t.Fatal(err)
	}
	if infos, datas := f.st.infos.Load(), f.st.datas.Load(); infos != 1 || datas != 0 {
		t.Fatalf("database read %d records and %d image copies; want the record once, no copy", infos, datas)
	}

	// Damaged, of the same size, in a new file: another inode.
	damaged := bytes.Clone(f.data)
	damaged[len(damaged)/2] ^= 0xff
	if err := cmp.Or(os.Remove(f.path), os.WriteFile(f.path, damaged, 0o640)); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the rewritten file is known good: no further database reads
		if got, err := f.read(t, 0, 0); err != nil || !bytes.Equal(got, f.data) || f.st.datas.Load() != 1 {
			t.Fatalf("after the file was replaced: %d bytes, %v, %d database copies read; want the stored bytes, one copy",
				len(got), err, f.st.datas.Load())
		}
		if disk, err := os.ReadFile(f.path); err != nil || !bytes.Equal(disk, f.data) {
			t.Fatalf("file not rewritten: %v", err)
		}
	}
}

// BenchmarkGetBlob reads a verified 120 KB image whole, as the edge on a miss.
func BenchmarkGetBlob(b *testing.B) {
	f := newFixture(b, 120<<10)
	b.SetBytes(int64(len(f.data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.read(b, 0, 0); err != nil {
			b.Fatal(err)
		}
	}
}
