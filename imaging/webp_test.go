package imaging

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
)

var testICCData = bytes.Repeat([]byte("fake-icc"), 25)

// webpWithMetadata is an extended lossless WebP with an ICC profile, EXIF
// (GPS, orientation, maker note), XMP and a private chunk.
func webpWithMetadata(w, h int) []byte {
	return riff(
		vp8x(0x20|0x08|0x04, w, h),
		webpChunkT{"ICCP", testICCData},
		webpChunkT{"VP8L", vp8lChecker(w, h)},
		webpChunkT{"EXIF", testTIFF(binary.LittleEndian, 6)},
		webpChunkT{"XMP ", []byte(testXMP)},
		webpChunkT{"prVt", []byte("SECRET-TEXT")},
	)
}

func TestWebPPrivacy(t *testing.T) {
	orig := webpWithMetadata(13, 9)
	r := inspectOK(t, orig)
	if want := []string{"EXIF", "GPS", "MakerNote", "XMP", "chunk prVt"}; !slices.Equal(r.Removed, want) {
		t.Errorf("removed %q, want %q", r.Removed, want)
	}
	assertNoSecrets(t, r.Data)
	want := riff(vp8x(0x20, 13, 9), webpChunkT{"ICCP", testICCData}, webpChunkT{"VP8L", vp8lChecker(13, 9)})
	if !bytes.Equal(r.Data, want) {
		t.Fatalf("cleaned file has chunks %v", webpChunkList(r.Data))
	}
	m := decode(t, TypeWebP, r.Data)
	samePixels(t, decode(t, TypeWebP, orig), m)
	// The hand-made bitstream really is the checkerboard it claims.
	for _, p := range []struct{ x, y, g int }{{0, 0, 0x20}, {1, 0, 0xC0}, {12, 8, 0x20}} {
		if r, g, b, a := m.At(p.x, p.y).RGBA(); r>>8 != 0x40 || g>>8 != uint32(p.g) || b>>8 != 0x80 || a>>8 != 0xFF {
			t.Fatalf("pixel (%d,%d) is %v", p.x, p.y, m.At(p.x, p.y))
		}
	}
}

func TestWebPPrivacyLibwebp(t *testing.T) {
	// Made by cwebp and webpmux: VP8X, ICCP, ALPH, VP8, EXIF, XMP.
	orig := readTestdata(t, "metadata.webp")
	r := inspectOK(t, orig)
	if got := strings.Join(webpChunkList(r.Data), ","); got != "VP8X,ICCP,ALPH,VP8 " {
		t.Fatalf("chunks %s", got)
	}
	if flags := r.Data[20]; flags&(vp8xEXIF|vp8xXMP) != 0 || flags&0x30 != 0x30 {
		t.Fatalf("VP8X flags %08b", flags)
	}
	if got := binary.LittleEndian.Uint32(r.Data[4:]); int(got) != len(r.Data)-8 {
		t.Fatalf("RIFF size %d for %d bytes", got, len(r.Data))
	}
	if !slices.Equal(r.Removed, []string{"EXIF", "XMP"}) {
		t.Fatalf("removed %v", r.Removed)
	}
	assertNoSecrets(t, r.Data)
	samePixels(t, decode(t, TypeWebP, orig), decode(t, TypeWebP, r.Data))
}

func TestWebPSimpleWithExtraChunks(t *testing.T) {
	// A simple-format file has only its image chunk; what follows goes.
	img := webpChunkT{"VP8L", vp8lChecker(5, 3)}
	r := inspectOK(t, riff(img, webpChunkT{"EXIF", testTIFF(binary.BigEndian, 6)}))
	if !bytes.Equal(r.Data, riff(img)) || !slices.Equal(r.Removed, []string{"EXIF"}) {
		t.Fatalf("removed %v", r.Removed)
	}
}

func TestWebPOddChunkPadding(t *testing.T) {
	// VP8L of 5x3 is an odd number of bytes; the writer left the final
	// pad byte off (RIFF size odd, equal to the data): accepted and
	// written back padded.
	img := vp8lChecker(5, 3)
	if len(img)%2 == 0 {
		img = vp8lChecker(4, 3)
	}
	if len(img)%2 == 0 {
		t.Skip("fixture not odd")
	}
	padded := riff(webpChunkT{"VP8L", img})
	unpadded := bytes.Clone(padded[:len(padded)-1])
	binary.LittleEndian.PutUint32(unpadded[4:], uint32(len(unpadded)-8))
	r := inspectOK(t, unpadded)
	if !bytes.Equal(r.Data, padded) {
		t.Fatal("not written back padded")
	}
}

func TestWebPMalformed(t *testing.T) {
	lossless := riff(webpChunkT{"VP8L", vp8lChecker(6, 6)})
	longer := bytes.Clone(lossless)
	binary.LittleEndian.PutUint32(longer[4:], uint32(len(lossless)))
	chunkPast := bytes.Clone(lossless)
	binary.LittleEndian.PutUint32(chunkPast[16:], 1000)
	checkMalformed(t, false, []malformedCase{
		{"riff size past the end", longer, "the WebP file is truncated: the header says"},
		{"chunk past the end", chunkPast, `the WebP file is corrupt: the "VP8L" chunk runs past the end of the file`},
		{"no chunks", []byte("RIFF\x04\x00\x00\x00WEBP"), "the WebP file is corrupt: it contains no image"},
		{"unknown first chunk", riff(webpChunkT{"JUNK", []byte("abcd")}), `the WebP file is corrupt: it starts with an unknown "JUNK" chunk`},
		{"canvas mismatch", riff(vp8x(0, 7, 6), webpChunkT{"VP8L", vp8lChecker(6, 6)}), "the WebP file is corrupt: the image is 6 x 6 but the canvas is 7 x 6"},
		{"extended without image", riff(vp8x(0x20, 6, 6), webpChunkT{"ICCP", []byte("x")}), "the WebP file is corrupt: it contains no image data"},
		{"two images", riff(vp8x(0, 6, 6), webpChunkT{"VP8L", vp8lChecker(6, 6)}, webpChunkT{"VP8L", vp8lChecker(6, 6)}), "the WebP file is corrupt: it has more than one image chunk"},
		{"vp8l signature", riff(webpChunkT{"VP8L", []byte{0x2E, 0, 0, 0, 0}}), "the WebP file is corrupt: the VP8L signature is wrong"},
		{"vp8x length", riff(webpChunkT{"VP8X", make([]byte, 8)}), "the WebP file is corrupt: the VP8X chunk has the wrong length"},
		{"animation without frames", riff(vp8x(0x02, 6, 6), webpChunkT{"ANIM", make([]byte, 6)}), "the WebP file is corrupt: the animation has no frames"},
		{"frame outside canvas", riff(vp8x(0x02, 6, 6), webpChunkT{"ANIM", make([]byte, 6)}, anmf(2, 0, 6, 6, webpChunkT{"VP8L", vp8lChecker(6, 6)})), "the WebP file is corrupt: an animation frame lies outside the canvas"},
		{"frame size mismatch", riff(vp8x(0x02, 6, 6), webpChunkT{"ANIM", make([]byte, 6)}, anmf(0, 0, 6, 6, webpChunkT{"VP8L", vp8lChecker(5, 6)})), "the WebP file is corrupt: an animation frame's image does not match its declared size"},
	})
}

func TestWebPHandBuiltAnimation(t *testing.T) {
	b := riff(vp8x(0x02, 8, 8), webpChunkT{"ANIM", make([]byte, 6)},
		anmf(0, 0, 8, 8, webpChunkT{"VP8L", vp8lChecker(8, 8)}),
		anmf(2, 4, 3, 4, webpChunkT{"VP8L", vp8lChecker(3, 4)}),
		webpChunkT{"XMP ", []byte(testXMP)})
	r := inspectOK(t, b)
	if got := strings.Join(webpChunkList(r.Data), ","); got != "VP8X,ANIM,ANMF,ANMF" {
		t.Fatalf("chunks %s", got)
	}
}

// anmf builds an animation frame at (x, y), which must be even.
func anmf(x, y, w, h int, chunks ...webpChunkT) webpChunkT {
	d := make([]byte, 16)
	put := func(p, v int) { d[p], d[p+1], d[p+2] = byte(v), byte(v>>8), byte(v>>16) }
	put(0, x/2)
	put(3, y/2)
	put(6, w-1)
	put(9, h-1)
	inner := riff(chunks...)[12:]
	return webpChunkT{"ANMF", append(d, inner...)}
}
