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

// riffChunk is one chunk; its id stays in bytes so that walking a file of
// many small chunks allocates nothing per chunk.
type riffChunk struct {
	id   []byte
	data []byte
}

// inspectWebP checks the RIFF header against the file length, walks the
// chunks and reads the dimensions from the first one: VP8 (lossy), VP8L
// (lossless) or VP8X (extended, with a canvas size that the image or every
// animation frame must agree with). EXIF, XMP and unknown chunks are
// dropped and VP8X's EXIF and XMP flags cleared; the kept chunks are
// written out as they are met, with padding, and the RIFF size fixed at
// the end. Bytes after the RIFF data are dropped.
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
	body := data[12 : 8+size]
	if len(body) == 0 {
		return Result{}, corrupt(fWebP, "it contains no image")
	}
	first, pos, err := chunkAt(body, 0)
	if err != nil {
		return Result{}, err
	}
	var w, h int
	// The output is never longer than the input plus the one pad byte a
	// writer may have left off the last chunk.
	out := make([]byte, 0, len(body)+13)
	out = append(out, "RIFF\x00\x00\x00\x00WEBP"...)
	switch string(first.id) {
	case "VP8 ", "VP8L":
		// Simple format: the image chunk is the whole file; anything
		// after it is not part of the format and is dropped.
		if w, h, err = webpImageDims(first); err != nil {
			return Result{}, err
		}
		if err := checkDims(fWebP, w, h, lim); err != nil {
			return Result{}, err
		}
		out = appendChunk(out, first.id, first.data)
		var name [10]byte
		for pos < len(body) {
			var c riffChunk
			if c, pos, err = chunkAt(body, pos); err != nil {
				return Result{}, err
			}
			rm.addBytes(webpChunkName(&name, c.id))
		}
	case "VP8X":
		if out, w, h, err = webpExtended(out, first, body, pos, lim, &rm); err != nil {
			return Result{}, err
		}
	default:
		return Result{}, corrupt(fWebP, fmt.Sprintf("it starts with an unknown %q chunk", first.id))
	}
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8))
	return Result{ContentType: TypeWebP, Width: w, Height: h, Data: out, Removed: rm}, nil
}

// webpExtended validates a VP8X file, whose VP8X chunk is x and whose
// other chunks start at body[pos:], and appends the chunks to keep to out.
// Its checks follow libwebp's: the VP8X chunk is 10 bytes, a still image
// has exactly one VP8 or VP8L chunk (an ALPH chunk only before VP8) whose
// size equals the canvas, and an animation has ANIM and ANMF frames that
// lie inside the canvas.
func webpExtended(out []byte, x riffChunk, body []byte, pos int, lim Limits, rm *removed) ([]byte, int, int, error) {
	if len(x.data) != 10 {
		return nil, 0, 0, corrupt(fWebP, "the VP8X chunk has the wrong length")
	}
	w, h := 1+int(le24(x.data[4:])), 1+int(le24(x.data[7:]))
	if err := checkDims(fWebP, w, h, lim); err != nil {
		return nil, 0, 0, err
	}
	animated := x.data[0]&vp8xAnimation != 0
	// The metadata flags are cleared to match the chunks dropped below;
	// the flags byte is patched in out, never in the input.
	out = appendChunk(out, x.id, x.data)
	out[len(out)-10] &^= vp8xEXIF | vp8xXMP
	var (
		sawImage, sawALPH, sawANIM bool
		frames                     int
		name                       [10]byte
	)
	for pos < len(body) {
		c, next, err := chunkAt(body, pos)
		if err != nil {
			return nil, 0, 0, err
		}
		pos = next
		keep := true
		switch string(c.id) {
		case "VP8X":
			return nil, 0, 0, corrupt(fWebP, "it has more than one VP8X chunk")
		case "ICCP":
		case "EXIF":
			keep = false
			rm.add("EXIF")
			info := parseTIFF(bytes.TrimPrefix(c.data, []byte("Exif\x00\x00")))
			if info.gps {
				rm.add("GPS")
			}
			if info.makerNote {
				rm.add("MakerNote")
			}
		case "XMP ":
			keep = false
			rm.add("XMP")
		case "ANIM":
			if !animated || len(c.data) != 6 {
				return nil, 0, 0, corrupt(fWebP, "the ANIM chunk is invalid or misplaced")
			}
			sawANIM = true
		case "ANMF":
			if !animated || !sawANIM {
				return nil, 0, 0, corrupt(fWebP, "an animation frame is misplaced")
			}
			if err := webpFrame(c.data, w, h); err != nil {
				return nil, 0, 0, err
			}
			frames++
		case "ALPH":
			if animated || sawImage || sawALPH {
				return nil, 0, 0, corrupt(fWebP, "the ALPH chunk is misplaced")
			}
			sawALPH = true
		case "VP8 ", "VP8L":
			if animated || sawImage {
				return nil, 0, 0, corrupt(fWebP, "it has more than one image chunk")
			}
			if string(c.id) == "VP8L" && sawALPH {
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
		default:
			keep = false
			rm.addBytes(webpChunkName(&name, c.id))
		}
		if keep {
			out = appendChunk(out, c.id, c.data)
		}
	}
	if animated && frames == 0 {
		return nil, 0, 0, corrupt(fWebP, "the animation has no frames")
	}
	if !animated && !sawImage {
		return nil, 0, 0, corrupt(fWebP, "it contains no image data")
	}
	return out, w, h, nil
}

func appendChunk(out, id, data []byte) []byte {
	out = append(out, id...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(data)))
	out = append(out, data...)
	if len(data)&1 == 1 {
		out = append(out, 0)
	}
	return out
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
	b := p[16:]
	for i, pos := 0, 0; pos < len(b); i++ {
		c, next, err := chunkAt(b, pos)
		if err != nil {
			return err
		}
		pos = next
		switch string(c.id) {
		case "ALPH":
			if i != 0 {
				return corrupt(fWebP, "an animation frame's ALPH chunk is misplaced")
			}
			continue
		case "VP8 ", "VP8L":
			if string(c.id) == "VP8L" && i != 0 {
				return corrupt(fWebP, "an animation frame's ALPH chunk is misplaced")
			}
			iw, ih, err := webpImageDims(c)
			if err != nil {
				return err
			}
			if iw != fw || ih != fh {
				return corrupt(fWebP, "an animation frame's image does not match its declared size")
			}
			// Unknown chunks may follow the bitstream inside a frame;
			// they are kept with the frame, which is copied whole.
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
	if string(c.id) == "VP8L" {
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

// chunkAt reads the chunk at b[pos:] and returns it with the offset of the
// next one. A chunk of odd size is followed by a pad byte, which some
// writers leave off the last chunk; next may then be len(b)+1, which ends
// the caller's walk like len(b) does.
func chunkAt(b []byte, pos int) (riffChunk, int, error) {
	if pos+8 > len(b) {
		return riffChunk{}, 0, corrupt(fWebP, "a chunk header runs past the end of the file")
	}
	id := b[pos : pos+4]
	n := uint64(binary.LittleEndian.Uint32(b[pos+4:]))
	if n > uint64(len(b)-pos-8) {
		return riffChunk{}, 0, corrupt(fWebP, fmt.Sprintf("the %q chunk runs past the end of the file", id))
	}
	end := pos + 8 + int(n)
	return riffChunk{id: id, data: b[pos+8 : end]}, end + int(n&1), nil
}

var (
	nameEXIF = []byte("EXIF")
	nameXMP  = []byte("XMP")
)

// webpChunkName is the Removed name of a dropped chunk, built in buf so
// that dropping many chunks does not allocate for each.
func webpChunkName(buf *[10]byte, id []byte) []byte {
	switch string(id) {
	case "EXIF":
		return nameEXIF
	case "XMP ":
		return nameXMP
	}
	copy(buf[:], "chunk ????")
	for i, c := range id {
		if c >= 0x20 && c < 0x7F {
			buf[6+i] = c
		}
	}
	return buf[:]
}

func le24(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
}
