package uploadsvc

import (
	"context"
	"testing"
	"time"

	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"github.com/extagram/extagram/internal/testutil"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestIdleUploadRefused: a client that opens an upload and then sends
// nothing is refused after Idle, and one that keeps sending past
// MaxDuration is refused then.
func TestIdleUploadRefused(t *testing.T) {
	srv, _, _ := newServer(t, 1<<20)
	srv.opts.Idle, srv.opts.MaxDuration = 50*time.Millisecond, time.Minute
	stall := make(chan struct{})
	defer close(stall)
	sent := false
	s := &fakeStream{ctx: t.Context(), next: func() *uploadv1.UploadRequest {
		if !sent {
			sent = true
			return header("then nothing", &uploadv1.PhotoInfo{})
		}
		<-stall
		return nil
	}}
	if err := srv.Upload(s); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("an upload that stalls: %v, want DeadlineExceeded", err)
	}

	srv.opts.Idle, srv.opts.MaxDuration = time.Minute, 100*time.Millisecond
	sent = false
	trickle := &fakeStream{ctx: t.Context(), next: func() *uploadv1.UploadRequest {
		if !sent {
			sent = true
			return header("slowly", &uploadv1.PhotoInfo{})
		}
		time.Sleep(20 * time.Millisecond)
		return chunk([]byte{0})
	}}
	if err := srv.Upload(trickle); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("an upload that trickles forever: %v, want DeadlineExceeded", err)
	}
}

// TestPhotoMemoryBudget: buffers are paid for, twice their size, from the
// budget; a buffer waits for room; a large photo takes the buffer of the
// limit once, not doublings.
func TestPhotoMemoryBudget(t *testing.T) {
	const limit = 1 << 20
	budget := semaphore.NewWeighted(4 * limit)
	a := &photoBuffer{memory: budget, limit: limit}
	b := &photoBuffer{memory: budget, limit: limit}
	for _, pb := range []*photoBuffer{a, b} {
		if err := pb.grow(t.Context(), limit); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	c := &photoBuffer{memory: budget, limit: limit}
	if err := c.grow(ctx, startBuffer); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a buffer past the budget: %v, want to wait until DeadlineExceeded", err)
	}
	a.release()
	if err := c.grow(t.Context(), startBuffer); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	if c.held != 2*startBuffer || cap(c.buf) != startBuffer {
		t.Fatalf("held %d, capacity %d", c.held, cap(c.buf))
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

// TestManyIdleStreams: 500 upload streams opened straight to the service
// and never sent a byte are all ended after Idle, and hold nothing after.
func TestManyIdleStreams(t *testing.T) {
	srv, _, _ := newServer(t, 1<<20)
	srv.opts.Idle = 300 * time.Millisecond
	client := uploadv1.NewUploadServiceClient(testutil.Bufconn(t, func(gs *grpc.Server) { uploadv1.RegisterUploadServiceServer(gs, srv) }))
	const n = 500
	errs := make(chan error, n)
	for i := range n {
		stream, err := client.Upload(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			if i%2 == 1 {
				// Half send their header and then nothing.
				_ = stream.Send(header("idle", &uploadv1.PhotoInfo{}))
			}
			// Never closed: wait for the service's answer.
			errs <- stream.RecvMsg(new(uploadv1.UploadResponse))
		}()
	}
	start := time.Now()
	for range n {
		select {
		case err := <-errs:
			if status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("an idle stream ended with %v, want DeadlineExceeded", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("idle streams still open after 10s")
		}
	}
	t.Logf("%d idle streams ended within %v", n, time.Since(start).Round(time.Millisecond))
}
