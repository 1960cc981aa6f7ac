package imaging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"slices"
	"testing"

	"github.com/extagram/extagram/internal/testutil"
)

// FuzzInspect checks Inspect's contract on arbitrary bytes: no panic, the
// input left untouched, an error never accompanied by data and always one
// of the four kinds, and an accepted file cleaned for good: within the
// limits, re-inspecting to the same type, size and bytes with nothing more
// to remove, and read at the same size by the standard decoders whenever
// they can read its header at all.
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

	// image.DecodeConfig reads the four formats: helpers_test.go imports their decoders.
	lim := DefaultLimits()
	kinds := []error{ErrUnsupported, ErrMalformed, ErrTooLarge}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		r, err := Inspect(data, lim)
		if !bytes.Equal(in, data) {
			t.Fatal("Inspect modified its input")
		}
		if err != nil {
			var e *Error
			if r.Data != nil || r.ContentType != "" || r.Removed != nil {
				t.Fatalf("error %q came with a result", err)
			}
			if !errors.As(err, &e) || e.Msg == "" || !slices.ContainsFunc(kinds, func(k error) bool { return errors.Is(err, k) }) {
				t.Fatalf("error %#v is not a typed Inspect error", err)
			}
			return
		}
		switch r.ContentType {
		case TypeJPEG, TypePNG, TypeGIF, TypeWebP:
		default:
			t.Fatalf("content type %q", r.ContentType)
		}
		if r.Width < 1 || r.Height < 1 || r.Width > lim.MaxSide || r.Height > lim.MaxSide ||
			int64(r.Width)*int64(r.Height) > lim.MaxPixels {
			t.Fatalf("accepted %dx%d", r.Width, r.Height)
		}
		if r.Orientation < 1 || r.Orientation > 8 {
			t.Fatalf("orientation %d", r.Orientation)
		}
		if len(r.Data) > 0 && len(data) > 0 && &r.Data[0] == &data[0] {
			t.Fatal("Data aliases the input")
		}
		r2, err := Inspect(r.Data, lim)
		if err != nil {
			t.Fatalf("the cleaned file is refused: %v", err)
		}
		if r2.ContentType != r.ContentType || r2.Width != r.Width || r2.Height != r.Height || r2.Orientation != r.Orientation {
			t.Fatalf("re-inspected as %s %dx%d o%d, first %s %dx%d o%d",
				r2.ContentType, r2.Width, r2.Height, r2.Orientation, r.ContentType, r.Width, r.Height, r.Orientation)
		}
		if !bytes.Equal(r2.Data, r.Data) || len(r2.Removed) != 0 {
			t.Fatalf("cleaning is not idempotent: second pass removed %q", r2.Removed)
		}
		if c, format, err := image.DecodeConfig(bytes.NewReader(r.Data)); err == nil {
			if "image/"+format != r.ContentType || c.Width != r.Width || c.Height != r.Height {
				t.Fatalf("the standard decoder reads %s %dx%d, Inspect %s %dx%d",
					format, c.Width, c.Height, r.ContentType, r.Width, r.Height)
			}
		}
	})
}
