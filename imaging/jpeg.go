package imaging

import (
	"bytes"
	"fmt"
)

// JPEG markers (ITU T.81 table B.1).
const (
	mSOF0 = 0xC0 // baseline
	mSOF1 = 0xC1 // extended sequential
	mSOF2 = 0xC2 // progressive
	mDHT  = 0xC4
	mRST0 = 0xD0
	mRST7 = 0xD7
	mSOI  = 0xD8
	mEOI  = 0xD9
	mSOS  = 0xDA
	mDQT  = 0xDB
	mDRI  = 0xDD
	mAPP0 = 0xE0
	mAPP1 = 0xE1
	mAPP2 = 0xE2
	mAPPD = 0xED
	mAPPE = 0xEE
	mAPPF = 0xEF
	mCOM  = 0xFE
)

const fJPEG = "JPEG"

var (
	exifPrefix   = []byte("Exif\x00")
	xmpPrefix    = []byte("http://ns.adobe.com/xap/1.0/\x00")
	xmpExtPrefix = []byte("http://ns.adobe.com/xmp/extension/\x00")
	iccPrefix    = []byte("ICC_PROFILE\x00")
)

// minimalExifSegment is the APP1 segment written back for an orientation.
func minimalExifSegment(orientation int) []byte {
	tiff := minimalTIFF(orientation)
	n := 2 + 6 + len(tiff)
	seg := []byte{0xFF, mAPP1, byte(n >> 8), byte(n)}
	seg = append(seg, "Exif\x00\x00"...)
	return append(seg, tiff...)
}

// inspectJPEG walks the marker segments. Outside entropy-coded data the
// walk is strict (every segment starts with FF and its length must fit),
// because the output is built from the segments it recognises. The image
// must have one frame header (SOF0, SOF1 or SOF2, the kinds browsers show),
// at least one scan, and end with EOI: a file cut anywhere inside the scan
// data has no EOI and is refused. Bytes after EOI are dropped; phones put
// trailers, second images (MPF) and even motion-photo videos there.
func inspectJPEG(data []byte, lim Limits) (Result, error) {
	out := make([]byte, 0, len(data))
	out = append(out, 0xFF, mSOI)
	var (
		rm          removed
		w, h        int
		sawSOF      bool
		sawSOS      bool
		orientation int // of the EXIF written back; 0 if none
	)
	pos := 2
	for {
		if pos >= len(data) {
			return Result{}, truncated(fJPEG, "missing end-of-image marker")
		}
		if data[pos] != 0xFF {
			return Result{}, corrupt(fJPEG, fmt.Sprintf("expected a marker at byte %d", pos))
		}
		// Any number of FF fill bytes may precede a marker.
		for pos < len(data) && data[pos] == 0xFF {
			pos++
		}
		if pos >= len(data) {
			return Result{}, truncated(fJPEG, "missing end-of-image marker")
		}
		m := data[pos]
		pos++

		switch {
		case m == mEOI:
			if !sawSOS {
				return Result{}, corrupt(fJPEG, "it ends before any image data")
			}
			out = append(out, 0xFF, mEOI)
			if pos < len(data) {
				rm.add("trailing data")
			}
			return Result{ContentType: TypeJPEG, Width: w, Height: h, Orientation: orientation, Data: out, Removed: rm}, nil
		case m == mSOI:
			return Result{}, corrupt(fJPEG, "a second start-of-image marker")
		case m >= mRST0 && m <= mRST7:
			// A stray restart marker between segments; libjpeg and Go
			// tolerate it and it carries nothing.
			out = append(out, 0xFF, m)
			continue
		}

		if pos+2 > len(data) {
			return Result{}, truncated(fJPEG, fmt.Sprintf("the %s segment is cut off", markerName(m)))
		}
		n := int(data[pos])<<8 | int(data[pos+1])
		if n < 2 {
			return Result{}, corrupt(fJPEG, fmt.Sprintf("the %s segment has an invalid length", markerName(m)))
		}
		end := pos + n
		if end > len(data) {
			return Result{}, truncated(fJPEG, fmt.Sprintf("the %s segment is cut off", markerName(m)))
		}
		seg := data[pos-2 : end] // FF, marker, length, payload (fill bytes dropped)
		payload := data[pos+2 : end]
		pos = end

		switch {
		case m == mSOF0 || m == mSOF1 || m == mSOF2:
			if sawSOF {
				return Result{}, corrupt(fJPEG, "it has more than one frame header")
			}
			sawSOF = true
			if len(payload) < 6 || len(payload) != 6+3*int(payload[5]) {
				return Result{}, corrupt(fJPEG, "the frame header has the wrong length")
			}
			if payload[0] != 8 {
				return Result{}, unsupportedVariant(fJPEG, fmt.Sprintf("uses %d-bit samples", payload[0]))
			}
			if nc := payload[5]; nc != 1 && nc != 3 && nc != 4 {
				return Result{}, unsupportedVariant(fJPEG, fmt.Sprintf("has %d colour components", nc))
			}
			h = int(payload[1])<<8 | int(payload[2])
			w = int(payload[3])<<8 | int(payload[4])
			if h == 0 {
				// A height of 0 defers it to a DNL marker, which
				// browsers' decoders do not support either.
				return Result{}, corrupt(fJPEG, "the frame header declares a height of 0")
			}
			if err := checkDims(fJPEG, w, h, lim); err != nil {
				return Result{}, err
			}
			out = append(out, seg...)
		case m == mSOS:
			if !sawSOF {
				return Result{}, corrupt(fJPEG, "image data comes before the frame header")
			}
			if len(payload) < 1 || payload[0] < 1 || payload[0] > 4 || len(payload) != 4+2*int(payload[0]) {
				return Result{}, corrupt(fJPEG, "a scan header is invalid")
			}
			sawSOS = true
			out = append(out, seg...)
			// Entropy-coded data: FF is followed only by 00 (stuffing),
			// a restart marker or more FF fill; anything else is the next
			// marker. Running out of bytes here is the common truncation.
			start := pos
			for {
				i := bytes.IndexByte(data[pos:], 0xFF)
				if i < 0 || pos+i+1 >= len(data) {
					return Result{}, truncated(fJPEG, "the image data is cut off (no end-of-image marker)")
				}
				pos += i
				if next := data[pos+1]; next == 0 || next == 0xFF || (next >= mRST0 && next <= mRST7) {
					pos++
					if next != 0xFF {
						pos++
					}
					continue
				}
				break
			}
			out = append(out, data[start:pos]...)
		case m == mDHT || m == mDQT:
			if len(payload) == 0 {
				return Result{}, corrupt(fJPEG, fmt.Sprintf("the %s segment is empty", markerName(m)))
			}
			out = append(out, seg...)
		case m == mDRI:
			if len(payload) != 2 {
				return Result{}, corrupt(fJPEG, "the restart interval segment has the wrong length")
			}
			out = append(out, seg...)
		case m >= mAPP0 && m <= mAPPF || m == mCOM:
			var o int
			out, o = cleanJPEGApp(out, m, seg, payload, orientation != 0, &rm)
			if o != 0 {
				orientation = o
			}
		case m >= 0xC3 && m <= 0xCF || m == 0xDC || m == 0xDE || m == 0xDF:
			// Lossless, hierarchical and arithmetic-coded frames, and the
			// DAC, DNL, DHP and EXP segments that go with them.
			return Result{}, unsupportedVariant(fJPEG, "uses lossless, hierarchical or arithmetic coding")
		default:
			return Result{}, corrupt(fJPEG, fmt.Sprintf("it contains an unknown marker 0x%02X", m))
		}
	}
}

// cleanJPEGApp appends what is kept of an APPn or COM segment to out and
// returns the orientation it wrote back (0 if none). JFIF (APP0) is kept
// without its thumbnail; ICC profiles (APP2) and Adobe (APP14, which says
// how to convert colours) are kept as they are; everything else goes.
// haveOrientation is true once an orientation has been written back, so
// only the first EXIF block's orientation counts.
func cleanJPEGApp(out []byte, m byte, seg, payload []byte, haveOrientation bool, rm *removed) ([]byte, int) {
	switch {
	case m == mAPP0 && bytes.HasPrefix(payload, []byte("JFIF\x00")):
		if len(payload) < 14 {
			return append(out, seg...), 0
		}
		// Version, units and density stay; the thumbnail size becomes
		// 0 x 0 and its pixels go: a thumbnail can show what was cropped.
		if len(payload) > 14 || payload[12] != 0 || payload[13] != 0 {
			rm.add("JFIF thumbnail")
		}
		out = append(out, 0xFF, mAPP0, 0, 16)
		out = append(out, payload[:12]...)
		return append(out, 0, 0), 0
	case m == mAPP0 && bytes.HasPrefix(payload, []byte("JFXX\x00")):
		rm.add("JFIF thumbnail")
	case m == mAPP1 && bytes.HasPrefix(payload, exifPrefix):
		info := exifInfo{}
		if len(payload) >= 6 {
			info = parseTIFF(payload[6:])
		}
		o := 0
		if info.orientation > 1 && !haveOrientation {
			o = info.orientation
			minimal := minimalExifSegment(o)
			out = append(out, minimal...)
			if bytes.Equal(seg, minimal) {
				return out, o // already clean: nothing to report
			}
		}
		rm.add("EXIF")
		if info.gps {
			rm.add("GPS")
		}
		if info.makerNote {
			rm.add("MakerNote")
		}
		return out, o
	case m == mAPP1 && (bytes.HasPrefix(payload, xmpPrefix) || bytes.HasPrefix(payload, xmpExtPrefix)):
		rm.add("XMP")
	case m == mAPP2 && bytes.HasPrefix(payload, iccPrefix):
		return append(out, seg...), 0
	case m == mAPP2 && bytes.HasPrefix(payload, []byte("MPF\x00")):
		rm.add("MPF")
	case m == mAPPD:
		rm.add("IPTC")
	case m == mAPPE && bytes.HasPrefix(payload, []byte("Adobe")):
		return append(out, seg...), 0
	case m == mCOM:
		rm.add("comment")
	default:
		rm.add(fmt.Sprintf("APP%d", m-mAPP0))
	}
	return out, 0
}

func markerName(m byte) string {
	switch {
	case m >= 0xC0 && m <= 0xCF && m != mDHT && m != 0xC8 && m != 0xCC:
		return "frame header"
	case m == mDHT:
		return "Huffman table"
	case m == mDQT:
		return "quantization table"
	case m == mSOS:
		return "scan header"
	case m == mDRI:
		return "restart interval"
	case m >= mAPP0 && m <= mAPPF:
		return fmt.Sprintf("APP%d", m-mAPP0)
	case m == mCOM:
		return "comment"
	}
	return fmt.Sprintf("0x%02X", m)
}
