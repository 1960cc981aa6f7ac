package uploadsvc

import (
	"bytes"
	"cmp"
	"context"
	"image"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"github.com/extagram/extagram/imaging"
	"github.com/extagram/extagram/internal/apierr"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/internal/uploads"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// service is an UploadService on the embedded store, over bufconn.
type service struct {
	client   uploadv1.UploadServiceClient
	st       store.Store
	dir      string
	received atomic.Int64 // photo bytes the service took from its streams
}

func newService(t testing.TB, opts Options) *service {
	t.Helper()
	s := &service{st: storetest.Embedded(t)}
	dir, err := uploads.Open(filepath.Join(t.TempDir(), "uploads"))
	if err != nil {
		t.Fatal(err)
	}
	opts.Uploads, opts.Logger, s.dir = dir, storetest.Logger(t), dir.Path()
	srv, err := New(s.st, opts)
	if err != nil {
		t.Fatal(err)
	}
	count := grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return h(srv, countingStream{ss, &s.received})
	})
	s.client = uploadv1.NewUploadServiceClient(testutil.Bufconn(t, func(gs *grpc.Server) {
		uploadv1.RegisterUploadServiceServer(gs, srv)
	}, count))
	return s
}

type countingStream struct {
	grpc.ServerStream
	n *atomic.Int64
}

func (c countingStream) RecvMsg(m any) error {
	err := c.ServerStream.RecvMsg(m)
	if err == nil {
		c.n.Add(int64(len(m.(*uploadv1.UploadRequest).GetChunk())))
	}
	return err
}

// upload sends the header, then the photo in chunks of n bytes, and
// returns the answer.
func (s *service) upload(ctx context.Context, hdr *uploadv1.UploadRequest, photo []byte, n int,
) (*uploadv1.UploadResponse, error) {
	stream, err := s.client.Upload(ctx)
	if err != nil {
		return nil, err
	}
	err = stream.Send(hdr)
	for rest := photo; len(rest) > 0 && err == nil; rest = rest[min(n, len(rest)):] {
		err = stream.Send(chunk(rest[:min(n, len(rest))]))
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	// io.EOF from Send: the service answered, CloseAndRecv says what.
	return stream.CloseAndRecv()
}

func chunk(b []byte) *uploadv1.UploadRequest {
	return &uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Chunk{Chunk: b}}
}

func header(text string, photo *uploadv1.PhotoInfo) *uploadv1.UploadRequest {
	return &uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Header{Header: &uploadv1.UploadHeader{Text: text, Photo: photo}}}
}

// TestRefusedUnread: a photo of four times the limit is refused with the
// first chunk that crosses the limit, not a byte more taken from the
// stream; a PNG declaring 100,000 x 100,000 pixels (40 GB decoded) is
// refused from its header, with well under a megabyte allocated per call.
func TestRefusedUnread(t *testing.T) {
	const limit, chunkSize = 1 << 20, 64 << 10
	s := newService(t, Options{MaxBytes: limit})
	_, err := s.upload(t.Context(), header("too big", &uploadv1.PhotoInfo{}), make([]byte, 4*limit), chunkSize)
	if status.Code(err) != codes.ResourceExhausted ||
		apierr.UploadReason(err) != uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_TOO_LARGE {
		t.Fatalf("%v, want ResourceExhausted TOO_LARGE", err)
	}
	if n := s.received.Load(); n > limit+chunkSize {
		t.Fatalf("read %d bytes for a %d-byte limit", n, limit)
	}

	huge := testutil.HugePNG(100000, 100000)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 10 {
		_, err = s.upload(t.Context(), header("big", &uploadv1.PhotoInfo{}), huge, len(huge))
	}
	runtime.ReadMemStats(&after)
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "100000 x 100000") {
		t.Fatalf("%v, want ResourceExhausted naming the size", err)
	}
	if perCall := (after.TotalAlloc - before.TotalAlloc) / 10; perCall > 1<<20 {
		t.Fatalf("%d bytes allocated per call for a header-only refusal", perCall)
	}
}

// TestIdleAndSlowUploadsEnd: 500 streams that send nothing, or only their
// header, are ended after Idle; one that keeps sending a byte now and then
// is ended after MaxDuration. Each limit has its own service, the other
// limit an hour, so that a loaded machine cannot make one pass for the other.
func TestIdleAndSlowUploadsEnd(t *testing.T) {
	idle := newService(t, Options{Idle: 300 * time.Millisecond, MaxDuration: time.Hour})
	slow := newService(t, Options{Idle: time.Hour, MaxDuration: 600 * time.Millisecond})
	const n = 500
	errs := make(chan error, n)
	for i := range n {
		stream, err := idle.client.Upload(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			if i%2 == 1 {
				_ = stream.Send(header("idle", &uploadv1.PhotoInfo{}))
			}
			// Never closed: wait for the service's answer.
			errs <- stream.RecvMsg(new(uploadv1.UploadResponse))
		}()
	}
	trickle, err := slow.client.Upload(t.Context())
	if err == nil {
		err = trickle.Send(header("slowly", &uploadv1.PhotoInfo{}))
	}
	for err == nil {
		time.Sleep(20 * time.Millisecond)
		err = trickle.Send(chunk([]byte{0}))
	}
	if _, err := trickle.CloseAndRecv(); status.Code(err) != codes.DeadlineExceeded ||
		!strings.Contains(err.Error(), "took too long") {
		t.Fatalf("an upload that trickles forever: %v, want DeadlineExceeded", err)
	}
	for range n {
		if err := <-errs; status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "sent nothing") {
			t.Fatalf("an idle stream ended with %v, want DeadlineExceeded", err)
		}
	}
}

// TestPhotoMemoryBudget: buffers are paid for, twice their size, from the
// budget; a buffer waits for room; a large photo takes the buffer of the
// limit once, not doublings.
func TestPhotoMemoryBudget(t *testing.T) {
	const limit = 1 << 20
	budget := semaphore.NewWeighted(4 * limit)
	a, b, c := &photoBuffer{memory: budget, limit: limit}, &photoBuffer{memory: budget, limit: limit},
		&photoBuffer{memory: budget, limit: limit}
	if err := cmp.Or(a.grow(t.Context(), limit), b.grow(t.Context(), limit)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := c.grow(ctx, startBuffer); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a buffer past the budget: %v, want to wait until DeadlineExceeded", err)
	}
	a.release()
	if err := c.grow(t.Context(), startBuffer); err != nil || c.held != 2*startBuffer || cap(c.buf) != startBuffer {
		t.Fatalf("after a release: %v, held %d, capacity %d", err, c.held, cap(c.buf))
	}
	c.buf = append(c.buf, make([]byte, startBuffer)...)
	b.release()
	if err := c.grow(t.Context(), limit); err != nil || cap(c.buf) != limit || len(c.buf) != startBuffer || c.held != 2*limit {
		t.Fatalf("growing to the limit: %v, cap %d, len %d, held %d", err, cap(c.buf), len(c.buf), c.held)
	}
	c.release()
	if !budget.TryAcquire(4 * limit) {
		t.Fatal("the budget did not get everything back")
	}
}

// FuzzUpload drives UploadService with fuzzed headers and photos, in
// chunks of fuzzed size. It must never panic nor answer anything but OK,
// InvalidArgument or ResourceExhausted; a refused upload stores nothing;
// an accepted one is stored whole (post, image, file) as Inspect cleaned it.
func FuzzUpload(f *testing.F) {
	p := testutil.PNG(f, 6, 4)
	f.Add("hello", "a.png", p, true, uint16(100))
	f.Add("  text only  ", "", []byte(nil), false, uint16(1))
	f.Add("x", "../../etc/passwd", testutil.GIF(f, 3, 3), true, uint16(7))
	f.Add("x", "a.png", p[:len(p)-5], true, uint16(64))
	f.Add("", "a.png", p, true, uint16(100))
	f.Add("x", "a\x00.png", p, true, uint16(100))
	f.Add("x", "a.jpg", []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), true, uint16(3))
	f.Add("x", "a.svg", []byte("<svg xmlns='http://www.w3.org/2000/svg'/>"), true, uint16(1000))
	f.Add("x", "big.png", bytes.Repeat(p, 20), true, uint16(512))

	s := newService(f, Options{MaxBytes: 4 << 10})
	newest := func(t *testing.T) (key int64, files int) { // the newest post's key and the files in the folder
		ps, err := s.st.ListPosts(t.Context(), store.ListOptions{Limit: 1})
		entries, err2 := os.ReadDir(s.dir)
		if err = cmp.Or(err, err2); err != nil {
			t.Fatal(err)
		}
		if len(ps) > 0 {
			key = ps[0].Key
		}
		return key, len(entries)
	}
	f.Fuzz(func(t *testing.T, text, fileName string, photo []byte, withPhoto bool, chunkSize uint16) {
		keyBefore, filesBefore := newest(t)
		hdr := header(text, nil)
		if withPhoto {
			hdr = header(text, &uploadv1.PhotoInfo{FileName: fileName, ContentType: "image/png"})
		} else {
			photo = nil
		}
		resp, err := s.upload(t.Context(), hdr, photo, max(1, int(chunkSize)))
		keyAfter, filesAfter := newest(t)
		// gRPC cannot send a string that is not UTF-8: the client refuses
		// to marshal it (Internal), and a server would refuse it too.
		notUTF8 := !utf8.ValidString(text) || withPhoto && !utf8.ValidString(fileName)
		switch code := status.Code(err); {
		case code == codes.OK && !notUTF8:
		case code == codes.InvalidArgument, code == codes.ResourceExhausted, code == codes.Internal && notUTF8:
			if keyAfter != keyBefore || filesAfter != filesBefore {
				t.Fatalf("refused (%v) but stored something", err)
			}
			return
		default:
			t.Fatalf("unexpected answer %v", err)
		}
		want, terr := contract.CheckText(text)
		if terr != nil {
			t.Fatalf("accepted text %q that CheckText refuses: %v", text, terr)
		}
		post := resp.GetPost()
		if post.GetText() != want || keyAfter == keyBefore {
			t.Fatalf("accepted, but stored %q (want %q), key %d -> %d", post.GetText(), want, keyBefore, keyAfter)
		}
		if !withPhoto {
			if post.GetImage() != nil || filesAfter != filesBefore {
				t.Fatal("a text-only post got an image")
			}
			return
		}
		res, ierr := imaging.Inspect(photo, imaging.Limits{})
		id, perr := contract.ParseID(post.GetImage().GetId())
		if err := cmp.Or(ierr, perr); err != nil {
			t.Fatalf("accepted a photo Inspect refuses, or answered a bad id: %v", err)
		}
		_, data, derr := s.st.ImageData(t.Context(), id)
		if derr != nil || !bytes.Equal(data, res.Data) {
			t.Fatalf("stored image differs from the cleaned photo: %v", derr)
		}
		disk, ferr := os.ReadFile(filepath.Join(s.dir, id.String()))
		if ferr != nil || !bytes.Equal(disk, data) || filesAfter != filesBefore+1 {
			t.Fatalf("file copy: %v, %d files -> %d", ferr, filesBefore, filesAfter)
		}
	})
}

// BenchmarkUpload runs the whole upload path on the embedded store: a
// 120 KB PNG sent in 64 KiB chunks over gRPC, its type decided from the
// bytes, metadata stripped, the transaction with the BLOB, the file copy.
func BenchmarkUpload(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	img := image.NewNRGBA(image.Rect(0, 0, 200, 200))
	for i := range img.Pix {
		img.Pix[i] = uint8(max(rng.IntN(256), i%4/3*255)) // opaque: every fourth byte is 255
	}
	photo := testutil.EncodePNG(b, img)
	s := newService(b, Options{})
	b.SetBytes(int64(len(photo)))
	b.ReportAllocs()
	for b.Loop() {
		hdr := header("benchmark", &uploadv1.PhotoInfo{FileName: "a.png", ContentType: "image/png"})
		if _, err := s.upload(b.Context(), hdr, photo, 64<<10); err != nil {
			b.Fatal(err)
		}
	}
}
