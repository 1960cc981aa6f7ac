// Package contract holds the rules every part of the mesh agrees on beyond
// what the generated API says: the form of ids, what a post's text may be,
// the default photo size limit, and how sizes and client-supplied strings
// are written in messages. The edge, the services and the store all read
// these rules from here, so each has one owner; the package imports only
// the standard library.
package contract

import (
	"fmt"
	"unicode/utf8"
)

// DefaultMaxPhotoBytes is the default photo size limit of an upload. The
// edge refuses a larger photo before it reaches the upload service, which
// enforces the same limit (both take it from --max-upload-bytes).
const DefaultMaxPhotoBytes = 10 << 20

// FormatBytes writes a size the way users read it ("10 MiB").
func FormatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// Truncate shortens s to at most n bytes, cutting on a rune boundary so the
// result stays valid UTF-8 when s is, and marks a cut with "...". It is for
// quoting what a client sent in messages and logs.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
