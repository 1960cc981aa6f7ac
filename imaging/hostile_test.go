package imaging

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"testing"
)

// hostileInputs are ~1 MiB files built to make a careless parser slow or
// hungry: hundreds of thousands of tiny chunks, blocks and segments, most
// with distinct names, and entropy data that is all escapes.
func hostileInputs(t testing.TB) map[string][]byte {
	const size = 1 << 20
	in := map[string][]byte{}

	p := encPNG(t, testImage(4, 4))
	var chunks []byte
	for i := 0; len(chunks) < size; i++ {
		typ := []byte{'a' + byte(i%26), 'a' + byte(i/26%26), 'A' + byte(i/676%26), 'a' + byte(i/17576%26)}
		chunks = append(chunks, pngChunk(string(typ), nil)...)
	}
	in["png distinct private chunks"] = pngInsert(p, chunks)
	in["png text chunks"] = pngInsert(p, bytes.Repeat(pngChunkT("tEXt", []byte("k\x00v")), size/15))

	g := encGIF(t, 4, 4, 1)
	at := gifBlocksStart(g)
	var exts []byte
	for i := 0; len(exts) < size; i++ {
		switch i % 3 {
		case 0:
			exts = append(exts, 0x21, 0xFE, 0)
		case 1: // an unknown label (not plain text, control, comment or application)
			label := byte(i)
			if label == 0x01 || label >= 0xF9 {
				label = 0x02
			}
			exts = append(exts, 0x21, label, 0)
		default:
			exts = append(exts, gifExt(0xFF, []byte{byte(i), byte(i >> 8), byte(i >> 16), 'X', 'X', 'X', 'X', 'X', '1', '.', '0'}, nil)...)
		}
	}
	in["gif extensions"] = cat(g[:at], exts, g[at:])
	// Tiny frames sharing a global colour table: a 2x2 table, then for
	// each frame a descriptor, LZW size 2 and an empty data chain.
	frames := []byte("GIF89a\x04\x00\x04\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff")
	for len(frames) < size {
		frames = append(frames, 0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 0)
	}
	in["gif frames"] = append(frames, 0x3B)

	var wchunks []webpChunkT
	for i := 0; len(wchunks)*8 < size; i++ {
		wchunks = append(wchunks, webpChunkT{string([]byte{'a' + byte(i%26), 'a' + byte(i/26%26), 'a' + byte(i/676%26), 'a' + byte(i/17576%26)}), nil})
	}
	in["webp distinct chunks"] = riff(append([]webpChunkT{vp8x(0, 4, 4), {"VP8L", vp8lChecker(4, 4)}}, wchunks...)...)
	anim := []webpChunkT{vp8x(vp8xAnimation, 4, 4), {"ANIM", make([]byte, 6)}}
	frame := anmf(0, 0, 4, 4, webpChunkT{"VP8L", vp8lChecker(4, 4)})
	for i := 0; i*(len(frame.data)+8) < size; i++ {
		anim = append(anim, frame)
	}
	in["webp frames"] = riff(anim...)

	j := encJPEG(t, testImage(8, 8), 50)
	in["jpeg comments"] = jpegInsert(j, bytes.Repeat(jpegSeg(mCOM), size/4))
	in["jpeg exif segments"] = jpegInsert(j, bytes.Repeat(jpegSeg(mAPP1, []byte("Exif\x00\x00"), testTIFF(binary.LittleEndian, 6)), size/180))
	sos := bytes.LastIndex(j, []byte{0xFF, mSOS})
	scan := sos + 2 + int(j[sos+2])<<8 | int(j[sos+3])
	in["jpeg escaped scan"] = cat(j[:scan], bytes.Repeat([]byte{0xFF, 0x00}, size/2), j[len(j)-2:])
	return in
}

// TestHostileInputsBounded: each hostile file is handled with a handful of
// allocations and memory about the size of the file (the cleaned copy),
// which also shows the work is linear: no per-chunk allocation, no list
// growing with the number of chunks.
func TestHostileInputsBounded(t *testing.T) {
	for name, b := range hostileInputs(t) {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r, err := Inspect(b, DefaultLimits())
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if len(r.Removed) > maxRemoved {
				t.Errorf("%d names in Removed", len(r.Removed))
			}
			if n := after.Mallocs - before.Mallocs; n > 64 {
				t.Errorf("%d allocations", n)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > uint64(len(b))+64<<10 {
				t.Errorf("allocated %d bytes for a %d-byte file", n, len(b))
			}
		})
	}
}

func BenchmarkInspectHostile(b *testing.B) {
	for name, data := range hostileInputs(b) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Inspect(data, DefaultLimits()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
