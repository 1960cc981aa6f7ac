package imaging

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/extagram/extagram/internal/testutil"
)

// FuzzInspect checks Inspect's contract on arbitrary bytes: no panic, the
// input left untouched, a refusal as checkRefused wants it for any kind and
// message, and an accepted file as checkCleaned wants it.
func FuzzInspect(f *testing.F) {
	for _, fx := range fixtures(f) {
		f.Add(fx.data)
	}
	html := []byte("<html><script>alert(1)</script></html>")
	f.Add([]byte{})
	f.Add(html)
	f.Add(cat([]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00"), html))
	f.Add(testutil.HugePNG(100000, 100000))
	f.Add(jpegHeader(65535, 65535))
	f.Add(riff(vp8x(0x3C, 1<<24, 1<<24)))
	f.Add(insert(encJPEG(f, testImage(8, 8), 50), 2, jpegSeg(mAPP1, []byte("Exif\x00\x00"), testTIFF(binary.BigEndian, 6))))
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		r, err := Inspect(data, DefaultLimits())
		if !bytes.Equal(in, data) {
			t.Fatal("Inspect modified its input")
		}
		if err != nil {
			checkRefused(t, r, err, nil, "")
		} else {
			checkCleaned(t, data, r)
		}
	})
}
