package imaging

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	_ "image/jpeg" // for image.Decode and image.DecodeConfig
	_ "image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/extagram/extagram/internal/testutil"
	_ "golang.org/x/image/webp"
)

// testImage is a deterministic picture with detail in every channel, alpha
// included, so a decoder that misread data would not give the same pixels.
func testImage(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.Set(x, y, color.NRGBA{uint8(x * 7), uint8(y * 13), uint8(x*y + 5), uint8(255 - (x+y)%64)})
		}
	}
	return m
}

// The encoders and metadata fixtures are testutil's, shared with e2e.
var (
	encPNG    = testutil.EncodePNG
	encJPEG   = testutil.EncodeJPEG
	pngChunkT = testutil.PNGChunk
	jpegSeg   = testutil.JPEGSegment
	testTIFF  = testutil.TIFF
)

const testXMP = testutil.XMP

var testPalette = color.Palette{
	color.RGBA{0, 0, 0, 255}, color.RGBA{255, 255, 255, 255},
	color.RGBA{200, 30, 30, 255}, color.RGBA{30, 30, 200, 255},
}

// encGIF makes a GIF of n frames, looping forever (NETSCAPE2.0) if n > 1.
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

// insert puts parts into a copy of b at offset at: 2 is after a JPEG's
// SOI (where cameras put their segments), 33 after a PNG's IHDR, and
// gifBlocksStart before a GIF's first block.
func insert(b []byte, at int, parts ...[]byte) []byte {
	return cat(b[:at], cat(parts...), b[at:])
}

// patch is a copy of b with v written at offset at.
func patch(b []byte, at int, v ...byte) []byte {
	b = bytes.Clone(b)
	copy(b[at:], v)
	return b
}

// decode decodes with the standard library (and x/image for WebP).
func decode(t *testing.T, contentType string, b []byte) image.Image {
	t.Helper()
	m, format, err := image.Decode(bytes.NewReader(b))
	if err != nil || "image/"+format != contentType {
		t.Fatalf("decoding %s: %s, %v", contentType, format, err)
	}
	return m
}

// samePixels checks that files a and b of type typ decode to the same image.
func samePixels(t *testing.T, typ string, a, b []byte) {
	t.Helper()
	var pix [2]*image.NRGBA64
	for i, file := range [][]byte{a, b} {
		m := decode(t, typ, file)
		pix[i] = image.NewNRGBA64(m.Bounds())
		draw.Draw(pix[i], m.Bounds(), m, m.Bounds().Min, draw.Src)
	}
	if pix[0].Rect != pix[1].Rect || !bytes.Equal(pix[0].Pix, pix[1].Pix) {
		t.Fatalf("the cleaned file decodes to other pixels, or bounds %v", pix[1].Rect)
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
	testICC  = cat([]byte("ICC_PROFILE\x00\x01\x01"), bytes.Repeat([]byte("fake-icc-profile"), 20))
	// testJFIF is a JFIF header with no thumbnail.
	testJFIF    = []byte("JFIF\x00\x01\x02\x01\x00\x48\x00\x48\x00\x00")
	testICCData = bytes.Repeat([]byte("fake-icc"), 25)
)

// pngWithMetadata adds what editors and phones write: an ICC profile and
// physical size (kept), text, compressed text, XMP in iTXt, EXIF with GPS
// and orientation, a timestamp and a private chunk (all removed).
func pngWithMetadata(p []byte, orientation int) []byte {
	return insert(p, 33, testICCP, testPHYs,
		pngChunkT("tEXt", []byte("Author\x00SECRET-TEXT")),
		pngChunkT("zTXt", []byte("Comment\x00\x00"), zlibBytes([]byte("compressed"))),
		pngChunkT("iTXt", []byte("XML:com.adobe.xmp\x00\x00\x00\x00\x00"), []byte(testXMP)),
		pngChunkT("iTXt", []byte("Description\x00\x00\x00en\x00\x00SECRET-TEXT")),
		pngChunkT("eXIf", testTIFF(binary.BigEndian, orientation)),
		pngChunkT("tIME", []byte{0x07, 0xE9, 1, 2, 3, 4, 5}),
		pngChunkT("prVt", []byte("SECRET-TEXT")),
	)
}

// jpegWithMetadata dresses a plain JPEG like a phone photo: JFIF with a
// thumbnail, EXIF (orientation, GPS, maker note), XMP and extended XMP,
// an ICC profile, Photoshop IPTC, a comment and an MPF index.
func jpegWithMetadata(j []byte, orientation int) []byte {
	return insert(j, 2,
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

// gifBlocksStart is the offset of the first block, after any global colours.
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

// gifFrameAt is a w x h GIF whose frame is at (left, top), maybe off screen.
func gifFrameAt(t testing.TB, left, top, w, h int) []byte {
	b := encGIF(t, w, h, 1)
	pos := gifFirstDescriptor(b)
	return patch(b, pos+1, byte(left), byte(left>>8), byte(top), byte(top>>8))
}

// vp8lChecker encodes a w x h lossless WebP bitstream by hand: no
// transforms, no colour cache, and "simple" prefix codes: green has two
// symbols (one bit per pixel, a checkerboard), red, blue and alpha one each
// (no bits). Real encoders do far more; decoders must accept this.
func vp8lChecker(w, h int) []byte {
	var out []byte
	var acc uint64
	var n uint
	write := func(v uint64, bits uint) { // LSB first
		acc |= v << n
		for n += bits; n >= 8; n -= 8 {
			out = append(out, byte(acc))
			acc >>= 8
		}
	}
	write(0x2F, 8)
	write(uint64(w-1), 14)
	write(uint64(h-1), 14)
	write(0, 7) // no alpha, version 0, no transform, no colour cache, no meta prefix codes
	write(7, 3) // green: simple code, two symbols, the first written with 8 bits
	write(0x20, 8)
	write(0xC0, 8)
	for _, v := range []uint64{0x40, 0x80, 0xFF} { // red, blue, alpha: one 8-bit symbol
		write(5, 3)
		write(v, 8)
	}
	write(1, 4) // distance: simple, one symbol, 1-bit symbol 0
	for y := range h {
		for x := range w {
			write(uint64((x+y)&1), 1)
		}
	}
	if n > 0 {
		write(0, 8-n)
	}
	return out
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

// put24 writes each of v in 24 bits, little-endian, as VP8X and ANMF do.
func put24(v ...int) []byte {
	var b []byte
	for _, x := range v {
		b = append(b, byte(x), byte(x>>8), byte(x>>16))
	}
	return b
}

func vp8x(flags byte, w, h int) webpChunkT {
	return webpChunkT{"VP8X", cat([]byte{flags, 0, 0, 0}, put24(w-1, h-1))}
}

// anmf builds an animation frame at (x, y), which must be even.
func anmf(x, y, w, h int, chunks ...webpChunkT) webpChunkT {
	return webpChunkT{"ANMF", cat(put24(x/2, y/2, w-1, h-1), make([]byte, 4), riff(chunks...)[12:])}
}
