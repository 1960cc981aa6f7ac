package imaging

import (
	"image"
	"math/rand/v2"
	"testing"
)

// BenchmarkInspectJPEG measures Inspect on a photo-sized upload: a noisy
// 1.0 MB baseline JPEG carrying EXIF (with GPS), XMP and an ICC profile.
// The cost is one pass over the bytes (the entropy-coded data is scanned
// for markers with bytes.IndexByte) and one copy.
func BenchmarkInspectJPEG(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	const w, h, noise = 1280, 960, 110
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(m.Pix); i += 4 {
		x, y := i/4%w, i/4/w
		m.Pix[i] = uint8(x/4) + uint8(rng.IntN(noise))
		m.Pix[i+1] = uint8(y/3) + uint8(rng.IntN(noise))
		m.Pix[i+2] = uint8((x+y)/7) + uint8(rng.IntN(noise))
		m.Pix[i+3] = 255
	}
	data := jpegWithMetadata(b, encJPEG(b, m, 92), 6)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.Logf("input %d bytes", len(data))
	for b.Loop() {
		if _, err := Inspect(data, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}
