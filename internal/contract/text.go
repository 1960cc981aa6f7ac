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
// characters other than tab and line breaks, with every bidirectional
// embedding, override or isolate closed on its own line, and at most
// MaxTextLen characters long. It returns the text to store; the error's
// message is written for the person who typed it.
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
	if err := checkBidi(text); err != nil {
		return "", err
	}
	return text, nil
}

// checkBidi refuses bidirectional formatting characters that are not
// paired within their line: an override such as U+202E RIGHT-TO-LEFT
// OVERRIDE left open would turn the rest of its paragraph around, and
// could make a post read as something it is not. Embeddings and overrides
// (U+202A-U+202D) close with U+202C, isolates (U+2066-U+2068) with U+2069,
// properly nested. Marks (U+200E, U+200F, U+061C) stand alone and are fine.
func checkBidi(text string) error {
	const (
		embedding = 'e'
		isolate   = 'i'
	)
	var open []rune // the kinds opened and not yet closed, on this line
	for _, r := range text {
		switch r {
		case '\u202A', '\u202B', '\u202D', '\u202E': // LRE, RLE, LRO, RLO
			open = append(open, embedding)
		case '\u2066', '\u2067', '\u2068': // LRI, RLI, FSI
			open = append(open, isolate)
		case '\u202C': // PDF
			if len(open) == 0 || open[len(open)-1] != embedding {
				return errors.New("the text has a closing direction character (U+202C) that closes nothing")
			}
			open = open[:len(open)-1]
		case '\u2069': // PDI
			if len(open) == 0 || open[len(open)-1] != isolate {
				return errors.New("the text has a closing direction character (U+2069) that closes nothing")
			}
			open = open[:len(open)-1]
		case '\n', '\r', '\u2029':
			if len(open) > 0 {
				return errors.New("the text has a direction control character (such as U+202E) that is not closed on its line")
			}
		}
	}
	if len(open) > 0 {
		return errors.New("the text has a direction control character (such as U+202E) that is not closed")
	}
	return nil
}

// IsStoredText reports whether text is what CheckText returns for it: the
// invariant of every stored post.
func IsStoredText(text string) bool {
	checked, err := CheckText(text)
	return err == nil && checked == text
}
