package imaging

import (
	"encoding/binary"
	"fmt"
)

const fGIF = "GIF"

// inspectGIF walks the header, logical screen descriptor, colour tables and
// every extension and image block down to the trailer. Unlike PNG, a GIF
// header has no checksum, so any text after "GIF89a" parses as a screen
// size: the limits are applied only after the whole structure has held up,
// so that a polyglot such as "GIF89a<html>..." is reported as not a valid
// GIF rather than as an implausibly large one.
//
// Comments and application extensions are dropped except NETSCAPE2.0 and
// ANIMEXTS1.0 (looping) and ICCRGBG1012 (a colour profile, kept as it is in
// the other formats). Bytes after the trailer are dropped.
func inspectGIF(data []byte, lim Limits) (Result, error) {
	if len(data) < 13 {
		return Result{}, truncated(fGIF, "the header is cut off")
	}
	w := int(binary.LittleEndian.Uint16(data[6:]))
	h := int(binary.LittleEndian.Uint16(data[8:]))
	hasGCT := data[10]&0x80 != 0
	pos := 13
	if hasGCT {
		pos += 3 << (data[10]&7 + 1)
		if pos > len(data) {
			return Result{}, truncated(fGIF, "the colour table is cut off")
		}
	}
	out := make([]byte, 0, len(data))
	out = append(out, data[:pos]...)
	var (
		rm     removed
		frames int
		// The furthest right and down any frame reaches: some browsers
		// grow the canvas to fit frames outside the logical screen, so
		// the limits apply to them too.
		maxRight, maxBottom = w, h
	)
	for {
		if pos >= len(data) {
			return Result{}, truncated(fGIF, "missing trailer")
		}
		switch data[pos] {
		case 0x3B: // trailer
			if frames == 0 {
				return Result{}, corrupt(fGIF, "it contains no image")
			}
			out = append(out, 0x3B)
			if pos+1 < len(data) {
				rm.add("trailing data")
			}
			if err := checkDims(fGIF, w, h, lim); err != nil {
				return Result{}, err
			}
			if maxRight > w || maxBottom > h {
				if err := checkDims(fGIF, maxRight, maxBottom, lim); err != nil {
					return Result{}, err
				}
			}
			return Result{ContentType: TypeGIF, Width: w, Height: h, Data: out, Removed: rm}, nil

		case 0x2C: // image descriptor
			start := pos
			if pos+10 > len(data) {
				return Result{}, truncated(fGIF, "an image descriptor is cut off")
			}
			d := data[pos+1 : pos+10]
			left := int(binary.LittleEndian.Uint16(d[0:]))
			top := int(binary.LittleEndian.Uint16(d[2:]))
			fw := int(binary.LittleEndian.Uint16(d[4:]))
			fh := int(binary.LittleEndian.Uint16(d[6:]))
			maxRight, maxBottom = max(maxRight, left+fw), max(maxBottom, top+fh)
			pos += 10
			if d[8]&0x80 != 0 {
				pos += 3 << (d[8]&7 + 1)
			} else if !hasGCT {
				return Result{}, corrupt(fGIF, "an image has no colour table")
			}
			if pos >= len(data) {
				return Result{}, truncated(fGIF, "the image data is cut off")
			}
			if lzw := data[pos]; lzw < 2 || lzw > 8 {
				return Result{}, corrupt(fGIF, fmt.Sprintf("an image has an invalid LZW code size %d", lzw))
			}
			end, ok := skipSubBlocks(data, pos+1)
			if !ok {
				return Result{}, truncated(fGIF, "the image data is cut off")
			}
			out = append(out, data[start:end]...)
			pos = end
			frames++

		case 0x21: // extension
			if pos+2 > len(data) {
				return Result{}, truncated(fGIF, "an extension block is cut off")
			}
			label, body := data[pos+1], pos+2
			end, ok := skipSubBlocks(data, body)
			if !ok {
				return Result{}, truncated(fGIF, "an extension block is cut off")
			}
			keep := false
			switch label {
			case 0xF9: // graphic control: delay, disposal, transparency
				if data[body] != 4 || end != body+6 {
					return Result{}, corrupt(fGIF, "a graphic control extension has the wrong size")
				}
				keep = true
			case 0x01: // plain text, drawn as part of the image
				keep = true
			case 0xFE:
				rm.add("comment")
			case 0xFF:
				var id []byte
				if data[body] == 11 && body+12 <= end {
					id = data[body+1 : body+12]
				}
				switch string(id) {
				case "NETSCAPE2.0", "ANIMEXTS1.0", "ICCRGBG1012":
					keep = true
				case "XMP DataXMP":
					rm.add("XMP")
				default:
					rm.add("application extension")
				}
			default:
				const hex = "0123456789ABCDEF"
				name := [...]byte{'e', 'x', 't', 'e', 'n', 's', 'i', 'o', 'n', ' ', '0', 'x', hex[label>>4], hex[label&15]}
				rm.addBytes(name[:])
			}
			if keep {
				out = append(out, data[pos:end]...)
			}
			pos = end

		default:
			return Result{}, corrupt(fGIF, fmt.Sprintf("unexpected byte 0x%02X at offset %d where a block should start", data[pos], pos))
		}
	}
}

// skipSubBlocks returns the offset just past the chain of data sub-blocks
// starting at pos, including its zero-length terminator.
func skipSubBlocks(data []byte, pos int) (int, bool) {
	for {
		if pos >= len(data) {
			return 0, false
		}
		n := int(data[pos])
		pos++
		if n == 0 {
			return pos, true
		}
		pos += n
	}
}
