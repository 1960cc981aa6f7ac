package blobsvc

import (
	"bytes"
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
	dir    *uploads.Dir
	id     contract.ID
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
	post, err := st.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: "x",
		Image: &store.NewImage{ID: contract.NewID(), ContentType: "image/png", Width: 1, Height: 1, Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.Write(post.Image.ID, data); err != nil {
		t.Fatal(err)
	}
	srv, err := New(st, dir, storetest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	cc := testutil.Bufconn(t, func(gs *grpc.Server) { blobv1.RegisterBlobServiceServer(gs, srv) })
	return &fixture{client: blobv1.NewBlobServiceClient(cc), st: st, dir: dir, id: post.Image.ID, data: data}
}

// read returns the bytes GetBlob streams for req.
func (f *fixture) read(t testing.TB, req *blobv1.GetBlobRequest) ([]byte, error) {
	t.Helper()
	s, err := f.client.GetBlob(t.Context(), req)
	if err != nil {
		return nil, err
	}
	first, err := s.Recv()
	if err != nil {
		return nil, err
	}
	if first.GetMetadata().GetSizeBytes() != int64(len(f.data)) {
		t.Fatalf("metadata %v", first.GetMetadata())
	}
	var out []byte
	for {
		msg, err := s.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(msg.GetChunk()) > ChunkSize {
			t.Fatalf("a chunk of %d bytes", len(msg.GetChunk()))
		}
		out = append(out, msg.GetChunk()...)
	}
}

// TestVerifiedOnceThenServedFromTheFile: the record is read from the
// database once, the file hashed once; later reads, whole or in ranges,
// only read the file.
func TestVerifiedOnceThenServedFromTheFile(t *testing.T) {
	f := newFixture(t, 300<<10)
	id := f.id.String()
	for range 3 {
		got, err := f.read(t, &blobv1.GetBlobRequest{Id: id})
		if err != nil || !bytes.Equal(got, f.data) {
			t.Fatalf("GetBlob: %d bytes, %v", len(got), err)
		}
	}
	for _, c := range []struct{ off, limit, want int64 }{
		{0, 10, 10},
		{100 << 10, 70 << 10, 70 << 10},
		{int64(len(f.data)) - 5, 0, 5},
		{int64(len(f.data)), 0, 0},
		// A limit that would overflow off+limit reads to the end.
		{1, math.MaxInt64, int64(len(f.data)) - 1},
	} {
		got, err := f.read(t, &blobv1.GetBlobRequest{Id: id, ReadOffset: c.off, ReadLimit: c.limit})
		if err != nil || int64(len(got)) != c.want || !bytes.Equal(got, f.data[c.off:c.off+c.want]) {
			t.Fatalf("range %d+%d: %d bytes, %v; want %d", c.off, c.limit, len(got), err, c.want)
		}
	}
	if _, err := f.read(t, &blobv1.GetBlobRequest{Id: id, ReadOffset: int64(len(f.data)) + 1}); status.Code(err) != codes.OutOfRange {
		t.Fatalf("offset past the end: %v, want OutOfRange", err)
	}
	if _, err := f.read(t, &blobv1.GetBlobRequest{Id: id, ReadOffset: -1}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("negative offset: %v, want InvalidArgument", err)
	}
	if _, err := f.client.GetBlobMetadata(t.Context(), &blobv1.GetBlobMetadataRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	if infos, datas := f.st.infos.Load(), f.st.datas.Load(); infos != 1 || datas != 0 {
		t.Fatalf("database read %d records and %d image copies; want the record once, no copy", infos, datas)
	}
}

// TestReplacedFileIsVerifiedAgain: a file replaced by another (a new
// identity) is hashed again; a damaged one is answered from the database
// copy and rewritten.
func TestReplacedFileIsVerifiedAgain(t *testing.T) {
	f := newFixture(t, 100<<10)
	id := f.id.String()
	if _, err := f.read(t, &blobv1.GetBlobRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(f.dir.Path(), id)
	damaged := bytes.Clone(f.data)
	damaged[len(damaged)/2] ^= 0xff
	// Same size, a new file: another inode.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, damaged, 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := f.read(t, &blobv1.GetBlobRequest{Id: id})
	if err != nil || !bytes.Equal(got, f.data) {
		t.Fatalf("after the file was replaced: %d bytes, %v; want the stored bytes", len(got), err)
	}
	if f.st.datas.Load() != 1 {
		t.Fatalf("database copy read %d times, want once", f.st.datas.Load())
	}
	if disk, err := os.ReadFile(path); err != nil || !bytes.Equal(disk, f.data) {
		t.Fatalf("file not rewritten: %v", err)
	}
	// The rewritten file is known good: no further database reads.
	if _, err := f.read(t, &blobv1.GetBlobRequest{Id: id}); err != nil || f.st.datas.Load() != 1 {
		t.Fatalf("read after the repair: %v, %d copies read", err, f.st.datas.Load())
	}
}

// BenchmarkGetBlob reads a verified 120 KB image whole, as the edge does
// on a cache miss.
func BenchmarkGetBlob(b *testing.B) {
	f := newFixture(b, 120<<10)
	req := &blobv1.GetBlobRequest{Id: f.id.String()}
	b.SetBytes(int64(len(f.data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.read(b, req); err != nil {
			b.Fatal(err)
		}
	}
}
