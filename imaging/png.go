package imaging

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

const fPNG = "PNG"

// pngKeep lists the ancillary chunks that survive cleaning: colour
// management (iCCP, sRGB, gAMA, cHRM, cICP, mDCV, cLLI), rendering (pHYs,
// sBIT, tRNS, bKGD, hIST, sPLT) and animation (APNG's acTL, fcTL, fdAT).
// Every other ancillary chunk is dropped, because unknown private chunks
// are exactly where tools hide metadata; critical chunks are all kept.
var pngKeep = map[string]bool{
	"iCCP": true, "sRGB": true, "gAMA": true, "cHRM": true, "cICP": true, "mDCV": true, "cLLI": true,
	"pHYs": true, "sBIT": true, "tRNS": true, "bKGD": true, "hIST": true, "sPLT": true,
	"acTL": true, "fcTL": true, "fdAT": true,
}

// inspectPNG checks the signature, an IHDR first, every chunk's length and
// CRC, PLTE and IDAT order, and an IEND last; data after IEND is dropped.
// The limits are applied as soon as IHDR's CRC has been checked, so a
// header declaring 100,000 x 100,000 is refused before anything else is
// read or allocated.
//
// eXIf is replaced, like JPEG's EXIF, by a minimal one holding only the
// orientation when that is not 1; browsers vary in whether they honour
// orientation in PNG, but keeping it costs nothing and leaks nothing.
func inspectPNG(data []byte, lim Limits) (Result, error) {
	var (
		out         []byte
		rm          removed
		w, h        int
		colorType   byte
		sawPLTE     bool
		sawIDAT     bool
		idatEnded   bool
		orientation int
	)
	pos := len(pngMagic)
	for {
		if pos+8 > len(data) {
			return Result{}, truncated(fPNG, "missing IEND chunk")
		}
		n := binary.BigEndian.Uint32(data[pos:])
		// The type stays in bytes: converting it to a string for every
		// chunk would allocate per chunk, and chunks can be 12 bytes.
		typ := data[pos+4 : pos+8]
		if !validChunkType(typ) {
			return Result{}, corrupt(fPNG, fmt.Sprintf("invalid chunk type at byte %d", pos+4))
		}
		if n > 1<<31-1 {
			return Result{}, corrupt(fPNG, fmt.Sprintf("the %s chunk has an invalid length", typ))
		}
		if uint64(n)+12 > uint64(len(data)-pos) {
			return Result{}, truncated(fPNG, fmt.Sprintf("the %s chunk is cut off", typ))
		}
		end := pos + 12 + int(n)
		body := data[pos+8 : end-4]
		if crc32.ChecksumIEEE(data[pos+4:end-4]) != binary.BigEndian.Uint32(data[end-4:]) {
			return Result{}, corrupt(fPNG, fmt.Sprintf("the %s chunk has a bad checksum", typ))
		}
		chunk := data[pos:end]
		pos = end

		if out == nil {
			if string(typ) != "IHDR" {
				return Result{}, corrupt(fPNG, "it does not start with an IHDR chunk")
			}
			if n != 13 {
				return Result{}, corrupt(fPNG, "the IHDR chunk has the wrong length")
			}
			wu, hu := binary.BigEndian.Uint32(body), binary.BigEndian.Uint32(body[4:])
			if wu > 1<<31-1 || hu > 1<<31-1 {
				return Result{}, corrupt(fPNG, "the IHDR chunk declares an impossible size")
			}
			depth, ct := body[8], body[9]
			if !validDepth(ct, depth) {
				return Result{}, corrupt(fPNG, fmt.Sprintf("colour type %d with bit depth %d is not allowed", ct, depth))
			}
			if body[10] != 0 || body[11] != 0 || body[12] > 1 {
				return Result{}, corrupt(fPNG, "the IHDR chunk names an unknown compression, filter or interlace method")
			}
			w, h, colorType = int(wu), int(hu), ct
			if err := checkDims(fPNG, w, h, lim); err != nil {
				return Result{}, err
			}
			out = make([]byte, 0, len(data))
			out = append(out, pngMagic...)
			out = append(out, chunk...)
			continue
		}

		if sawIDAT && string(typ) != "IDAT" {
			idatEnded = true
		}
		switch string(typ) {
		case "IHDR":
			return Result{}, corrupt(fPNG, "it has more than one IHDR chunk")
		case "PLTE":
			if sawPLTE || sawIDAT || n == 0 || n%3 != 0 || n > 256*3 || colorType == 0 || colorType == 4 {
				return Result{}, corrupt(fPNG, "the palette (PLTE chunk) is invalid or misplaced")
			}
			sawPLTE = true
			out = append(out, chunk...)
		case "IDAT":
			if idatEnded {
				return Result{}, corrupt(fPNG, "its IDAT chunks are not consecutive")
			}
			if colorType == 3 && !sawPLTE {
				return Result{}, corrupt(fPNG, "the palette (PLTE chunk) is missing")
			}
			sawIDAT = true
			out = append(out, chunk...)
		case "IEND":
			if !sawIDAT {
				return Result{}, corrupt(fPNG, "it has no image data (IDAT chunk)")
			}
			if n != 0 {
				return Result{}, corrupt(fPNG, "the IEND chunk is not empty")
			}
			out = append(out, chunk...)
			if pos < len(data) {
				rm.add("trailing data")
			}
			return Result{ContentType: TypePNG, Width: w, Height: h, Orientation: orientation, Data: out, Removed: rm}, nil
		case "eXIf":
			info := parseTIFF(body)
			if info.orientation > 1 && orientation == 0 {
				orientation = info.orientation
				minimal := pngChunk("eXIf", minimalTIFF(orientation))
				out = append(out, minimal...)
				if bytes.Equal(chunk, minimal) {
					continue
				}
			}
			rm.add("EXIF")
			if info.gps {
				rm.add("GPS")
			}
			if info.makerNote {
				rm.add("MakerNote")
			}
		case "tEXt", "zTXt":
			rm.add("text")
		case "iTXt":
			if bytes.HasPrefix(body, []byte("XML:com.adobe.xmp\x00")) {
				rm.add("XMP")
			} else {
				rm.add("text")
			}
		case "tIME":
			rm.add("timestamp")
		default:
			if typ[0]&0x20 == 0 {
				// A critical chunk no decoder knows: the image
				// cannot be shown.
				return Result{}, corrupt(fPNG, fmt.Sprintf("it contains an unknown critical chunk %q", typ))
			}
			if pngKeep[string(typ)] {
				out = append(out, chunk...)
			} else {
				rm.addBytes(typ)
			}
		}
	}
}

// pngChunk builds a chunk with its length and CRC.
func pngChunk(typ string, body []byte) []byte {
	c := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	c = append(c, typ...)
	c = append(c, body...)
	return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(c[4:]))
}

func validChunkType(t []byte) bool {
	for _, c := range t {
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// validDepth reports whether the PNG specification allows bit depth d for
// colour type ct (table 11.1).
func validDepth(ct, d byte) bool {
	switch ct {
	case 0:
		return d == 1 || d == 2 || d == 4 || d == 8 || d == 16
	case 3:
		return d == 1 || d == 2 || d == 4 || d == 8
	case 2, 4, 6:
		return d == 8 || d == 16
	}
	return false
}
