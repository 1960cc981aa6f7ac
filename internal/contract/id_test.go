package contract

import (
	"strings"
	"testing"
)

func TestParseID(t *testing.T) {
	seen := map[ID]bool{}
	for range 1000 {
		id := NewID()
		if seen[id] {
			t.Fatal("NewID repeated an id")
		}
		seen[id] = true
		s := id.String()
		if len(s) != 22 {
			t.Fatalf("%q is not 22 characters", s)
		}
		back, err := ParseID(s)
		if err != nil || back != id {
			t.Fatalf("ParseID(%q) = %v, %v", s, back, err)
		}
	}
	valid := NewID().String()
	for _, bad := range []string{
		"", "abc", valid + "A", valid[:21],
		"../../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpas",
		strings.Repeat("A", 21) + "=", strings.Repeat("A", 21) + "\x00", strings.Repeat("A", 21) + "/",
		strings.Repeat("A", 21) + ".", strings.Repeat("A", 20) + "é",
		strings.Repeat("A", 21) + "B", // non-canonical: low bits of the last character set
		strings.Repeat("+", 22),       // standard base64, not URL-safe
	} {
		if id, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted, = %v", bad, id)
		}
	}
}

// FuzzParseID: whatever the input, ParseID either refuses it or returns an
// id whose text form is exactly the input (one spelling per id, nothing
// outside the alphabet).
func FuzzParseID(f *testing.F) {
	for _, s := range []string{NewID().String(), "", "AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAB", "../etc/passwd", "%2e%2e", "a\x00b"} {
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
		if id.String() != s {
			t.Fatalf("ParseID(%q) = %v, which prints as %q", s, id, id.String())
		}
		if strings.ContainsAny(s, "./\\%\x00=+") {
			t.Fatalf("ParseID accepted %q", s)
		}
	})
}
