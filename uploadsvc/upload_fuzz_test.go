package uploadsvc

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"github.com/extagram/extagram/imaging"
	"github.com/extagram/extagram/internal/apierr"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/internal/uploads"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// fakeStream is a client stream in memory: Recv returns the messages of
// next in turn, then io.EOF, and counts the chunk bytes it handed out.
type fakeStream struct {
	ctx      context.Context
	next     func() *uploadv1.UploadRequest // nil: end of stream
	received int64
	resp     *uploadv1.UploadResponse
}

func (s *fakeStream) Recv() (*uploadv1.UploadRequest, error) {
	m := s.next()
	if m == nil {
		return nil, io.EOF
	}
	s.received += int64(len(m.GetChunk()))
	return m, nil
}

func (s *fakeStream) SendAndClose(r *uploadv1.UploadResponse) error { s.resp = r; return nil }
func (s *fakeStream) SetHeader(metadata.MD) error                   { return nil }
func (s *fakeStream) SendHeader(metadata.MD) error                  { return nil }
func (s *fakeStream) SetTrailer(metadata.MD)                        {}
func (s *fakeStream) Context() context.Context                      { return s.ctx }
func (s *fakeStream) SendMsg(any) error                             { return nil }
func (s *fakeStream) RecvMsg(any) error                             { return nil }

func messages(msgs ...*uploadv1.UploadRequest) func() *uploadv1.UploadRequest {
	return func() *uploadv1.UploadRequest {
		if len(msgs) == 0 {
			return nil
		}
		m := msgs[0]
		msgs = msgs[1:]
		return m
	}
}

func header(text string, photo *uploadv1.PhotoInfo) *uploadv1.UploadRequest {
	return &uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Header{Header: &uploadv1.UploadHeader{Text: text, Photo: photo}}}
}

func chunk(b []byte) *uploadv1.UploadRequest {
	return &uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Chunk{Chunk: b}}
}

func newServer(t testing.TB, limit int64) (*Server, store.Store, string) {
	t.Helper()
	st := storetest.Embedded(t)
	dir, err := uploads.Open(filepath.Join(t.TempDir(), "uploads"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(st, Options{MaxBytes: limit, Uploads: dir, Logger: storetest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return srv, st, dir.Path()
}

// TestReadsNoFurtherThanLimit: an endless photo is refused with the first
// chunk that crosses the limit; not a byte more is taken from the stream.
func TestReadsNoFurtherThanLimit(t *testing.T) {
	const limit = 1 << 20
	srv, _, _ := newServer(t, limit)
	buf := make([]byte, 64<<10)
	sent := false
	s := &fakeStream{ctx: t.Context(), next: func() *uploadv1.UploadRequest {
		if !sent {
			sent = true
			return header("endless", &uploadv1.PhotoInfo{})
		}
		return chunk(buf) // never ends
	}}
	err := srv.Upload(s)
	if status.Code(err) != codes.ResourceExhausted || apierr.UploadReason(err) != uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_TOO_LARGE {
		t.Fatalf("%v, want ResourceExhausted TOO_LARGE", err)
	}
	if s.received > limit+int64(len(buf)) {
		t.Fatalf("read %d bytes for a %d-byte limit", s.received, limit)
	}
	t.Logf("read %d bytes of an endless photo (limit %d)", s.received, limit)
}

// TestHugeDimensionsNotAllocated: a PNG declaring 100,000 x 100,000 pixels
// (40 GB decoded) is answered from its header, with a few kilobytes
// allocated for the whole call.
func TestHugeDimensionsNotAllocated(t *testing.T) {
	srv, _, _ := newServer(t, contract.DefaultMaxPhotoBytes)
	huge := testutil.HugePNG(100000, 100000)
	var err error
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 10 {
		err = srv.Upload(&fakeStream{ctx: t.Context(), next: messages(header("big", &uploadv1.PhotoInfo{}), chunk(huge))})
	}
	runtime.ReadMemStats(&after)
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "100000 x 100000") {
		t.Fatalf("%v, want ResourceExhausted naming the size", err)
	}
	perCall := (after.TotalAlloc - before.TotalAlloc) / 10
	t.Logf("%d bytes allocated per call", perCall)
	if perCall > 1<<20 {
		t.Fatalf("%d bytes allocated per call for a header-only refusal", perCall)
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

	const limit = 4 << 10
	srv, st, dir := newServer(f, limit)
	newest := func(t *testing.T) (int64, int) {
		ps, err := st.ListPosts(context.Background(), store.ListOptions{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == 0 {
			return 0, len(entries)
		}
		return ps[0].Key, len(entries)
	}
	f.Fuzz(func(t *testing.T, text, fileName string, photo []byte, withPhoto bool, chunkSize uint16) {
		keyBefore, filesBefore := newest(t)
		msgs := []*uploadv1.UploadRequest{header(text, nil)}
		if withPhoto {
			msgs[0] = header(text, &uploadv1.PhotoInfo{FileName: fileName, ContentType: "image/png"})
			n := max(1, int(chunkSize))
			for rest := photo; len(rest) > 0; {
				k := min(n, len(rest))
				msgs = append(msgs, chunk(rest[:k]))
				rest = rest[k:]
			}
		}
		s := &fakeStream{ctx: context.Background(), next: messages(msgs...)}
		err := srv.Upload(s)
		keyAfter, filesAfter := newest(t)
		switch status.Code(err) {
		case codes.OK:
		case codes.InvalidArgument, codes.ResourceExhausted:
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
		post := s.resp.GetPost()
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
		if ierr != nil {
			t.Fatalf("accepted a photo Inspect refuses: %v", ierr)
		}
		id, perr := contract.ParseID(post.GetImage().GetId())
		if perr != nil {
			t.Fatal(perr)
		}
		_, data, derr := st.ImageData(context.Background(), id)
		if derr != nil || !bytes.Equal(data, res.Data) {
			t.Fatalf("stored image differs from the cleaned photo: %v", derr)
		}
		disk, ferr := os.ReadFile(filepath.Join(dir, id.String()))
		if ferr != nil || !bytes.Equal(disk, data) || filesAfter != filesBefore+1 {
			t.Fatalf("file copy: %v, %d files -> %d", ferr, filesBefore, filesAfter)
		}
	})
}
