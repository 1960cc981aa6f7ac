package imaging

import "encoding/binary"

// TIFF tags looked at in EXIF blocks.
const (
	tagOrientation = 0x0112
	tagExifIFD     = 0x8769
	tagGPSIFD      = 0x8825
	tagMakerNote   = 0x927C
)

// exifInfo is what Inspect needs to know about an EXIF (TIFF) block: the
// orientation to keep, and what to name in Result.Removed.
type exifInfo struct {
	orientation int // 1 to 8; 0 when absent or out of range
	gps         bool
	makerNote   bool
}

// parseTIFF reads IFD0 and, if present, the EXIF sub-IFD of a TIFF
// structure. It is written for hostile input: every offset and count is
// checked against len(b), it follows at most two fixed pointers (never the
// next-IFD chain, so it cannot loop) and it allocates nothing.
func parseTIFF(b []byte) exifInfo {
	var info exifInfo
	if len(b) < 8 {
		return info
	}
	var bo binary.ByteOrder
	switch string(b[:4]) {
	case "II*\x00":
		bo = binary.LittleEndian
	case "MM\x00*":
		bo = binary.BigEndian
	default:
		return info
	}
	exifIFD := uint32(0)
	eachEntry(b, bo, bo.Uint32(b[4:]), func(tag, typ uint16, count uint32, value []byte) {
		switch tag {
		case tagOrientation:
			var v uint32
			switch {
			case typ == 3 && count >= 1: // SHORT, the type the standard uses
				v = uint32(bo.Uint16(value))
			case typ == 4 && count >= 1: // LONG, written by a few tools
				v = bo.Uint32(value)
			}
			if v >= 1 && v <= 8 {
				info.orientation = int(v)
			}
		case tagGPSIFD:
			info.gps = true
		case tagExifIFD:
			exifIFD = bo.Uint32(value)
		case tagMakerNote:
			info.makerNote = true
		}
	})
	if exifIFD != 0 {
		eachEntry(b, bo, exifIFD, func(tag, _ uint16, _ uint32, _ []byte) {
			if tag == tagMakerNote {
				info.makerNote = true
			}
		})
	}
	return info
}

// eachEntry calls fn for each 12-byte entry of the IFD at off that lies
// inside b; value is the entry's 4-byte value field.
func eachEntry(b []byte, bo binary.ByteOrder, off uint32, fn func(tag, typ uint16, count uint32, value []byte)) {
	if uint64(off)+2 > uint64(len(b)) {
		return
	}
	n := int(bo.Uint16(b[off:]))
	p := int(off) + 2
	for i := 0; i < n && p+12 <= len(b); i++ {
		fn(bo.Uint16(b[p:]), bo.Uint16(b[p+2:]), bo.Uint32(b[p+4:]), b[p+8:p+12])
		p += 12
	}
}

// minimalTIFF is the whole EXIF Inspect writes back when a photo had an
// orientation other than 1: a big-endian TIFF header and an IFD0 holding
// only the Orientation tag, so the photo still displays upright and nothing
// else (no GPS, no camera, no maker notes, no thumbnail) survives.
func minimalTIFF(orientation int) []byte {
	return []byte{
		'M', 'M', 0, 42, // big-endian TIFF
		0, 0, 0, 8, // IFD0 right after the header
		0, 1, // one entry
		0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, byte(orientation), 0, 0, // Orientation, SHORT, 1 value
		0, 0, 0, 0, // no next IFD
	}
}
