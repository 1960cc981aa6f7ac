package imaging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/extagram/extagram/internal/testutil"
	"golang.org/x/image/webp"
)

// testImage is a deterministic picture with detail in every channel, so a
// decoder that dropped or misread data would not produce the same pixels.
func testImage(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.Set(x, y, color.NRGBA{uint8(x * 7), uint8(y * 13), uint8(x*y + 5), uint8(255 - (x+y)%64)})
		}
	}
	return m
}

func encJPEG(t testing.TB, m image.Image, q int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encPNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var testPalette = color.Palette{
	color.RGBA{0, 0, 0, 255}, color.RGBA{255, 255, 255, 255},
	color.RGBA{200, 30, 30, 255}, color.RGBA{30, 30, 200, 255},
}

// encGIF makes an animated GIF of n frames that loops forever, so the
// encoder writes a NETSCAPE2.0 extension.
func encGIF(t testing.TB, w, h, n int) []byte {
	t.Helper()
	g := &gif.GIF{LoopCount: 0}
	for i := range n {
		p := image.NewPaletted(image.Rect(0, 0, w, h), testPalette)
		for j := range p.Pix {
			p.Pix[j] = uint8((j/3 + i) % len(testPalette))
		}
		g.Image = append(g.Image, p)
		g.Delay = append(g.Delay, 5)
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, g); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

type jpegSegment struct {
	marker  byte
	payload []byte
}

// jpegHeaderSegments lists the segments before the first scan, the part
// of a JPEG where metadata can live (entropy-coded data is not walked).
func jpegHeaderSegments(t testing.TB, b []byte) []jpegSegment {
	t.Helper()
	var segs []jpegSegment
	pos := 2
	for pos+4 <= len(b) && b[pos] == 0xFF {
		m := b[pos+1]
		n := int(b[pos+2])<<8 | int(b[pos+3])
		segs = append(segs, jpegSegment{m, b[pos+4 : pos+2+n]})
		if m == mSOS {
			return segs
		}
		pos += 2 + n
	}
	t.Fatalf("no scan found in the cleaned JPEG")
	return nil
}

// The metadata fixtures are testutil's, shared with the end-to-end tests.
var (
	jpegSeg         = testutil.JPEGSegment
	jpegInsert      = testutil.JPEGInsert
	pngInsert       = testutil.PNGInsert
	testTIFF        = testutil.TIFF
	assertNoSecrets = testutil.NoSecrets
)

const testXMP = testutil.XMP

// pngChunkT builds a chunk.
func pngChunkT(typ string, body ...[]byte) []byte { return pngChunk(typ, cat(body...)) }

// pngChunkTypes lists the chunk types of a PNG in order.
func pngChunkTypes(b []byte) []string {
	var ts []string
	for pos := 8; pos+12 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[pos:]))
		ts = append(ts, string(b[pos+4:pos+8]))
		pos += 12 + n
	}
	return ts
}

func pngChunkBody(b []byte, typ string) []byte {
	for pos := 8; pos+12 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[pos:]))
		if string(b[pos+4:pos+8]) == typ {
			return b[pos+8 : pos+8+n]
		}
		pos += 12 + n
	}
	return nil
}

// inspectOK runs Inspect and fails the test on error.
func inspectOK(t *testing.T, b []byte) Result {
	t.Helper()
	r, err := Inspect(b, DefaultLimits())
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	return r
}

// wantErr checks that err matches kind and that no data came with it.
func wantErr(t *testing.T, r Result, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("got error %v, want %v", err, kind)
	}
	if r.Data != nil || r.ContentType != "" {
		t.Fatalf("an error came with a result: %+v", r)
	}
}

// malformedCase is input Inspect must refuse as malformed, with the
// message it must give.
type malformedCase struct {
	name string
	data []byte
	msg  string
}

// checkMalformed checks that each case is refused as malformed, naming its
// format, with exactly its message (or one that starts with it, unless
// exact).
func checkMalformed(t *testing.T, exact bool, cases []malformedCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Inspect(tt.data, Limits{})
			wantErr(t, r, err, ErrMalformed)
			if msg := err.Error(); msg != tt.msg && (exact || !strings.HasPrefix(msg, tt.msg)) {
				t.Fatalf("message %q, want %q", err, tt.msg)
			}
			var e *Error
			if !errors.As(err, &e) || e.Format == "" {
				t.Fatalf("no format in %#v", err)
			}
		})
	}
}

// decode decodes with the standard library (and x/image for WebP); the
// result for a cleaned file must equal the original's.
func decode(t *testing.T, contentType string, b []byte) image.Image {
	t.Helper()
	var (
		m   image.Image
		err error
	)
	switch contentType {
	case TypeJPEG:
		m, err = jpeg.Decode(bytes.NewReader(b))
	case TypePNG:
		m, err = png.Decode(bytes.NewReader(b))
	case TypeGIF:
		m, err = gif.Decode(bytes.NewReader(b))
	case TypeWebP:
		m, err = webp.Decode(bytes.NewReader(b))
	default:
		t.Fatalf("no decoder for %q", contentType)
	}
	if err != nil {
		t.Fatalf("decoding %s: %v", contentType, err)
	}
	return m
}

func samePixels(t *testing.T, a, b image.Image) {
	t.Helper()
	if a.Bounds() != b.Bounds() {
		t.Fatalf("bounds %v != %v", a.Bounds(), b.Bounds())
	}
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if color.NRGBA64Model.Convert(a.At(x, y)) != color.NRGBA64Model.Convert(b.At(x, y)) {
				t.Fatalf("pixel (%d,%d) differs: %v != %v", x, y, a.At(x, y), b.At(x, y))
			}
		}
	}
}

// bitWriter writes the LSB-first bit stream of VP8L.
type bitWriter struct {
	buf []byte
	acc uint64
	n   uint
}

func (w *bitWriter) write(v uint64, n uint) {
	w.acc |= v << w.n
	w.n += n
	for w.n >= 8 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc >>= 8
		w.n -= 8
	}
}

func (w *bitWriter) bytes() []byte {
	if w.n > 0 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc, w.n = 0, 0
	}
	return w.buf
}

// vp8lChecker encodes a w x h lossless WebP bitstream by hand: no
// transforms, no colour cache, and "simple" prefix codes: green has two
// symbols (one bit per pixel, a checkerboard), red, blue and alpha one each
// (no bits). Real encoders do far more; decoders must accept this.
func vp8lChecker(w, h int) []byte {
	var bw bitWriter
	bw.write(0x2F, 8)
	bw.write(uint64(w-1), 14)
	bw.write(uint64(h-1), 14)
	bw.write(0, 1) // alpha not used
	bw.write(0, 3) // version 0
	bw.write(0, 1) // no transform
	bw.write(0, 1) // no colour cache
	bw.write(0, 1) // no meta prefix codes
	bw.write(1, 1) // green: simple code,
	bw.write(1, 1) // two symbols,
	bw.write(1, 1) // the first written with 8 bits
	bw.write(0x20, 8)
	bw.write(0xC0, 8)
	for _, v := range []uint64{0x40, 0x80, 0xFF} { // red, blue, alpha
		bw.write(1, 1)
		bw.write(0, 1)
		bw.write(1, 1)
		bw.write(v, 8)
	}
	bw.write(1, 1) // distance: simple, one symbol, 1-bit symbol 0
	bw.write(0, 1)
	bw.write(0, 1)
	bw.write(0, 1)
	for y := range h {
		for x := range w {
			bw.write(uint64((x+y)&1), 1)
		}
	}
	return bw.bytes()
}

type webpChunkT struct {
	id   string
	data []byte
}

// riff wraps chunks in a WebP RIFF container, padding odd chunks.
func riff(chunks ...webpChunkT) []byte {
	var body []byte
	for _, c := range chunks {
		body = append(body, c.id...)
		body = binary.LittleEndian.AppendUint32(body, uint32(len(c.data)))
		body = append(body, c.data...)
		if len(c.data)%2 == 1 {
			body = append(body, 0)
		}
	}
	out := []byte("RIFF")
	out = binary.LittleEndian.AppendUint32(out, uint32(4+len(body)))
	out = append(out, "WEBP"...)
	return append(out, body...)
}

func vp8x(flags byte, w, h int) webpChunkT {
	d := make([]byte, 10)
	d[0] = flags
	d[4], d[5], d[6] = byte(w-1), byte((w-1)>>8), byte((w-1)>>16)
	d[7], d[8], d[9] = byte(h-1), byte((h-1)>>8), byte((h-1)>>16)
	return webpChunkT{"VP8X", d}
}

// webpChunkList lists the top-level chunk ids of a WebP file.
func webpChunkList(b []byte) []string {
	var ids []string
	for pos := 12; pos+8 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[pos+4:]))
		ids = append(ids, string(b[pos:pos+4]))
		pos += 8 + n + n&1
	}
	return ids
}
