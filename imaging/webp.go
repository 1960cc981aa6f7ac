package imaging

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

const fWebP = "WebP"

// VP8X flag bits.
const (
	vp8xAnimation = 1 << 1
	vp8xXMP       = 1 << 2
	vp8xEXIF      = 1 << 3
)

type riffChunk struct {
	id   string
	data []byte
}

// inspectWebP checks the RIFF header against the file length, walks the
// chunks and reads the dimensions from the first one: VP8 (lossy), VP8L
// (lossless) or VP8X (extended, with a canvas size that the image or every
// animation frame must agree with). EXIF, XMP and unknown chunks are
// dropped and VP8X's EXIF and XMP flags cleared; the file is rebuilt with a
// correct RIFF size and padding. Bytes after the RIFF data are dropped.
func inspectWebP(data []byte, lim Limits) (Result, error) {
	size := uint64(binary.LittleEndian.Uint32(data[4:]))
	if size < 4 {
		return Result{}, corrupt(fWebP, "the RIFF header declares an impossible size")
	}
	if size+8 > uint64(len(data)) {
		return Result{}, truncated(fWebP, fmt.Sprintf("the header says %d bytes but there are only %d", size+8, len(data)))
	}
	var rm removed
	if size+8 < uint64(len(data)) {
		rm.add("trailing data")
	}
	chunks, err := riffChunks(data[12 : 8+size])
	if err != nil {
		return Result{}, err
	}
	if len(chunks) == 0 {
		return Result{}, corrupt(fWebP, "it contains no image")
	}
	var (
		kept []riffChunk
		w, h int
	)
	switch first := chunks[0]; first.id {
	case "VP8 ", "VP8L":
		// Simple format: the image chunk is the whole file; anything
		// after it is not part of the format and is dropped.
		if w, h, err = webpImageDims(first); err != nil {
			return Result{}, err
		}
		if err := checkDims(fWebP, w, h, lim); err != nil {
			return Result{}, err
		}
		kept = chunks[:1]
		for _, c := range chunks[1:] {
			rm.add(webpChunkName(c.id))
		}
	case "VP8X":
		if kept, w, h, err = webpExtended(chunks, lim, &rm); err != nil {
			return Result{}, err
		}
	default:
		return Result{}, corrupt(fWebP, fmt.Sprintf("it starts with an unknown %q chunk", first.id))
	}

	n := 4
	for _, c := range kept {
		n += 8 + len(c.data) + len(c.data)&1
	}
	out := make([]byte, 0, 8+n)
	out = append(out, "RIFF"...)
	out = binary.LittleEndian.AppendUint32(out, uint32(n))
	out = append(out, "WEBP"...)
	for _, c := range kept {
		out = append(out, c.id...)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(c.data)))
		out = append(out, c.data...)
		if len(c.data)&1 == 1 {
			out = append(out, 0)
		}
	}
	return Result{ContentType: TypeWebP, Width: w, Height: h, Data: out, Removed: rm}, nil
}

// webpExtended validates a VP8X file and returns the chunks to keep. Its
// checks follow libwebp's: the VP8X chunk is 10 bytes, a still image has
// exactly one VP8 or VP8L chunk (an ALPH chunk only before VP8) whose size
// equals the canvas, and an animation has ANIM and ANMF frames that lie
// inside the canvas.
func webpExtended(chunks []riffChunk, lim Limits, rm *removed) ([]riffChunk, int, int, error) {
	x := chunks[0].data
	if len(x) != 10 {
		return nil, 0, 0, corrupt(fWebP, "the VP8X chunk has the wrong length")
	}
	w, h := 1+int(le24(x[4:])), 1+int(le24(x[7:]))
	if err := checkDims(fWebP, w, h, lim); err != nil {
		return nil, 0, 0, err
	}
	flags := x[0]
	animated := flags&vp8xAnimation != 0
	// A copy, so the input is never written to, with the metadata flags
	// cleared to match the chunks dropped below.
	nx := append([]byte(nil), x...)
	nx[0] &^= vp8xEXIF | vp8xXMP
	kept := []riffChunk{{id: "VP8X", data: nx}}
	var sawImage, sawALPH, sawANIM bool
	frames := 0
	for _, c := range chunks[1:] {
		switch c.id {
		case "VP8X":
			return nil, 0, 0, corrupt(fWebP, "it has more than one VP8X chunk")
		case "ICCP":
			kept = append(kept, c)
		case "EXIF":
			rm.add("EXIF")
			tiff := bytes.TrimPrefix(c.data, []byte("Exif\x00\x00"))
			info := parseTIFF(tiff)
			if info.gps {
				rm.add("GPS")
			}
			if info.makerNote {
				rm.add("MakerNote")
			}
		case "XMP ":
			rm.add("XMP")
		case "ANIM":
			if !animated || len(c.data) != 6 {
				return nil, 0, 0, corrupt(fWebP, "the ANIM chunk is invalid or misplaced")
			}
			sawANIM = true
			kept = append(kept, c)
		case "ANMF":
			if !animated || !sawANIM {
				return nil, 0, 0, corrupt(fWebP, "an animation frame is misplaced")
			}
			if err := webpFrame(c.data, w, h); err != nil {
				return nil, 0, 0, err
			}
			frames++
			kept = append(kept, c)
		case "ALPH":
			if animated || sawImage || sawALPH {
				return nil, 0, 0, corrupt(fWebP, "the ALPH chunk is misplaced")
			}
			sawALPH = true
			kept = append(kept, c)
		case "VP8 ", "VP8L":
			if animated || sawImage {
				return nil, 0, 0, corrupt(fWebP, "it has more than one image chunk")
			}
			if c.id == "VP8L" && sawALPH {
				return nil, 0, 0, corrupt(fWebP, "the ALPH chunk is misplaced")
			}
			iw, ih, err := webpImageDims(c)
			if err != nil {
				return nil, 0, 0, err
			}
			if iw != w || ih != h {
				return nil, 0, 0, corrupt(fWebP, fmt.Sprintf("the image is %d x %d but the canvas is %d x %d", iw, ih, w, h))
			}
			sawImage = true
			kept = append(kept, c)
		default:
			rm.add(webpChunkName(c.id))
		}
	}
	if animated && frames == 0 {
		return nil, 0, 0, corrupt(fWebP, "the animation has no frames")
	}
	if !animated && !sawImage {
		return nil, 0, 0, corrupt(fWebP, "it contains no image data")
	}
	return kept, w, h, nil
}

// webpFrame validates an ANMF payload: position and size inside the
// canvas, then an optional ALPH and a VP8 or VP8L chunk of the frame's size.
func webpFrame(p []byte, cw, ch int) error {
	if len(p) < 16 {
		return corrupt(fWebP, "an animation frame header is cut off")
	}
	fx, fy := 2*int(le24(p[0:])), 2*int(le24(p[3:]))
	fw, fh := 1+int(le24(p[6:])), 1+int(le24(p[9:]))
	if fx+fw > cw || fy+fh > ch {
		return corrupt(fWebP, "an animation frame lies outside the canvas")
	}
	inner, err := riffChunks(p[16:])
	if err != nil {
		return err
	}
	for i, c := range inner {
		switch c.id {
		case "ALPH":
			if i != 0 {
				return corrupt(fWebP, "an animation frame's ALPH chunk is misplaced")
			}
			continue
		case "VP8 ", "VP8L":
			if c.id == "VP8L" && i != 0 {
				return corrupt(fWebP, "an animation frame's ALPH chunk is misplaced")
			}
			iw, ih, err := webpImageDims(c)
			if err != nil {
				return err
			}
			if iw != fw || ih != fh {
				return corrupt(fWebP, "an animation frame's image does not match its declared size")
			}
			return nil
		default:
			return corrupt(fWebP, fmt.Sprintf("an animation frame contains an unexpected %q chunk", c.id))
		}
	}
	return corrupt(fWebP, "an animation frame has no image data")
}

// webpImageDims reads the size from a VP8 key frame header or a VP8L
// header. Nothing past the header is decoded.
func webpImageDims(c riffChunk) (int, int, error) {
	p := c.data
	if c.id == "VP8L" {
		if len(p) < 5 {
			return 0, 0, corrupt(fWebP, "the VP8L header is cut off")
		}
		if p[0] != 0x2F {
			return 0, 0, corrupt(fWebP, "the VP8L signature is wrong")
		}
		bits := binary.LittleEndian.Uint32(p[1:])
		if bits>>29 != 0 {
			return 0, 0, corrupt(fWebP, "the VP8L version is unknown")
		}
		return 1 + int(bits&0x3FFF), 1 + int(bits>>14&0x3FFF), nil
	}
	if len(p) < 10 {
		return 0, 0, corrupt(fWebP, "the VP8 frame header is cut off")
	}
	tag := le24(p)
	switch {
	case tag&1 != 0:
		return 0, 0, corrupt(fWebP, "the VP8 data does not start with a key frame")
	case tag>>1&7 > 3:
		return 0, 0, corrupt(fWebP, "the VP8 version is unknown")
	case tag>>4&1 == 0:
		return 0, 0, corrupt(fWebP, "the VP8 frame is marked invisible")
	case int(tag>>5) > len(p)-10:
		return 0, 0, corrupt(fWebP, "the VP8 first partition runs past the chunk")
	case p[3] != 0x9D || p[4] != 0x01 || p[5] != 0x2A:
		return 0, 0, corrupt(fWebP, "the VP8 start code is wrong")
	}
	w := int(binary.LittleEndian.Uint16(p[6:]) & 0x3FFF)
	h := int(binary.LittleEndian.Uint16(p[8:]) & 0x3FFF)
	if w == 0 || h == 0 {
		return 0, 0, corrupt(fWebP, fmt.Sprintf("the VP8 frame declares a size of %d x %d pixels", w, h))
	}
	return w, h, nil
}

// riffChunks splits a RIFF payload into chunks. A chunk of odd size is
// followed by a pad byte, which some writers leave off the last chunk; that
// one case is accepted.
func riffChunks(b []byte) ([]riffChunk, error) {
	var cs []riffChunk
	pos := 0
	for pos < len(b) {
		if pos+8 > len(b) {
			return nil, corrupt(fWebP, "a chunk header runs past the end of the file")
		}
		id := string(b[pos : pos+4])
		n := uint64(binary.LittleEndian.Uint32(b[pos+4:]))
		if n > uint64(len(b)-pos-8) {
			return nil, corrupt(fWebP, fmt.Sprintf("the %q chunk runs past the end of the file", id))
		}
		cs = append(cs, riffChunk{id: id, data: b[pos+8 : pos+8+int(n)]})
		pos += 8 + int(n) + int(n&1)
	}
	return cs, nil
}

func webpChunkName(id string) string {
	switch id {
	case "EXIF":
		return "EXIF"
	case "XMP ":
		return "XMP"
	}
	return fmt.Sprintf("chunk %q", id)
}

func le24(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
}
