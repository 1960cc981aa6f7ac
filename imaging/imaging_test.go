package imaging

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"runtime"
	"slices"
	"testing"

	"github.com/extagram/extagram/internal/testutil"
)

// fixture is a file Inspect must accept, with the result it must give.
type fixture struct {
	name        string
	data        []byte
	want        Result
	undecodable bool // by image/jpeg, image/png, image/gif and x/image/webp
}

func fx(name, typ string, w, h int, data []byte) fixture {
	return fixture{name: name, data: data, want: Result{ContentType: typ, Width: w, Height: h, Orientation: 1, Data: data}}
}

func (f fixture) to(want []byte, removed ...string) fixture {
	f.want.Data, f.want.Removed = want, removed
	return f
}
func (f fixture) rotated(o int) fixture  { f.want.Orientation = o; return f }
func (f fixture) undecodableFx() fixture { f.undecodable = true; return f }

// fixtures are files of every format and flavour the tests cover: made by
// the standard library's encoders, built by hand, or (testdata/, see its
// README) made once with libjpeg-turbo and libwebp's tools.
func fixtures(t testing.TB) []fixture {
	gray, gray16 := image.NewGray(image.Rect(0, 0, 20, 10)), image.NewGray16(image.Rect(0, 0, 7, 3))
	draw.Draw(gray, gray.Rect, testImage(20, 10), image.Point{}, draw.Src)
	draw.Draw(gray16, gray16.Rect, testImage(7, 3), image.Point{}, draw.Src)
	pal := image.NewPaletted(image.Rect(0, 0, 9, 5), testPalette)
	for i := range pal.Pix {
		pal.Pix[i] = uint8(i % 4)
	}
	le, be := binary.LittleEndian, binary.BigEndian
	exif := func(tiff []byte) []byte { return jpegSeg(mAPP1, []byte("Exif\x00\x00"), tiff) }
	j8, j16 := encJPEG(t, testImage(8, 8), 80), encJPEG(t, testImage(16, 16), 80)
	p4, p12 := encPNG(t, testImage(4, 4)), encPNG(t, testImage(12, 8))
	g4, g6 := encGIF(t, 4, 4, 1), encGIF(t, 6, 4, 2)
	at := gifBlocksStart(g4)
	iend := len(p4) - 12
	exifGone := []string{"EXIF", "GPS", "MakerNote"}
	pngGone := []string{"text", "XMP", "EXIF", "GPS", "MakerNote", "timestamp", "prVt"}
	lossless, lossless4 := webpChunkT{"VP8L", vp8lChecker(13, 9)}, webpChunkT{"VP8L", vp8lChecker(4, 4)}
	// libwebp's VP8X, ICCP, ALPH, VP8, EXIF, XMP: the last two go, and their flags.
	libwebp := readTestdata(t, "metadata.webp")
	libwebpClean := patch(libwebp[:bytes.Index(libwebp, []byte("EXIF"))], 20, libwebp[20]&^(vp8xEXIF|vp8xXMP))
	binary.LittleEndian.PutUint32(libwebpClean[4:], uint32(len(libwebpClean)-8))
	// A comment and XMP before the first block, a comment and an unknown
	// application extension before the trailer. The XMP is as Adobe writes
	// it: the packet raw, not in sub-blocks, then the 258-byte "magic
	// trailer" that makes a sub-block reader skip it whatever byte it lands on.
	xmpGIF := cat([]byte{0x21, 0xFF, 11}, []byte("XMP DataXMP"), []byte(testXMP), []byte{1})
	for i := 255; i >= 0; i-- {
		xmpGIF = append(xmpGIF, byte(i))
	}
	gifMeta := cat(g6[:gifBlocksStart(g6)], gifExt(0xFE, nil, []byte("SECRET-COMMENT")), xmpGIF, []byte{0},
		g6[gifBlocksStart(g6):len(g6)-1], gifExt(0xFE, nil, bytes.Repeat([]byte("SECRET-COMMENT "), 30)),
		gifExt(0xFF, []byte("MGK8BIM0000"), []byte("SECRET-IPTC")), []byte{0x3B})
	// VP8L of 5x3 is an odd number of bytes: a file without the final pad
	// byte (RIFF size odd, equal to the data) is accepted and padded.
	padded := riff(webpChunkT{"VP8L", vp8lChecker(5, 3)})
	unpadded := patch(padded[:len(padded)-1], 4, binary.LittleEndian.AppendUint32(nil, uint32(len(padded)-9))...)
	anim := []webpChunkT{vp8x(0x02, 8, 8), {"ANIM", make([]byte, 6)}, anmf(0, 0, 8, 8, webpChunkT{"VP8L", vp8lChecker(8, 8)}),
		anmf(2, 4, 3, 4, webpChunkT{"VP8L", vp8lChecker(3, 4)})}
	html := []byte("<html><body><script>alert(document.cookie)</script></body></html>")
	php := []byte("<?php system($_GET['c']); ?>")
	return []fixture{
		fx("jpeg", TypeJPEG, 37, 23, encJPEG(t, testImage(37, 23), 90)),
		fx("jpeg gray", TypeJPEG, 20, 10, encJPEG(t, gray, 75)),
		fx("jpeg progressive", TypeJPEG, 32, 24, readTestdata(t, "progressive.jpg")),
		fx("jpeg metadata", TypeJPEG, 16, 16, jpegWithMetadata(j16, 6)).rotated(6).
			to(insert(j16, 2, jpegSeg(mAPP0, testJFIF), minimalExifSegment(6), jpegSeg(mAPP2, testICC)),
				"JFIF thumbnail", "EXIF", "GPS", "MakerNote", "XMP", "IPTC", "comment", "MPF", "APP12"),
		fx("jpeg JFIF, ICC and Adobe kept", TypeJPEG, 8, 8, insert(j8, 2, jpegSeg(mAPP0, testJFIF),
			jpegSeg(mAPP2, testICC), jpegSeg(mAPPE, []byte("Adobe\x00\x64\x80\x00\x00\x00\x01")))),
		fx("jpeg upright", TypeJPEG, 8, 8, insert(j8, 2, exif(testTIFF(le, 1)))).to(j8, exifGone...),
		fx("jpeg big endian 8", TypeJPEG, 8, 8, insert(j8, 2, exif(testTIFF(be, 8)))).rotated(8).
			to(insert(j8, 2, minimalExifSegment(8)), exifGone...),
		fx("jpeg little endian 3", TypeJPEG, 8, 8, insert(j8, 2, exif(testTIFF(le, 3)))).rotated(3).
			to(insert(j8, 2, minimalExifSegment(3)), exifGone...),
		fx("jpeg orientation 9", TypeJPEG, 8, 8, insert(j8, 2, exif(testTIFF(le, 9)))).to(j8, exifGone...),
		fx("jpeg garbage exif", TypeJPEG, 8, 8, insert(j8, 2, exif([]byte("MM\x00*\xff\xff\xff\xff")))).to(j8, "EXIF"),
		fx("jpeg IFD count past the end", TypeJPEG, 8, 8,
			insert(j8, 2, exif([]byte("II*\x00\x08\x00\x00\x00\xff\xff\x12\x01\x03\x00")))).to(j8, "EXIF"),
		fx("jpeg only the first orientation counts", TypeJPEG, 8, 8,
			insert(j8, 2, exif(testTIFF(le, 6)), exif(testTIFF(be, 8)))).rotated(6).
			to(insert(j8, 2, minimalExifSegment(6)), exifGone...),
		// Extra FF fill bytes before markers are legal and dropped; a stray
		// restart marker between segments is tolerated and kept.
		fx("jpeg fill and restart", TypeJPEG, 8, 8, cat(j8[:2], []byte{0xFF, 0xFF, 0xFF, 0xFF, mRST0}, j8[2:])).
			to(cat(j8[:2], []byte{0xFF, mRST0}, j8[2:])),
		// A motion photo: a second JPEG and a video after the first EOI.
		fx("jpeg motion photo", TypeJPEG, 8, 8, cat(j8, j8, []byte("\x00\x00\x00\x18ftypmp42 video"))).
			to(j8, "trailing data"),
		fx("jpeg then zip", TypeJPEG, 8, 8, cat(j8, []byte("PK\x03\x04\x14\x00\x00\x00\x08\x00payload.php"))).
			to(j8, "trailing data"),
		fx("jpeg php comment", TypeJPEG, 8, 8, insert(j8, 2, jpegSeg(mCOM, php))).to(j8, "comment"),

		fx("png", TypePNG, 37, 23, encPNG(t, testImage(37, 23))),
		fx("png paletted", TypePNG, 9, 5, encPNG(t, pal)),
		fx("png gray16", TypePNG, 7, 3, encPNG(t, gray16)),
		fx("png metadata", TypePNG, 12, 8, pngWithMetadata(p12, 6)).rotated(6).
			to(insert(p12, 33, testICCP, testPHYs, pngChunkT("eXIf", minimalTIFF(6))), pngGone...),
		fx("png metadata upright", TypePNG, 12, 8, pngWithMetadata(p12, 1)).
			to(insert(p12, 33, testICCP, testPHYs), pngGone...),
		// APNG chunks around a plain image: acTL before IDAT, fcTL, fdAT after.
		fx("png animated", TypePNG, 4, 4, cat(insert(p4[:iend], 33, pngChunkT("acTL", []byte{0, 0, 0, 1, 0, 0, 0, 0})),
			pngChunkT("fcTL", make([]byte, 26)), pngChunkT("fdAT", []byte{0, 0, 0, 1, 1, 2, 3}), p4[iend:])),
		fx("png then php", TypePNG, 4, 4, cat(p4, php)).to(p4, "trailing data"),

		fx("gif", TypeGIF, 9, 5, testutil.GIF(t, 9, 5)), // one frame, a global colour table
		fx("gif animated", TypeGIF, 12, 7, encGIF(t, 12, 7, 3)),
		fx("gif metadata", TypeGIF, 6, 4, gifMeta).to(g6, "comment", "XMP", "application extension"),
		fx("gif extensions kept", TypeGIF, 4, 4, insert(g4, at, gifExt(0xFF, []byte("ANIMEXTS1.0"), []byte{1, 0, 0}),
			gifExt(0xFF, []byte("ICCRGBG1012"), []byte("fake-icc")), gifExt(0x01, make([]byte, 12), []byte("plain text")))),
		// Browsers show frames beyond the logical screen; accepted while the
		// total stays within the limits.
		fx("gif frame outside the screen", TypeGIF, 4, 4, gifFrameAt(t, 50, 50, 4, 4)).undecodableFx(),
		fx("gif then html", TypeGIF, 4, 4, cat(g4, html)).to(g4, "trailing data"),

		fx("webp lossy", TypeWebP, 32, 24, readTestdata(t, "lossy.webp")),
		fx("webp libwebp metadata", TypeWebP, 32, 24, readTestdata(t, "metadata.webp")).
			to(libwebpClean, "EXIF", "XMP"),
		fx("webp animated", TypeWebP, 8, 8, readTestdata(t, "animated.webp")).undecodableFx(),
		fx("webp animated by hand", TypeWebP, 8, 8, riff(append(anim, webpChunkT{"XMP ", []byte(testXMP)})...)).
			to(riff(anim...), "XMP").undecodableFx(),
		fx("webp lossless", TypeWebP, 13, 9, riff(lossless)),
		// Extended, with an ICC profile, EXIF (GPS, orientation, maker
		// note), XMP and a private chunk.
		fx("webp extended metadata", TypeWebP, 13, 9, riff(vp8x(0x20|0x08|0x04, 13, 9), webpChunkT{"ICCP", testICCData},
			lossless, webpChunkT{"EXIF", testTIFF(le, 6)}, webpChunkT{"XMP ", []byte(testXMP)}, webpChunkT{"prVt", []byte("SECRET-TEXT")})).
			to(riff(vp8x(0x20, 13, 9), webpChunkT{"ICCP", testICCData}, lossless),
				"EXIF", "GPS", "MakerNote", "XMP", "chunk prVt"),
		// A simple-format file has only its image chunk; what follows goes.
		fx("webp simple with exif", TypeWebP, 4, 4, riff(lossless4, webpChunkT{"EXIF", testTIFF(be, 6)})).
			to(riff(lossless4), "EXIF"),
		fx("webp unpadded", TypeWebP, 5, 3, unpadded).to(padded),
		fx("webp then html", TypeWebP, 4, 4, cat(riff(lossless4), html)).to(riff(lossless4), "trailing data"),
	}
}

// TestInspectCleans: each file is accepted with exactly the result
// expected, the same pixels, no secret left, and for good (checkCleaned);
// no proper prefix of it is accepted: cut inside the magic bytes it is not
// recognisable as the format at all (unsupported), elsewhere malformed.
func TestInspectCleans(t *testing.T) {
	magic := map[string]int{TypeJPEG: 3, TypePNG: 8, TypeGIF: 6, TypeWebP: 12}
	for _, f := range fixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			r, err := Inspect(f.data, DefaultLimits())
			if err != nil || shape(r) != shape(f.want) || !bytes.Equal(r.Data, f.want.Data) || !slices.Equal(r.Removed, f.want.Removed) {
				t.Fatalf("got %s, %d bytes, removed %q, %v; want %s, %d bytes, removed %q",
					shape(r), len(r.Data), r.Removed, err, shape(f.want), len(f.want.Data), f.want.Removed)
			}
			checkCleaned(t, f.data, r)
			testutil.NoSecrets(t, r.Data)
			if !f.undecodable {
				samePixels(t, r.ContentType, f.data, r.Data)
			}
			if slices.Contains(r.Removed, "trailing data") {
				return // the image alone is a valid prefix
			}
			for n := range len(f.data) {
				kind := ErrMalformed
				if n == 0 {
					kind = ErrEmpty
				} else if n < magic[r.ContentType] {
					kind = ErrUnsupported
				}
				if r, err := Inspect(f.data[:n], DefaultLimits()); !errors.Is(err, kind) || r.Data != nil {
					t.Fatalf("cut at %d of %d: got %v, want %v", n, len(f.data), err, kind)
				}
			}
		})
	}
	// The hand-made VP8L bitstream really is the checkerboard it claims.
	m := decode(t, TypeWebP, riff(webpChunkT{"VP8L", vp8lChecker(13, 9)}))
	for _, p := range []struct{ x, y, g int }{{0, 0, 0x20}, {1, 0, 0xC0}, {12, 8, 0x20}} {
		if r, g, b, a := m.At(p.x, p.y).RGBA(); r>>8 != 0x40 || g>>8 != uint32(p.g) || b>>8 != 0x80 || a>>8 != 0xFF {
			t.Fatalf("pixel (%d,%d) is %v", p.x, p.y, m.At(p.x, p.y))
		}
	}
}

// shape is what Result says of a file, but its bytes.
func shape(r Result) string {
	return fmt.Sprintf("%s %dx%d o%d", r.ContentType, r.Width, r.Height, r.Orientation)
}

// checkCleaned checks what holds of any file Inspect accepted: one of the
// four types, within the default limits, a valid orientation, the data a
// copy, and cleaned for good: inspected again it keeps its shape and bytes
// with nothing removed. A standard decoder that reads its header agrees.
func checkCleaned(t *testing.T, data []byte, r Result) {
	t.Helper()
	lim := DefaultLimits()
	if !slices.Contains([]string{TypeJPEG, TypePNG, TypeGIF, TypeWebP}, r.ContentType) || r.Width < 1 || r.Height < 1 ||
		r.Width > lim.MaxSide || r.Height > lim.MaxSide || int64(r.Width)*int64(r.Height) > lim.MaxPixels ||
		r.Orientation < 1 || r.Orientation > 8 {
		t.Fatalf("accepted %s", shape(r))
	}
	if len(r.Data) > 0 && len(data) > 0 && &r.Data[0] == &data[0] {
		t.Fatal("Data aliases the input")
	}
	if r2, err := Inspect(r.Data, lim); err != nil || shape(r2) != shape(r) || !bytes.Equal(r2.Data, r.Data) || len(r2.Removed) != 0 {
		t.Fatalf("re-inspected as %s removing %q, %v; first %s", shape(r2), r2.Removed, err, shape(r))
	}
	if c, format, err := image.DecodeConfig(bytes.NewReader(r.Data)); err == nil &&
		("image/"+format != r.ContentType || c.Width != r.Width || c.Height != r.Height) {
		t.Fatalf("the standard decoder reads %s %dx%d, Inspect %s", format, c.Width, c.Height, shape(r))
	}
}

// checkRefused checks that err is an *Error of kind alone (an empty file is
// unsupported too, so a caller mapping only ErrUnsupported is right), with
// no result, a format when malformed, and the message msg; a nil kind and
// an empty msg stand for any kind and any message but none.
func checkRefused(t *testing.T, r Result, err, kind error, msg string) {
	t.Helper()
	kinds := []error{ErrEmpty, ErrUnsupported, ErrMalformed, ErrTooLarge}
	var e *Error
	if !errors.As(err, &e) || !slices.Contains(kinds, e.Kind) || e.Kind != cmp.Or(kind, e.Kind) ||
		e.Kind == ErrMalformed && e.Format == "" {
		t.Fatalf("%#v is not an *Error of kind %v with a format", err, kind)
	}
	for _, k := range kinds {
		if errors.Is(err, k) != (k == e.Kind || e.Kind == ErrEmpty && k == ErrUnsupported) {
			t.Errorf("%v: errors.Is(%v) = %v", err, k, errors.Is(err, k))
		}
	}
	if r.Data != nil || r.ContentType != "" || r.Removed != nil {
		t.Fatalf("an error came with a result: %+v", r)
	}
	if e.Msg != cmp.Or(msg, e.Msg) || e.Msg == "" {
		t.Fatalf("message %q, want %q", e.Msg, msg)
	}
}

type refusal struct {
	name string
	data []byte
	msg  string
}

// TestInspectRefuses: each file is refused with the kind of its group and
// exactly its message; too large ones having allocated little more than
// the error, as the size is checked from the header.
func TestInspectRefuses(t *testing.T) {
	const notImage = ", not a JPEG, PNG, GIF or WebP image"
	const convert = ", which is not supported: please convert it to JPEG, PNG, GIF or WebP"
	const jpegCoding = "lossless, hierarchical or arithmetic coding"
	const jpegOnly = ", which web browsers cannot display; please save it as a standard JPEG"
	side := func(w, h int) string {
		return fmt.Sprintf("the image is %d x %d pixels, but each side may be at most 10000 pixels; please resize it", w, h)
	}
	gifBlock := func(b string) string {
		return "the GIF file is corrupt: unexpected byte " + b + " at offset 13 where a block should start"
	}
	p4, j8, g3, g4 := encPNG(t, testImage(4, 4)), encJPEG(t, testImage(8, 8), 90), encGIF(t, 3, 3, 1), encGIF(t, 4, 4, 1)
	idat := bytes.Index(p4, []byte("IDAT")) - 4
	sos, sof := bytes.Index(j8, []byte{0xFF, mSOS}), bytes.Index(j8, []byte{0xFF, mSOF0})
	at, desc := gifBlocksStart(g4), gifFirstDescriptor(g4)
	webp6 := riff(webpChunkT{"VP8L", vp8lChecker(6, 6)})
	le32 := func(v int) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }
	anim := []webpChunkT{vp8x(0x02, 6, 6), {"ANIM", make([]byte, 6)}}
	gifHTML := []byte("<html><body><script>alert(document.cookie)</script></body></html>")
	for kind, cases := range map[error][]refusal{
		ErrEmpty: {
			{"nil", nil, "the photo is empty: please choose a JPEG, PNG, GIF or WebP image"},
			{"empty", []byte{}, "the photo is empty: please choose a JPEG, PNG, GIF or WebP image"},
		},
		ErrUnsupported: {
			{"html", cat([]byte("<!DOCTYPE html>"), gifHTML), "the file is an HTML page" + notImage},
			{"html fragment", []byte("  <script>fetch('/steal')</script>"), "the file is an HTML page" + notImage},
			{"svg", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`),
				"the file is an SVG image" + notImage},
			{"php", []byte("<?php system($_GET['c']); ?>"), "the file is a PHP script" + notImage},
			{"zip", []byte("PK\x03\x04\x14\x00\x00\x00\x08\x00"), "the file is a ZIP archive" + notImage},
			{"pdf", []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"), "the file is a PDF document" + notImage},
			{"text", []byte("just a line of text, héhé\n"), "the file is a text file" + notImage},
			{"heic", []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"), "the file is a HEIC image" + convert},
			{"avif", []byte("\x00\x00\x00\x1cftypavif\x00\x00\x00\x00"), "the file is an AVIF image" + convert},
			{"bmp", []byte("BM\x3e\x00\x00\x00\x00\x00\x00\x00\x3e\x00\x00\x00\x28\x00"), "the file is a BMP image" + convert},
			{"tiff", []byte("II*\x00\x08\x00\x00\x00"), "the file is a TIFF image" + convert},
			{"riff wave", []byte("RIFF\x24\x00\x00\x00WAVEfmt "), ErrUnsupported.Error()},
			{"gif8 without version", []byte("GIF8\x01\x00"), ErrUnsupported.Error()},
			{"jpeg soi only", []byte("\xFF\xD8"), ErrUnsupported.Error()},
			{"binary", []byte("\x00\x01\x02\x03\xfe\xff"), ErrUnsupported.Error()},
			{"php after a fake header", []byte("GIF87\x00<?php"), ErrUnsupported.Error()},
			{"jpeg lossless", patch(j8, sof+1, 0xC3), "the JPEG file uses " + jpegCoding + jpegOnly},
			{"jpeg arithmetic", patch(j8, sof+1, 0xC9), "the JPEG file uses " + jpegCoding + jpegOnly},
			{"jpeg 12-bit", patch(j8, sof+4, 12), "the JPEG file uses 12-bit samples" + jpegOnly},
		},
		ErrMalformed: {
			{"png without IEND", p4[:len(p4)-12], "the PNG file is truncated: missing IEND chunk"},
			{"png cut in IDAT", p4[:len(p4)-20], "the PNG file is truncated: the IDAT chunk is cut off"},
			{"png bad crc", patch(p4, len(p4)-20, p4[len(p4)-20]+1), // a byte of IDAT
				"the PNG file is corrupt: the IDAT chunk has a bad checksum"},
			{"png no IHDR first", cat(pngMagic, pngChunkT("tEXt", []byte("a\x00b")), p4[8:]),
				"the PNG file is corrupt: it does not start with an IHDR chunk"},
			{"png no IDAT", cat(p4[:33], p4[len(p4)-12:]), "the PNG file is corrupt: it has no image data (IDAT chunk)"},
			{"png unknown critical", insert(p4, 33, pngChunkT("ZZZZ")),
				`the PNG file is corrupt: it contains an unknown critical chunk "ZZZZ"`},
			{"png IDAT split", cat(p4[:len(p4)-12], pngChunkT("tEXt", []byte("a\x00b")), p4[idat:]),
				"the PNG file is corrupt: its IDAT chunks are not consecutive"},
			{"png bad type", cat(p4[:33], []byte("\x00\x00\x00\x00a<b>\x00\x00\x00\x00"), p4[33:]),
				"the PNG file is corrupt: invalid chunk type at byte 37"},
			{"png bad depth", cat(pngMagic, pngChunkT("IHDR", []byte{0, 0, 0, 4, 0, 0, 0, 4, 3, 2, 0, 0, 0}), p4[33:]),
				"the PNG file is corrupt: colour type 2 with bit depth 3 is not allowed"},
			{"png paletted without PLTE", cat(pngMagic, pngChunkT("IHDR", []byte{0, 0, 0, 4, 0, 0, 0, 4, 8, 3, 0, 0, 0}), p4[33:]),
				"the PNG file is corrupt: the palette (PLTE chunk) is missing"},
			{"png zero width", testutil.HugePNG(0, 5), "the PNG file is corrupt: it declares a size of 0 x 5 pixels"},
			{"jpeg cut in scan", j8[:len(j8)-10], "the JPEG file is truncated: the image data is cut off (no end-of-image marker)"},
			{"jpeg without EOI", j8[:len(j8)-2], "the JPEG file is truncated: the image data is cut off (no end-of-image marker)"},
			{"jpeg no frame header", cat(j8[:2], jpegSeg(mSOS, []byte{1, 1, 0, 0, 63, 0}), []byte{1, 2, 0xFF, 0xD9}),
				"the JPEG file is corrupt: image data comes before the frame header"},
			{"jpeg no scan", cat(jpegHeader(8, 8), []byte{0xFF, 0xD9}), "the JPEG file is corrupt: it ends before any image data"},
			{"jpeg segment past the end", cat(j8[:2], []byte{0xFF, 0xE1, 0x40, 0x00}, []byte("Exif")),
				"the JPEG file is truncated: the APP1 segment is cut off"},
			{"jpeg length too small", cat(j8[:2], []byte{0xFF, 0xE1, 0x00, 0x01}, j8[2:]),
				"the JPEG file is corrupt: the APP1 segment has an invalid length"},
			{"jpeg garbage between segments", cat(j8[:2], jpegSeg(mCOM, []byte("x")), []byte("<html>"), j8[2:]),
				"the JPEG file is corrupt: expected a marker at byte 7"},
			{"jpeg two frames", cat(j8[:sos], jpegHeader(8, 8)[2:], j8[sos:]),
				"the JPEG file is corrupt: it has more than one frame header"},
			{"jpeg unknown marker", cat(j8[:2], jpegSeg(0x02, []byte{0}), j8[2:]),
				"the JPEG file is corrupt: it contains an unknown marker 0x02"},
			{"jpeg second SOI", cat(j8[:2], j8), "the JPEG file is corrupt: a second start-of-image marker"},
			{"jpeg zero width", jpegHeader(0, 5), "the JPEG file is corrupt: it declares a size of 0 x 5 pixels"},
			{"gif without trailer", g3[:len(g3)-1], "the GIF file is truncated: missing trailer"},
			{"gif no image", cat(g4[:at], []byte{0x3B}), "the GIF file is corrupt: it contains no image"},
			{"gif garbage block", cat(g4[:at], []byte("<script>"), g4[at:]), gifBlock("0x3C")},
			{"gif bad graphic control", cat(g4[:at], []byte{0x21, 0xF9, 3, 0, 0, 0, 0}, g4[at:]),
				"the GIF file is corrupt: a graphic control extension has the wrong size"},
			{"gif no colour table", patch(g4, desc+9, g4[desc+9]&^0x80), "the GIF file is corrupt: an image has no colour table"},
			{"gif header only", []byte("GIF89a\x01\x00"), "the GIF file is truncated: the header is cut off"},
			{"gif zero size", patch(g3, 6, 0, 0), "the GIF file is corrupt: it declares a size of 0 x 3 pixels"},
			// Bytes that are both a GIF header and something a browser might run.
			{"gif header then html", cat([]byte("GIF89a"), gifHTML), gifBlock("0x62")},
			{"gif screen then html", cat([]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00"), gifHTML), gifBlock("0x3C")},
			{"gif javascript", cat([]byte("GIF89a/*\x01\x00\x00\x00\x00*/=1;"), gifHTML), gifBlock("0x2A")},
			{"webp riff size past the end", patch(webp6, 4, le32(len(webp6))...), fmt.Sprintf(
				"the WebP file is truncated: the header says %d bytes but there are only %d", len(webp6)+8, len(webp6))},
			{"webp chunk past the end", patch(webp6, 16, le32(1000)...), `the WebP file is corrupt: the "VP8L" chunk runs past the end of the file`},
			{"webp no chunks", []byte("RIFF\x04\x00\x00\x00WEBP"), "the WebP file is corrupt: it contains no image"},
			{"webp unknown first chunk", riff(webpChunkT{"JUNK", []byte("abcd")}),
				`the WebP file is corrupt: it starts with an unknown "JUNK" chunk`},
			{"webp canvas mismatch", riff(vp8x(0, 7, 6), webpChunkT{"VP8L", vp8lChecker(6, 6)}),
				"the WebP file is corrupt: the image is 6 x 6 but the canvas is 7 x 6"},
			{"webp extended without image", riff(vp8x(0x20, 6, 6), webpChunkT{"ICCP", []byte("x")}),
				"the WebP file is corrupt: it contains no image data"},
			{"webp two images", riff(vp8x(0, 6, 6), webpChunkT{"VP8L", vp8lChecker(6, 6)}, webpChunkT{"VP8L", vp8lChecker(6, 6)}),
				"the WebP file is corrupt: it has more than one image chunk"},
			{"webp vp8l signature", riff(webpChunkT{"VP8L", []byte{0x2E, 0, 0, 0, 0}}),
				"the WebP file is corrupt: the VP8L signature is wrong"},
			{"webp vp8x length", riff(webpChunkT{"VP8X", make([]byte, 8)}),
				"the WebP file is corrupt: the VP8X chunk has the wrong length"},
			{"webp animation without frames", riff(anim...), "the WebP file is corrupt: the animation has no frames"},
			{"webp frame outside canvas", riff(append(anim, anmf(2, 0, 6, 6, webpChunkT{"VP8L", vp8lChecker(6, 6)}))...),
				"the WebP file is corrupt: an animation frame lies outside the canvas"},
			{"webp frame size mismatch", riff(append(anim, anmf(0, 0, 6, 6, webpChunkT{"VP8L", vp8lChecker(5, 6)}))...),
				"the WebP file is corrupt: an animation frame's image does not match its declared size"},
			{"webp zero width", patch(readTestdata(t, "lossy.webp"), 26, 0, 0), // in the VP8 frame header
				"the WebP file is corrupt: the VP8 frame declares a size of 0 x 24 pixels"},
		},
		ErrTooLarge: {
			{"png 100000 x 100000", testutil.HugePNG(100000, 100000), side(100000, 100000)},
			{"png 10001 wide", encPNG(t, image.NewGray(image.Rect(0, 0, 10001, 1))), side(10001, 1)},
			{"png 7000 x 7000 pixels", testutil.HugePNG(7000, 7000),
				"the image is 7000 x 7000 pixels (49000000 pixels), but at most 40000000 pixels are allowed; please resize it"},
			{"jpeg 10001 tall", encJPEG(t, image.NewGray(image.Rect(0, 0, 8, 10001)), 50), side(8, 10001)},
			{"jpeg 65535 header", jpegHeader(65535, 65535), side(65535, 65535)},
			{"gif 10001 wide", encGIF(t, 10001, 1, 1), side(10001, 1)},
			{"gif frame past the limit", gifFrameAt(t, 9990, 0, 20, 1), side(10010, 1)},
			{"webp lossless 10001", riff(webpChunkT{"VP8L", vp8lChecker(10001, 1)}), side(10001, 1)},
			{"webp canvas 16M", riff(vp8x(0, 1<<24, 1<<24)), side(1<<24, 1<<24)},
		},
	} {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r, _, size, err := inspectMeasured(c.data, Limits{})
				checkRefused(t, r, err, kind, c.msg)
				if kind == ErrTooLarge && size > 16<<10 {
					t.Errorf("refusing allocated %d bytes", size)
				}
			})
		}
	}
}

// TestLimits: limits are inclusive; negative ones take the defaults, as
// zero ones do (TestInspectRefuses's messages check the default values).
func TestLimits(t *testing.T) {
	if (Limits{-1, -1}).orDefaults() != DefaultLimits() {
		t.Fatal("negative limits must take the defaults")
	}
	p20 := encPNG(t, testImage(20, 20))
	for i, c := range []struct {
		data []byte
		lim  Limits
		msg  string // "" when accepted
	}{
		{p20, Limits{MaxPixels: 399}, "the image is 20 x 20 pixels (400 pixels), but at most 399 pixels are allowed; please resize it"},
		{encJPEG(t, testImage(20, 20), 50), Limits{MaxSide: 19},
			"the image is 20 x 20 pixels, but each side may be at most 19 pixels; please resize it"},
		{p20, Limits{MaxPixels: 400, MaxSide: 20}, ""},
		{encPNG(t, image.NewGray(image.Rect(0, 0, 10000, 1))), Limits{}, ""},
	} {
		if r, err := Inspect(c.data, c.lim); c.msg != "" {
			checkRefused(t, r, err, ErrTooLarge, c.msg)
		} else if err != nil {
			t.Errorf("case %d: %v", i, err)
		}
	}
}

func TestDisplaySize(t *testing.T) {
	for o := 1; o <= 8; o++ {
		w, h := Result{Width: 64, Height: 48, Orientation: o}.DisplaySize()
		if want := map[bool][2]int{false: {64, 48}, true: {48, 64}}[o >= 5]; [2]int{w, h} != want {
			t.Errorf("orientation %d: %dx%d, want %v", o, w, h, want)
		}
	}
}

// TestHostileInputsBounded: each hostile file takes a handful of allocations
// and about its size in memory (the copy): nothing grows with the chunks.
func TestHostileInputsBounded(t *testing.T) {
	for name, b := range hostileInputs(t) {
		t.Run(name, func(t *testing.T) {
			r, n, size, err := inspectMeasured(b, DefaultLimits())
			if err != nil || len(r.Removed) > maxRemoved {
				t.Fatalf("%v, %d names in Removed", err, len(r.Removed))
			}
			if n > 64 || size > uint64(len(b))+64<<10 {
				t.Errorf("%d allocations, %d bytes for a %d-byte file", n, size, len(b))
			}
		})
	}
}

// inspectMeasured is Inspect, also returning how many allocations it made
// and their bytes.
func inspectMeasured(data []byte, lim Limits) (r Result, n, size uint64, err error) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r, err = Inspect(data, lim)
	runtime.ReadMemStats(&after)
	return r, after.Mallocs - before.Mallocs, after.TotalAlloc - before.TotalAlloc, err
}
