package imaging

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"image"
	"image/color"
	"image/gif"
	_ "image/jpeg" // for image.Decode
	_ "image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/extagram/extagram/internal/testutil"
	_ "golang.org/x/image/webp"
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

// The encoders and metadata fixtures are testutil's, shared with the
// end-to-end tests.
var (
	encPNG     = testutil.EncodePNG
	encJPEG    = testutil.EncodeJPEG
	pngChunkT  = testutil.PNGChunk
	jpegSeg    = testutil.JPEGSegment
	jpegInsert = testutil.JPEGInsert
	pngInsert  = testutil.PNGInsert
	testTIFF   = testutil.TIFF
)

const testXMP = testutil.XMP

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

// decode decodes with the standard library (and x/image for WebP); the
// result for a cleaned file must equal the original's.
func decode(t *testing.T, contentType string, b []byte) image.Image {
	t.Helper()
	m, format, err := image.Decode(bytes.NewReader(b))
	if err != nil || "image/"+format != contentType {
		t.Fatalf("decoding %s: %s, %v", contentType, format, err)
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

func zlibBytes(b []byte) []byte {
	var buf bytes.Buffer
	z := zlib.NewWriter(&buf)
	z.Write(b)
	z.Close()
	return buf.Bytes()
}

var (
	testICCP = pngChunkT("iCCP", []byte("sRGB-ish\x00\x00"), zlibBytes(bytes.Repeat([]byte("fake-icc"), 30)))
	testPHYs = pngChunkT("pHYs", []byte{0, 0, 0x0B, 0x13, 0, 0, 0x0B, 0x13, 1})
)

// pngWithMetadata adds what editors and phones write: an ICC profile and
// physical size (kept), text, compressed text, XMP in iTXt, EXIF with GPS
// and orientation, a timestamp and a private chunk (all removed).
func pngWithMetadata(p []byte, orientation int) []byte {
	return pngInsert(p, testICCP, testPHYs,
		pngChunkT("tEXt", []byte("Author\x00SECRET-TEXT")),
		pngChunkT("zTXt", []byte("Comment\x00\x00"), zlibBytes([]byte("compressed"))),
		pngChunkT("iTXt", []byte("XML:com.adobe.xmp\x00\x00\x00\x00\x00"), []byte(testXMP)),
		pngChunkT("iTXt", []byte("Description\x00\x00\x00en\x00\x00SECRET-TEXT")),
		pngChunkT("eXIf", testTIFF(binary.BigEndian, orientation)),
		pngChunkT("tIME", []byte{0x07, 0xE9, 1, 2, 3, 4, 5}),
		pngChunkT("prVt", []byte("SECRET-TEXT")),
	)
}

var (
	testICC = cat([]byte("ICC_PROFILE\x00\x01\x01"), bytes.Repeat([]byte("fake-icc-profile"), 20))
	// testJFIF is a JFIF header with no thumbnail.
	testJFIF = []byte("JFIF\x00\x01\x02\x01\x00\x48\x00\x48\x00\x00")
)

// jpegWithMetadata dresses a plain JPEG like a phone photo: JFIF with a
// thumbnail, EXIF (orientation, GPS, maker note), XMP and extended XMP,
// an ICC profile, Photoshop IPTC, a comment and an MPF index.
func jpegWithMetadata(j []byte, orientation int) []byte {
	return jpegInsert(j,
		jpegSeg(mAPP0, testJFIF[:12], []byte{1, 1, 1, 2, 3}), // a 1x1 thumbnail
		jpegSeg(mAPP1, []byte("Exif\x00\x00"), testTIFF(binary.LittleEndian, orientation)),
		jpegSeg(mAPP1, xmpPrefix, []byte(testXMP)),
		jpegSeg(mAPP1, xmpExtPrefix, []byte("0123456789ABCDEF0123456789ABCDEF\x00\x00\x01\x00\x00\x00\x00\x00SECRET-XMP")),
		jpegSeg(mAPP2, testICC),
		jpegSeg(mAPPD, []byte("Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x0bSECRET-IPTC")),
		jpegSeg(mCOM, []byte("SECRET-COMMENT")),
		jpegSeg(mAPP2, []byte("MPF\x00II*\x00\x08\x00\x00\x00")),
		jpegSeg(0xEC, []byte("Ducky\x00\x01")),
	)
}

// jpegHeader is SOI and a baseline frame header declaring w x h.
func jpegHeader(w, h int) []byte {
	return cat([]byte{0xFF, 0xD8}, jpegSeg(mSOF0, []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 1, 1, 0x11, 0}))
}

// gifBlocksStart is the offset of the first block after the header and
// the global colour table.
func gifBlocksStart(b []byte) int {
	if b[10]&0x80 != 0 {
		return 13 + 3<<(b[10]&7+1)
	}
	return 13
}

// gifFirstDescriptor is the offset of the first image descriptor.
func gifFirstDescriptor(b []byte) int {
	pos := gifBlocksStart(b)
	for b[pos] == 0x21 {
		pos, _ = skipSubBlocks(b, pos+2)
	}
	return pos
}

// gifExt builds an extension with its payload split into sub-blocks.
func gifExt(label byte, first []byte, payload []byte) []byte {
	out := []byte{0x21, label}
	if first != nil {
		out = append(append(out, byte(len(first))), first...)
	}
	for len(payload) > 0 {
		n := min(len(payload), 255)
		out = append(append(out, byte(n)), payload[:n]...)
		payload = payload[n:]
	}
	return append(out, 0)
}

// gifWithMetadata adds a comment and XMP before the first block and a
// comment and an unknown application extension before the trailer. The
// XMP is as Adobe writes it: the packet raw, not in sub-blocks, then the
// 258-byte "magic trailer" that makes a sub-block reader skip it whatever
// byte it lands on.
func gifWithMetadata(g []byte) []byte {
	xmp := cat([]byte{0x21, 0xFF, 11}, []byte("XMP DataXMP"), []byte(testXMP), []byte{1})
	for i := 255; i >= 0; i-- {
		xmp = append(xmp, byte(i))
	}
	at, end := gifBlocksStart(g), len(g)-1
	return cat(g[:at], gifExt(0xFE, nil, []byte("SECRET-COMMENT")), xmp, []byte{0}, g[at:end],
		gifExt(0xFE, nil, bytes.Repeat([]byte("SECRET-COMMENT "), 30)),
		gifExt(0xFF, []byte("MGK8BIM0000"), []byte("SECRET-IPTC")), g[end:])
}

// gifFrameAt is a GIF whose one frame is w x h at (left, top), which may
// lie outside its w x h logical screen.
func gifFrameAt(t testing.TB, left, top, w, h int) []byte {
	b := encGIF(t, w, h, 1)
	pos := gifFirstDescriptor(b)
	binary.LittleEndian.PutUint16(b[pos+1:], uint16(left))
	binary.LittleEndian.PutUint16(b[pos+3:], uint16(top))
	return b
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

// vp8lChecker encodes a w x h lossless WebP bitstream by hand: no
// transforms, no colour cache, and "simple" prefix codes: green has two
// symbols (one bit per pixel, a checkerboard), red, blue and alpha one each
// (no bits). Real encoders do far more; decoders must accept this.
func vp8lChecker(w, h int) []byte {
	var bw bitWriter
	bw.write(0x2F, 8)
	bw.write(uint64(w-1), 14)
	bw.write(uint64(h-1), 14)
	bw.write(0, 7) // no alpha, version 0, no transform, no colour cache, no meta prefix codes
	bw.write(7, 3) // green: simple code, two symbols, the first written with 8 bits
	bw.write(0x20, 8)
	bw.write(0xC0, 8)
	for _, v := range []uint64{0x40, 0x80, 0xFF} { // red, blue, alpha: one 8-bit symbol
		bw.write(5, 3)
		bw.write(v, 8)
	}
	bw.write(1, 4) // distance: simple, one symbol, 1-bit symbol 0
	for y := range h {
		for x := range w {
			bw.write(uint64((x+y)&1), 1)
		}
	}
	if bw.n > 0 {
		bw.write(0, 8-bw.n)
	}
	return bw.buf
}

type webpChunkT struct {
	id   string
	data []byte
}

// riff wraps chunks in a WebP RIFF container, padding odd chunks.
func riff(chunks ...webpChunkT) []byte {
	var body []byte
	for _, c := range chunks {
		body = binary.LittleEndian.AppendUint32(append(body, c.id...), uint32(len(c.data)))
		body = append(body, c.data...)
		if len(c.data)%2 == 1 {
			body = append(body, 0)
		}
	}
	out := binary.LittleEndian.AppendUint32([]byte("RIFF"), uint32(4+len(body)))
	return append(append(out, "WEBP"...), body...)
}

// webpChunks lists the top-level chunks of a WebP file.
func webpChunks(b []byte) []webpChunkT {
	var cs []webpChunkT
	for pos := 12; pos+8 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[pos+4:]))
		cs = append(cs, webpChunkT{string(b[pos : pos+4]), b[pos+8 : pos+8+n]})
		pos += 8 + n + n&1
	}
	return cs
}

func vp8x(flags byte, w, h int) webpChunkT {
	d := make([]byte, 10)
	d[0] = flags
	d[4], d[5], d[6] = byte(w-1), byte((w-1)>>8), byte((w-1)>>16)
	d[7], d[8], d[9] = byte(h-1), byte((h-1)>>8), byte((h-1)>>16)
	return webpChunkT{"VP8X", d}
}

// anmf builds an animation frame at (x, y), which must be even.
func anmf(x, y, w, h int, chunks ...webpChunkT) webpChunkT {
	d := make([]byte, 16)
	put := func(p, v int) { d[p], d[p+1], d[p+2] = byte(v), byte(v>>8), byte(v>>16) }
	put(0, x/2)
	put(3, y/2)
	put(6, w-1)
	put(9, h-1)
	return webpChunkT{"ANMF", append(d, riff(chunks...)[12:]...)}
}

// webpWithMetadata is an extended lossless WebP with an ICC profile, EXIF
// (GPS, orientation, maker note), XMP and a private chunk.
func webpWithMetadata(w, h int) []byte {
	return riff(vp8x(0x20|0x08|0x04, w, h), webpChunkT{"ICCP", testICCData}, webpChunkT{"VP8L", vp8lChecker(w, h)},
		webpChunkT{"EXIF", testTIFF(binary.LittleEndian, 6)}, webpChunkT{"XMP ", []byte(testXMP)},
		webpChunkT{"prVt", []byte("SECRET-TEXT")})
}

var testICCData = bytes.Repeat([]byte("fake-icc"), 25)
