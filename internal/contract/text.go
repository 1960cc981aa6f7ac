package contract

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxTextLen is the longest post text, in characters (runes), after
// trimming.
const MaxTextLen = 2200

// MaxTextBytes bounds the text field as it arrives, before it is checked in
// characters: MaxTextLen characters of at most 4 bytes, plus room for the
// white space CheckText trims. Readers of a form or a stream use it to cap
// what they hold.
const MaxTextBytes = 4*MaxTextLen + 1024

// CheckText is the rule for a post's text: it trims surrounding white space
// and then requires the text to be non-empty, valid UTF-8, free of control
// characters other than tab and line breaks, and at most MaxTextLen
// characters long. It returns the text to store; the error's message is
// written for the person who typed it.
func CheckText(raw string) (string, error) {
	if !utf8.ValidString(raw) {
		return "", errors.New("the text is not valid UTF-8")
	}
	text := strings.TrimSpace(raw)
	if text == "" {
		return "", errors.New("write something: the text is required")
	}
	if n := utf8.RuneCountInString(text); n > MaxTextLen {
		return "", fmt.Errorf("the text is %d characters long; the limit is %d", n, MaxTextLen)
	}
	for _, r := range text {
		if r == 0 {
			return "", errors.New("the text contains a NUL character")
		}
		if unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' {
			return "", fmt.Errorf("the text contains the control character U+%04X", r)
		}
	}
	return text, nil
}

// IsStoredText reports whether text is what CheckText returns for it: the
// invariant of every stored post.
func IsStoredText(text string) bool {
	checked, err := CheckText(text)
	return err == nil && checked == text
}
