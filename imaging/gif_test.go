package imaging

import (
	"bytes"
	"encoding/binary"
	"image/gif"
	"slices"
	"testing"
)

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
		out = append(out, byte(len(first)))
		out = append(out, first...)
	}
	for len(payload) > 0 {
		n := min(len(payload), 255)
		out = append(out, byte(n))
		out = append(out, payload[:n]...)
		payload = payload[n:]
	}
	return append(out, 0)
}

// gifXMP is an XMP application extension as Adobe writes it: the packet
// raw, not in sub-blocks, followed by the 258-byte "magic trailer" that
// makes a sub-block reader skip it whatever byte it lands on.
func gifXMP() []byte {
	out := cat([]byte{0x21, 0xFF, 11}, []byte("XMP DataXMP"), []byte(testXMP), []byte{1})
	for i := 255; i >= 0; i-- {
		out = append(out, byte(i))
	}
	return append(out, 0)
}

// gifWithMetadata adds a comment and XMP before the first block and a
// comment and an unknown application extension before the trailer.
func gifWithMetadata(t testing.TB, g []byte) []byte {
	at := gifBlocksStart(g)
	end := len(g) - 1
	return cat(g[:at],
		gifExt(0xFE, nil, []byte("SECRET-COMMENT")),
		gifXMP(),
		g[at:end],
		gifExt(0xFE, nil, bytes.Repeat([]byte("SECRET-COMMENT "), 30)),
		gifExt(0xFF, []byte("MGK8BIM0000"), []byte("SECRET-IPTC")),
		g[end:])
}

func TestGIFPrivacy(t *testing.T) {
	plain := encGIF(t, 10, 6, 3)
	orig := gifWithMetadata(t, plain)
	r := inspectOK(t, orig)
	if !bytes.Equal(r.Data, plain) {
		t.Fatal("the cleaned GIF is not the original without the extensions")
	}
	if want := []string{"comment", "XMP", "application extension"}; !slices.Equal(r.Removed, want) {
		t.Errorf("removed %q, want %q", r.Removed, want)
	}
	assertNoSecrets(t, r.Data)
	if !bytes.Contains(r.Data, []byte("NETSCAPE2.0")) {
		t.Error("looping extension lost")
	}
	a, err := gif.DecodeAll(bytes.NewReader(orig))
	if err != nil {
		t.Fatal(err)
	}
	b, err := gif.DecodeAll(bytes.NewReader(r.Data))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Image) != 3 || len(b.Image) != 3 || a.LoopCount != b.LoopCount || !slices.Equal(a.Delay, b.Delay) {
		t.Fatalf("animation changed: %d/%d frames, loop %d/%d", len(a.Image), len(b.Image), a.LoopCount, b.LoopCount)
	}
	for i := range a.Image {
		samePixels(t, a.Image[i], b.Image[i])
	}
}

func TestGIFKeeps(t *testing.T) {
	plain := encGIF(t, 4, 4, 1)
	at := gifBlocksStart(plain)
	b := cat(plain[:at],
		gifExt(0xFF, []byte("ANIMEXTS1.0"), []byte{1, 0, 0}),
		gifExt(0xFF, []byte("ICCRGBG1012"), []byte("fake-icc")),
		gifExt(0x01, make([]byte, 12), []byte("plain text")),
		plain[at:])
	r := inspectOK(t, b)
	if !bytes.Equal(r.Data, b) || len(r.Removed) != 0 {
		t.Fatalf("removed %v", r.Removed)
	}
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

func TestGIFMalformed(t *testing.T) {
	plain := encGIF(t, 4, 4, 1)
	at := gifBlocksStart(plain)
	noTable := bytes.Clone(plain)
	noTable[gifFirstDescriptor(plain)+9] &^= 0x80 // first frame: drop the local colour table flag
	checkMalformed(t, true, []malformedCase{
		{"no image", cat(plain[:at], []byte{0x3B}), "the GIF file is corrupt: it contains no image"},
		{"garbage block", cat(plain[:at], []byte("<script>"), plain[at:]), "the GIF file is corrupt: unexpected byte 0x3C at offset 13 where a block should start"},
		{"bad graphic control", cat(plain[:at], []byte{0x21, 0xF9, 3, 0, 0, 0, 0}, plain[at:]), "the GIF file is corrupt: a graphic control extension has the wrong size"},
		{"no colour table", noTable, "the GIF file is corrupt: an image has no colour table"},
		{"header only", []byte("GIF89a\x01\x00"), "the GIF file is truncated: the header is cut off"},
	})
}

func TestGIFFrameOutsideScreen(t *testing.T) {
	// Browsers show frames beyond the logical screen; accepted while the
	// total stays within the limits.
	b := gifFrameAt(t, 50, 50, 4, 4)
	r := inspectOK(t, b)
	if r.Width != 4 || r.Height != 4 {
		t.Fatalf("%dx%d", r.Width, r.Height)
	}
}
