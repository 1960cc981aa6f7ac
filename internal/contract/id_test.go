package contract

import (
	"strings"
	"testing"
)

// TestParseID: new ids are unique, 22 characters, and parse back; ParseID refuses
// (FuzzParseID's seeds) anything that is not the one text form of an id.
func TestParseID(t *testing.T) {
	seen := map[ID]bool{}
	for range 1000 {
		id := NewID()
		if back, err := ParseID(id.String()); seen[id] || len(id.String()) != 22 || err != nil || back != id {
			t.Fatalf("NewID gave %q (seen before: %v), which parses as %v, %v", id, seen[id], back, err)
		}
		seen[id] = true
	}
}

// FuzzParseID: whatever the input, ParseID either refuses it or returns an
// id whose text form is exactly the input (one spelling per id, nothing
// outside the alphabet).
func FuzzParseID(f *testing.F) {
	valid := NewID().String()
	for _, s := range []string{
		valid, "", "abc", valid + "A", valid[:21], "AAAAAAAAAAAAAAAAAAAAAA", "a\x00b", "%2e%2e",
		"../../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpas",
		strings.Repeat("A", 21) + "=", strings.Repeat("A", 21) + "\x00", strings.Repeat("A", 21) + "/",
		strings.Repeat("A", 21) + ".", strings.Repeat("A", 20) + "é",
		strings.Repeat("A", 21) + "B", // non-canonical: low bits of the last character set
		strings.Repeat("+", 22),       // standard base64, not URL-safe
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			if id != (ID{}) {
				t.Fatalf("ParseID(%q) returned %v with an error", s, id)
			}
			return
		}
		if id.String() != s || strings.ContainsAny(s, "./\\%\x00=+") {
			t.Fatalf("ParseID(%q) = %v, which prints as %q", s, id, id.String())
		}
	})
}
