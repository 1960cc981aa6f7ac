package imaging

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
)

func zlibBytes(b []byte) []byte {
	var buf bytes.Buffer
	z := zlib.NewWriter(&buf)
	z.Write(b)
	z.Close()
	return buf.Bytes()
}

var testICCP = pngChunkT("iCCP", []byte("sRGB-ish\x00\x00"), zlibBytes(bytes.Repeat([]byte("fake-icc"), 30)))

// pngWithMetadata adds what editors and phones write: an ICC profile and
// physical size (kept), text, compressed text, XMP in iTXt, EXIF with GPS
// and orientation, a timestamp and a private chunk (all removed).
func pngWithMetadata(t testing.TB, p []byte, orientation int) []byte {
	return pngInsert(p,
		testICCP,
		pngChunkT("pHYs", []byte{0, 0, 0x0B, 0x13, 0, 0, 0x0B, 0x13, 1}),
		pngChunkT("tEXt", []byte("Author\x00SECRET-TEXT")),
		pngChunkT("zTXt", []byte("Comment\x00\x00"), zlibBytes([]byte("compressed"))),
		pngChunkT("iTXt", []byte("XML:com.adobe.xmp\x00\x00\x00\x00\x00"), []byte(testXMP)),
		pngChunkT("iTXt", []byte("Description\x00\x00\x00en\x00\x00SECRET-TEXT")),
		pngChunkT("eXIf", testTIFF(binary.BigEndian, orientation)),
		pngChunkT("tIME", []byte{0x07, 0xE9, 1, 2, 3, 4, 5}),
		pngChunkT("prVt", []byte("SECRET-TEXT")),
	)
}

func TestPNGPrivacy(t *testing.T) {
	plain := encPNG(t, testImage(12, 8))
	orig := pngWithMetadata(t, plain, 6)
	r := inspectOK(t, orig)
	want := []string{"text", "XMP", "EXIF", "GPS", "MakerNote", "timestamp", "prVt"}
	if !slices.Equal(r.Removed, want) {
		t.Errorf("removed %q, want %q", r.Removed, want)
	}
	assertNoSecrets(t, r.Data)
	if got := strings.Join(pngChunkTypes(r.Data), ","); got != "IHDR,iCCP,pHYs,eXIf,IDAT,IEND" {
		t.Errorf("chunks %s", got)
	}
	if !bytes.Contains(r.Data, testICCP) {
		t.Error("iCCP changed")
	}
	if !bytes.Equal(pngChunkBody(r.Data, "eXIf"), minimalTIFF(6)) || r.Orientation != 6 {
		t.Errorf("eXIf kept is % x", pngChunkBody(r.Data, "eXIf"))
	}
	samePixels(t, decode(t, TypePNG, plain), decode(t, TypePNG, r.Data))
	samePixels(t, decode(t, TypePNG, orig), decode(t, TypePNG, r.Data))

	// Upright: no eXIf at all.
	r = inspectOK(t, pngWithMetadata(t, plain, 1))
	if slices.Contains(pngChunkTypes(r.Data), "eXIf") || r.Orientation != 1 {
		t.Errorf("chunks %v", pngChunkTypes(r.Data))
	}
}

func TestPNGKeepsAnimation(t *testing.T) {
	// APNG chunks around a plain image: acTL before IDAT, fcTL, fdAT after.
	plain := encPNG(t, testImage(4, 4))
	iend := len(plain) - 12
	actl := pngChunkT("acTL", []byte{0, 0, 0, 1, 0, 0, 0, 0})
	fctl := pngChunkT("fcTL", make([]byte, 26))
	b := cat(pngInsert(plain[:iend], actl), fctl, pngChunkT("fdAT", []byte{0, 0, 0, 1, 1, 2, 3}), plain[iend:])
	r := inspectOK(t, b)
	if !bytes.Equal(r.Data, b) {
		t.Fatalf("APNG chunks changed: %v", pngChunkTypes(r.Data))
	}
}

func TestPNGMalformed(t *testing.T) {
	plain := encPNG(t, testImage(4, 4))
	badCRC := bytes.Clone(plain)
	badCRC[len(badCRC)-20]++ // a byte of IDAT
	idat := bytes.Index(plain, []byte("IDAT")) - 4
	checkMalformed(t, true, []malformedCase{
		{"bad crc", badCRC, "the PNG file is corrupt: the IDAT chunk has a bad checksum"},
		{"no IHDR first", cat(pngMagic, pngChunkT("tEXt", []byte("a\x00b")), plain[8:]), "the PNG file is corrupt: it does not start with an IHDR chunk"},
		{"no IDAT", cat(plain[:33], plain[len(plain)-12:]), "the PNG file is corrupt: it has no image data (IDAT chunk)"},
		{"unknown critical", pngInsert(plain, pngChunkT("ZZZZ", nil)), `the PNG file is corrupt: it contains an unknown critical chunk "ZZZZ"`},
		{"IDAT split", cat(plain[:len(plain)-12], pngChunkT("tEXt", []byte("a\x00b")), plain[idat:]), "the PNG file is corrupt: its IDAT chunks are not consecutive"},
		{"bad type", cat(plain[:33], []byte("\x00\x00\x00\x00a<b>\x00\x00\x00\x00"), plain[33:]), "the PNG file is corrupt: invalid chunk type at byte 37"},
		{"bad depth", cat(pngMagic, pngChunk("IHDR", []byte{0, 0, 0, 4, 0, 0, 0, 4, 3, 2, 0, 0, 0}), plain[33:]), "the PNG file is corrupt: colour type 2 with bit depth 3 is not allowed"},
		{"paletted without PLTE", cat(pngMagic, pngChunk("IHDR", []byte{0, 0, 0, 4, 0, 0, 0, 4, 8, 3, 0, 0, 0}), plain[33:]), "the PNG file is corrupt: the palette (PLTE chunk) is missing"},
	})
}
