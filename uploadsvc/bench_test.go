package uploadsvc

import (
	"image"
	"math/rand/v2"
	"testing"

	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"github.com/extagram/extagram/internal/testutil"
)

// BenchmarkUpload runs the service's whole upload path on the embedded
// store: receiving a 120 KB PNG in 64 KiB chunks, deciding its type from
// the bytes, stripping metadata, the transaction with the BLOB, and the
// file copy.
func BenchmarkUpload(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	img := image.NewNRGBA(image.Rect(0, 0, 200, 200))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	photo := testutil.EncodePNG(b, img)
	srv, _, _ := newServer(b, 0)
	b.SetBytes(int64(len(photo)))
	b.ReportAllocs()
	for b.Loop() {
		msgs := []*uploadv1.UploadRequest{header("benchmark", &uploadv1.PhotoInfo{FileName: "a.png", ContentType: "image/png"})}
		for p := 0; p < len(photo); p += 64 << 10 {
			msgs = append(msgs, chunk(photo[p:min(p+64<<10, len(photo))]))
		}
		s := &fakeStream{ctx: b.Context(), next: messages(msgs...)}
		if err := srv.Upload(s); err != nil {
			b.Fatal(err)
		}
	}
}
