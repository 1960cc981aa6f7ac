package contract

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckText(t *testing.T) {
	emoji := strings.Repeat("😀", 2200)
	for _, c := range []struct {
		name, in, want, err string
	}{
		{"plain", "hello", "hello", ""},
		{"trimmed", "  hello \n", "hello", ""},
		{"right to left", " مرحبا بالعالم ", "مرحبا بالعالم", ""},
		{"2,200 emoji", emoji, emoji, ""},
		{"inner line break kept", "a\nb", "a\nb", ""},
		{"empty", "", "", "required"},
		{"white space only", " \t\r\n\u00a0", "", "required"},
		{"2,201 characters", strings.Repeat("a", 2201), "", "limit is 2200"},
		{"invalid UTF-8", "caf\xe9", "", "UTF-8"},
		{"NUL", "a\x00b", "", "NUL"},
		{"escape character", "a\x1bb", "", "U+001B"},
		{"right-to-left override left open", "price \u202E0051$", "", "not closed"},
		{"isolate left open", "\u2067مرحبا", "", "not closed"},
		{"override closed on the next line only", "a\u202Eb\nc\u202C", "", "on its line"},
		{"closing with nothing open", "a\u202Cb", "", "closes nothing"},
		{"isolate closed by the embedding closer", "\u2066a\u202C", "", "closes nothing"},
		{"override and isolate nested", "\u202Ea\u2067b\u2069c\u202C", "\u202Ea\u2067b\u2069c\u202C", ""},
		{"marks alone", "abc\u200Fdef\u200E", "abc\u200Fdef\u200E", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := CheckText(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("CheckText(%q) error = %v, want one saying %q", c.in, err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("CheckText(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
		})
	}
}

// TestFormatting: FormatBytes, Truncate (a cut inside "é" or "😀" moves
// back to the start of the character) and IsStoredText.
func TestFormatting(t *testing.T) {
	for n, want := range map[int64]string{10 << 20: "10 MiB", 256 << 10: "256 KiB", 1536 << 10: "1.5 MiB", 100: "100 bytes"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"}, {"exactly10!", 10, "exactly10!"}, {"abcdefghijk", 5, "abcde..."},
		{"aé", 2, "a..."}, {"ab😀cd", 4, "ab..."}, {"😀", 3, "..."},
	} {
		if got := Truncate(c.in, c.n); got != c.want || !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
	for in, want := range map[string]bool{"hello": true, " hello": false, "": false, "a\x00b": false, strings.Repeat("a", MaxTextLen+1): false} {
		if got := IsStoredText(in); got != want {
			t.Errorf("IsStoredText(%q) = %v, want %v", in, got, want)
		}
	}
}
