package imaging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/gif"
	"runtime"
	"strings"
	"testing"
)

type fixture struct {
	name      string
	data      []byte
	typ       string
	w, h      int
	decodable bool // by image/jpeg, image/png, image/gif or x/image/webp
}

// fixtures are valid files of every format and flavour the tests cover:
// made by the standard library's encoders, built by hand, or (testdata/,
// see its README) made once with libjpeg-turbo and libwebp's tools.
func fixtures(t testing.TB) []fixture {
	gray := image.NewGray(image.Rect(0, 0, 20, 10))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i * 3)
	}
	gray16 := image.NewGray16(image.Rect(0, 0, 7, 3))
	for i := range gray16.Pix {
		gray16.Pix[i] = uint8(i * 11)
	}
	pal := image.NewPaletted(image.Rect(0, 0, 9, 5), testPalette)
	for i := range pal.Pix {
		pal.Pix[i] = uint8(i % 4)
	}
	var single bytes.Buffer
	if err := gif.Encode(&single, pal, nil); err != nil {
		t.Fatal(err)
	}
	return []fixture{
		{"jpeg", encJPEG(t, testImage(37, 23), 90), TypeJPEG, 37, 23, true},
		{"jpeg gray", encJPEG(t, gray, 75), TypeJPEG, 20, 10, true},
		{"jpeg metadata", jpegWithMetadata(t, encJPEG(t, testImage(16, 16), 80), 6), TypeJPEG, 16, 16, true},
		{"jpeg progressive", readTestdata(t, "progressive.jpg"), TypeJPEG, 32, 24, true},
		{"png", encPNG(t, testImage(37, 23)), TypePNG, 37, 23, true},
		{"png paletted", encPNG(t, pal), TypePNG, 9, 5, true},
		{"png gray16", encPNG(t, gray16), TypePNG, 7, 3, true},
		{"png metadata", pngWithMetadata(t, encPNG(t, testImage(12, 8)), 6), TypePNG, 12, 8, true},
		{"gif", single.Bytes(), TypeGIF, 9, 5, true},
		{"gif animated", encGIF(t, 12, 7, 3), TypeGIF, 12, 7, true},
		{"gif metadata", gifWithMetadata(t, encGIF(t, 6, 4, 2)), TypeGIF, 6, 4, true},
		{"webp lossy", readTestdata(t, "lossy.webp"), TypeWebP, 32, 24, true},
		{"webp lossy alpha metadata", readTestdata(t, "metadata.webp"), TypeWebP, 32, 24, true},
		{"webp animated", readTestdata(t, "animated.webp"), TypeWebP, 8, 8, false},
		{"webp lossless", riff(webpChunkT{"VP8L", vp8lChecker(13, 9)}), TypeWebP, 13, 9, true},
		{"webp extended metadata", webpWithMetadata(13, 9), TypeWebP, 13, 9, true},
	}
}

func TestAcceptsEachFormat(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			r := inspectOK(t, f.data)
			if r.ContentType != f.typ || r.Width != f.w || r.Height != f.h {
				t.Fatalf("got %s %dx%d, want %s %dx%d", r.ContentType, r.Width, r.Height, f.typ, f.w, f.h)
			}
			if len(r.Data) == 0 || &r.Data[0] == &f.data[0] {
				t.Fatal("Data must be a new, non-empty slice")
			}
			if r.Orientation < 1 || r.Orientation > 8 {
				t.Fatalf("orientation %d", r.Orientation)
			}
			if f.decodable {
				samePixels(t, decode(t, f.typ, f.data), decode(t, f.typ, r.Data))
			}
			// Cleaning is idempotent: a second pass keeps every byte
			// and has nothing left to remove.
			r2 := inspectOK(t, r.Data)
			if !bytes.Equal(r2.Data, r.Data) || len(r2.Removed) != 0 || r2.Orientation != r.Orientation {
				t.Fatalf("second pass changed the file or removed %v", r2.Removed)
			}
		})
	}
}

func TestWebPAnimationStructure(t *testing.T) {
	// x/image cannot decode animations; check the frames survive.
	b := readTestdata(t, "animated.webp")
	r := inspectOK(t, b)
	if !bytes.Equal(r.Data, b) {
		t.Fatalf("a clean animated WebP was changed: %q", webpChunkList(r.Data))
	}
	if got := strings.Join(webpChunkList(r.Data), ","); got != "VP8X,ANIM,ANMF,ANMF" {
		t.Fatalf("chunks %s", got)
	}
}

func TestUnsupported(t *testing.T) {
	tests := []struct {
		name, data, msg string
	}{
		{"html", "<!DOCTYPE html><html><body><script>alert(1)</script></body></html>", "the file is an HTML page, not a JPEG, PNG, GIF or WebP image"},
		{"html fragment", "  <script>fetch('/steal')</script>", "HTML"},
		{"svg", `<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`, "the file is an SVG image, not a JPEG, PNG, GIF or WebP image"},
		{"php", "<?php system($_GET['c']); ?>", "the file is a PHP script, not a JPEG, PNG, GIF or WebP image"},
		{"zip", "PK\x03\x04\x14\x00\x00\x00\x08\x00", "the file is a ZIP archive, not a JPEG, PNG, GIF or WebP image"},
		{"pdf", "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "the file is a PDF document, not a JPEG, PNG, GIF or WebP image"},
		{"text", "just a line of text, héhé\n", "the file is a text file, not a JPEG, PNG, GIF or WebP image"},
		{"heic", "\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "the file is a HEIC image, which is not supported: please convert it to JPEG, PNG, GIF or WebP"},
		{"avif", "\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", "AVIF"},
		{"bmp", "BM\x3e\x00\x00\x00\x00\x00\x00\x00\x3e\x00\x00\x00\x28\x00", "BMP"},
		{"tiff", "II*\x00\x08\x00\x00\x00", "TIFF"},
		{"riff wave", "RIFF\x24\x00\x00\x00WAVEfmt ", "the file is not a JPEG, PNG, GIF or WebP image"},
		{"gif8 without version", "GIF8\x01\x00", "the file is not a JPEG, PNG, GIF or WebP image"},
		{"jpeg soi only", "\xFF\xD8", "the file is not a JPEG, PNG, GIF or WebP image"},
		{"binary", "\x00\x01\x02\x03\xfe\xff", "the file is not a JPEG, PNG, GIF or WebP image"},
		{"php after a fake header", "GIF87\x00<?php", "the file is not a JPEG, PNG, GIF or WebP image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Inspect([]byte(tt.data), Limits{})
			wantErr(t, r, err, ErrUnsupported)
			if errors.Is(err, ErrEmpty) || errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge) {
				t.Fatalf("%v matches another kind", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("message %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func TestEmpty(t *testing.T) {
	for _, b := range [][]byte{nil, {}} {
		r, err := Inspect(b, DefaultLimits())
		wantErr(t, r, err, ErrEmpty)
		wantErr(t, r, err, ErrUnsupported) // so a caller mapping only ErrUnsupported is right
		if !strings.HasPrefix(err.Error(), "the photo is empty") {
			t.Fatalf("message %q", err)
		}
		var e *Error
		if !errors.As(err, &e) || e.Kind != ErrEmpty {
			t.Fatalf("not an *Error of kind ErrEmpty: %#v", err)
		}
	}
}

// TestTruncated cuts every fixture at every position: no proper prefix of
// a valid file may be accepted. Cuts inside the magic bytes are not
// recognisable as the format at all and are unsupported; every other cut
// is malformed.
func TestTruncated(t *testing.T) {
	magic := map[string]int{TypeJPEG: 3, TypePNG: 8, TypeGIF: 6, TypeWebP: 12}
	for _, f := range fixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			for n := range len(f.data) {
				r, err := Inspect(f.data[:n], DefaultLimits())
				switch {
				case n == 0:
					wantErr(t, r, err, ErrEmpty)
				case n < magic[f.typ]:
					wantErr(t, r, err, ErrUnsupported)
				default:
					if !errors.Is(err, ErrMalformed) || r.Data != nil {
						t.Fatalf("cut at %d of %d: got %v, want ErrMalformed", n, len(f.data), err)
					}
				}
			}
		})
	}
}

func TestTruncatedMessages(t *testing.T) {
	png := encPNG(t, testImage(4, 4))
	jpg := encJPEG(t, testImage(8, 8), 90)
	checkMalformed(t, true, []malformedCase{
		{"png without IEND", png[:len(png)-12], "the PNG file is truncated: missing IEND chunk"},
		{"png cut in IDAT", png[:len(png)-20], "the PNG file is truncated: the IDAT chunk is cut off"},
		{"jpeg cut in scan", jpg[:len(jpg)-10], "the JPEG file is truncated: the image data is cut off (no end-of-image marker)"},
		{"jpeg without EOI", jpg[:len(jpg)-2], "the JPEG file is truncated: the image data is cut off (no end-of-image marker)"},
		{"gif without trailer", encGIF(t, 3, 3, 1)[:len(encGIF(t, 3, 3, 1))-1], "the GIF file is truncated: missing trailer"},
	})
}

// pngHeader is a PNG signature and an IHDR chunk with a correct CRC,
// nothing else: enough for Inspect to refuse on size.
func pngHeader(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0) // 8-bit RGBA, deflate, no interlace
	return cat(pngMagic, pngChunk("IHDR", ihdr))
}

// jpegHeader is SOI and a baseline frame header declaring w x h.
func jpegHeader(w, h int) []byte {
	return cat([]byte{0xFF, 0xD8}, jpegSeg(mSOF0, []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 1, 1, 0x11, 0}))
}

func TestTooLarge(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		lim  Limits
		msg  string
	}{
		{"png 100000 x 100000", pngHeader(100000, 100000), Limits{}, "the image is 100000 x 100000 pixels, but each side may be at most 10000 pixels; please resize it"},
		{"png 10001 wide", encPNG(t, image.NewGray(image.Rect(0, 0, 10001, 1))), Limits{}, "10001 x 1"},
		{"png 7000 x 7000 pixels", pngHeader(7000, 7000), Limits{}, "the image is 7000 x 7000 pixels (49000000 pixels), but at most 40000000 pixels are allowed; please resize it"},
		{"jpeg 10001 tall", encJPEG(t, image.NewGray(image.Rect(0, 0, 8, 10001)), 50), Limits{}, "8 x 10001"},
		{"jpeg 65535 header", jpegHeader(65535, 65535), Limits{}, "65535 x 65535"},
		{"gif 10001 wide", encGIF(t, 10001, 1, 1), Limits{}, "10001 x 1"},
		{"gif frame past the limit", gifFrameAt(t, 9990, 0, 20, 1), Limits{}, "10010 x 1"},
		{"webp lossless 10001", riff(webpChunkT{"VP8L", vp8lChecker(10001, 1)}), Limits{}, "10001 x 1"},
		{"webp canvas 16M", riff(vp8x(0, 1<<24, 1<<24)), Limits{}, "16777216 x 16777216"},
		{"custom pixel limit", encPNG(t, testImage(20, 20)), Limits{MaxPixels: 399}, "400 pixels"},
		{"custom side limit", encJPEG(t, testImage(20, 20), 50), Limits{MaxSide: 19}, "at most 19 pixels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Inspect(tt.data, tt.lim)
			wantErr(t, r, err, ErrTooLarge)
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("message %q does not contain %q", err, tt.msg)
			}
		})
	}
	// At exactly the limits everything passes.
	if _, err := Inspect(encPNG(t, image.NewGray(image.Rect(0, 0, 10000, 1))), Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(encPNG(t, testImage(20, 20)), Limits{MaxPixels: 400, MaxSide: 20}); err != nil {
		t.Fatal(err)
	}
}

// TestTooLargeDoesNotAllocate: a header declaring ten gigapixels is
// refused having allocated little more than the error.
func TestTooLargeDoesNotAllocate(t *testing.T) {
	for _, b := range [][]byte{pngHeader(100000, 100000), jpegHeader(65535, 65535), riff(vp8x(0, 1<<24, 1<<24))} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Inspect(b, DefaultLimits())
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("got %v", err)
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 16<<10 {
			t.Errorf("refusing %q allocated %d bytes", b[:4], d)
		}
	}
}

func TestZeroDimensions(t *testing.T) {
	gifZero := encGIF(t, 3, 3, 1)
	gifZero[6], gifZero[7] = 0, 0
	vp8 := readTestdata(t, "lossy.webp")
	vp8 = bytes.Clone(vp8)
	vp8[26], vp8[27] = 0, 0 // width in the VP8 frame header
	for name, b := range map[string][]byte{
		"png":  pngHeader(0, 5),
		"jpeg": jpegHeader(0, 5),
		"gif":  gifZero,
		"vp8":  vp8,
	} {
		t.Run(name, func(t *testing.T) {
			r, err := Inspect(b, DefaultLimits())
			wantErr(t, r, err, ErrMalformed)
		})
	}
}

// TestPolyglots: bytes that are both an image and something a browser
// might run are refused unless they are a valid image, and then whatever
// follows the image is cut off.
func TestPolyglots(t *testing.T) {
	html := []byte("<html><body><script>alert(document.cookie)</script></body></html>")
	t.Run("gif header then html", func(t *testing.T) {
		for _, b := range [][]byte{
			cat([]byte("GIF89a"), html),
			cat([]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00"), html),
			cat([]byte("GIF89a/*\x01\x00\x00\x00\x00*/=1;"), html),
		} {
			r, err := Inspect(b, DefaultLimits())
			wantErr(t, r, err, ErrMalformed)
		}
	})
	for _, tt := range []struct {
		name string
		img  []byte
		tail []byte
	}{
		{"gif then html", encGIF(t, 4, 4, 1), html},
		{"jpeg then zip", encJPEG(t, testImage(8, 8), 80), []byte("PK\x03\x04\x14\x00\x00\x00\x08\x00payload.php")},
		{"png then php", encPNG(t, testImage(4, 4)), []byte("<?php system($_GET['c']); ?>")},
		{"webp then html", riff(webpChunkT{"VP8L", vp8lChecker(4, 4)}), html},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := inspectOK(t, cat(tt.img, tt.tail))
			if !bytes.Equal(r.Data, tt.img) {
				t.Fatalf("the cleaned file is not the image alone")
			}
			if len(r.Removed) != 1 || r.Removed[0] != "trailing data" {
				t.Fatalf("removed %v", r.Removed)
			}
		})
	}
	t.Run("php in a jpeg comment", func(t *testing.T) {
		j := encJPEG(t, testImage(8, 8), 80)
		r := inspectOK(t, jpegInsert(j, jpegSeg(mCOM, []byte("<?php system($_GET['c']); ?>"))))
		if !bytes.Equal(r.Data, j) || bytes.Contains(r.Data, []byte("<?php")) {
			t.Fatal("comment not removed")
		}
	})
}

func TestDefaultLimits(t *testing.T) {
	if d := DefaultLimits(); d.MaxPixels != 40_000_000 || d.MaxSide != 10_000 {
		t.Fatalf("%+v", d)
	}
	if (Limits{}).orDefaults() != DefaultLimits() || (Limits{-1, -1}).orDefaults() != DefaultLimits() {
		t.Fatal("zero or negative limits must take the defaults")
	}
}

func TestErrorKinds(t *testing.T) {
	for _, tt := range []struct {
		b    []byte
		kind error
	}{
		{[]byte("hello"), ErrUnsupported},
		{pngHeader(4, 4), ErrMalformed},
		{pngHeader(1e5, 1), ErrTooLarge},
	} {
		_, err := Inspect(tt.b, Limits{})
		for _, k := range []error{ErrEmpty, ErrUnsupported, ErrMalformed, ErrTooLarge} {
			if errors.Is(err, k) != (k == tt.kind) {
				t.Errorf("%v: errors.Is(%v) = %v", err, k, !(k == tt.kind))
			}
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "the ") || strings.Contains(msg, "imaging") {
			t.Errorf("message %q is not a user-facing sentence", msg)
		}
	}
}
