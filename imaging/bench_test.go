package imaging

import (
	"bytes"
	"encoding/binary"
	"image"
	"math/rand/v2"
	"testing"
)

// hostileInputs are ~1 MiB files built to make a careless parser slow or
// hungry: hundreds of thousands of tiny chunks, blocks and segments, most
// with distinct names, and entropy data that is all escapes.
func hostileInputs(t testing.TB) map[string][]byte {
	const size = 1 << 20
	name := func(i int, third byte) string { // distinct for each i
		return string([]byte{'a' + byte(i%26), 'a' + byte(i/26%26), third + byte(i/676%26), 'a' + byte(i/17576%26)})
	}
	p, g, j := encPNG(t, testImage(4, 4)), encGIF(t, 4, 4, 1), encJPEG(t, testImage(8, 8), 50)
	var chunks, exts []byte
	for i := 0; len(chunks) < size; i++ {
		chunks = append(chunks, pngChunkT(name(i, 'A'))...)
	}
	for i := 0; len(exts) < size; i++ {
		switch label := byte(i); i % 3 {
		case 0:
			exts = append(exts, 0x21, 0xFE, 0)
		case 1: // an unknown label (not plain text, control, comment or application)
			if label == 0x01 || label >= 0xF9 {
				label = 0x02
			}
			exts = append(exts, 0x21, label, 0)
		default:
			exts = append(exts, gifExt(0xFF, cat([]byte{byte(i), byte(i >> 8), byte(i >> 16)}, []byte("XXXXX1.0")), nil)...)
		}
	}
	// Tiny frames sharing a global colour table: a 2x2 table, then for
	// each frame a descriptor, LZW size 2 and an empty data chain.
	frames := []byte("GIF89a\x04\x00\x04\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff")
	for len(frames) < size {
		frames = append(frames, 0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 0)
	}
	wchunks := []webpChunkT{vp8x(0, 4, 4), {"VP8L", vp8lChecker(4, 4)}}
	for i := 0; i*8 < size; i++ {
		wchunks = append(wchunks, webpChunkT{name(i, 'a'), nil})
	}
	anim := []webpChunkT{vp8x(vp8xAnimation, 4, 4), {"ANIM", make([]byte, 6)}}
	frame := anmf(0, 0, 4, 4, webpChunkT{"VP8L", vp8lChecker(4, 4)})
	for i := 0; i*(len(frame.data)+8) < size; i++ {
		anim = append(anim, frame)
	}
	sos := bytes.LastIndex(j, []byte{0xFF, mSOS})
	scan := sos + 2 + int(j[sos+2])<<8 | int(j[sos+3])
	return map[string][]byte{
		"png distinct private chunks": insert(p, 33, chunks),
		"png text chunks":             insert(p, 33, bytes.Repeat(pngChunkT("tEXt", []byte("k\x00v")), size/15)),
		"gif extensions":              insert(g, gifBlocksStart(g), exts),
		"gif frames":                  append(frames, 0x3B),
		"webp distinct chunks":        riff(wchunks...),
		"webp frames":                 riff(anim...),
		"jpeg comments":               insert(j, 2, bytes.Repeat(jpegSeg(mCOM), size/4)),
		"jpeg exif segments": insert(j, 2, bytes.Repeat(jpegSeg(mAPP1, []byte("Exif\x00\x00"), testTIFF(binary.LittleEndian, 6)),
			size/180)),
		"jpeg escaped scan": cat(j[:scan], bytes.Repeat([]byte{0xFF, 0x00}, size/2), j[len(j)-2:]),
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

// BenchmarkInspectJPEG: a photo-sized upload, a noisy 1.0 MB JPEG with EXIF
// (GPS), XMP and ICC; one pass over the bytes (bytes.IndexByte) and a copy.
func BenchmarkInspectJPEG(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	const w, h, noise = 1280, 960, 110
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(m.Pix); i += 4 {
		x, y := i/4%w, i/4/w
		m.Pix[i] = uint8(x/4) + uint8(rng.IntN(noise))
		m.Pix[i+1] = uint8(y/3) + uint8(rng.IntN(noise))
		m.Pix[i+2] = uint8((x+y)/7) + uint8(rng.IntN(noise))
		m.Pix[i+3] = 255
	}
	data := jpegWithMetadata(encJPEG(b, m, 92), 6)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.Logf("input %d bytes", len(data))
	for b.Loop() {
		if _, err := Inspect(data, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}
