package edge

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestLimitRanges(t *testing.T) {
	many := make([]string, 300)
	for i := range many {
		many[i] = fmt.Sprintf("%d-%d", 2*i, 2*i)
	}
	for _, c := range []struct {
		name, header string
		max          int
		keep         bool       // the header stays
		single       *byteRange // the one range returned
	}{
		{"none", "", 8, false, nil},
		{"one", "bytes=100-199", 8, true, &byteRange{100, 100}},
		{"open end", "bytes=900-", 8, true, &byteRange{900, 100}},
		{"suffix", "bytes=-10", 8, true, &byteRange{990, 10}},
		{"end past the size", "bytes=990-5000", 8, true, &byteRange{990, 10}},
		{"two in order", "bytes=0-9,20-29", 8, true, nil},
		{"eight", "bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14", 8, true, nil},
		{"nine", "bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16", 8, false, nil},
		{"three hundred", "bytes=" + strings.Join(many, ","), 8, false, nil},
		{"overlapping", "bytes=0-99,50-149", 8, false, nil},
		{"out of order", "bytes=500-599,0-99", 8, false, nil},
		{"the same range twice", "bytes=0-99,0-99", 8, false, nil},
		{"two when one is allowed", "bytes=0-9,20-29", 1, false, nil},
		{"malformed, left for ServeContent", "bytes=abc", 8, true, nil},
		{"past the end, left for ServeContent", "bytes=5000-", 8, true, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "/storage/x", nil)
			if c.header != "" {
				r.Header.Set("Range", c.header)
			}
			got := limitRanges(r, 1000, c.max)
			if kept := r.Header.Get("Range") != ""; kept != (c.keep && c.header != "") {
				t.Errorf("Range kept: %v, want %v", kept, c.keep)
			}
			if (got == nil) != (c.single == nil) || got != nil && *got != *c.single {
				t.Errorf("single range %v, want %v", got, c.single)
			}
		})
	}
}
