package edge

import (
	"errors"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// maxRanges is the most ranges one image request may ask for; more, or
// overlapping ones, get the whole image (as Apache does since
// CVE-2011-3192): a request naming hundreds of ranges must not cost
// hundreds of reads.
const maxRanges = 8

// byteRange is a range of an image's bytes.
type byteRange struct{ start, length int64 }

var errBadRange = errors.New("invalid range")

// limitRanges applies maxRanges (or max, when lower) to r's Range header
// for an image of size bytes: it removes the header, so that the whole
// image is sent, when the request asks for more ranges, overlapping ones,
// ranges out of order or more bytes than the image has. It returns the
// range when exactly one stays. A malformed header is left for
// http.ServeContent to refuse.
func limitRanges(r *http.Request, size int64, max int) *byteRange {
	h := r.Header.Get("Range")
	if h == "" {
		return nil
	}
	ranges, err := parseRange(h, size)
	if err != nil || len(ranges) == 0 {
		return nil
	}
	total := int64(0)
	for i, rg := range ranges {
		total += rg.length
		if i > 0 && rg.start < ranges[i-1].start+ranges[i-1].length {
			r.Header.Del("Range") // overlapping or out of order
			return nil
		}
	}
	if len(ranges) > min(max, maxRanges) || total > size {
		r.Header.Del("Range")
		return nil
	}
	if len(ranges) == 1 {
		return &ranges[0]
	}
	return nil
}

// parseRange parses a Range header (RFC 9110, "bytes=" only) for a body of
// size bytes, as net/http does; ranges that start past the end are
// dropped.
func parseRange(s string, size int64) ([]byteRange, error) {
	spec, ok := strings.CutPrefix(s, "bytes=")
	if !ok {
		return nil, errBadRange
	}
	var out []byteRange
	for ra := range strings.SplitSeq(spec, ",") {
		ra = textproto.TrimString(ra)
		if ra == "" {
			continue
		}
		first, last, ok := strings.Cut(ra, "-")
		if !ok {
			return nil, errBadRange
		}
		first, last = textproto.TrimString(first), textproto.TrimString(last)
		if first == "" {
			// A suffix: the last n bytes.
			n, err := strconv.ParseInt(last, 10, 64)
			if err != nil || n < 0 {
				return nil, errBadRange
			}
			n = min(n, size)
			out = append(out, byteRange{start: size - n, length: n})
			continue
		}
		start, err := strconv.ParseInt(first, 10, 64)
		if err != nil || start < 0 {
			return nil, errBadRange
		}
		if start >= size {
			continue
		}
		end := size - 1
		if last != "" {
			if end, err = strconv.ParseInt(last, 10, 64); err != nil || end < start {
				return nil, errBadRange
			}
			end = min(end, size-1)
		}
		out = append(out, byteRange{start: start, length: end - start + 1})
	}
	return out, nil
}
