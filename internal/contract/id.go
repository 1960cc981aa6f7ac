package contract

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

// ID is the public id of a post or an image: 128 random bits, written as 22
// characters of unpadded base64url. It is never derived from anything a
// client sends, and every lookup parses it with ParseID first, so an id can
// safely name a file.
type ID [16]byte

// idLen is the length of an ID's text form.
const idLen = 22

// IDForm says what an id looks like, for messages refusing one.
const IDForm = "ids are 22 characters of A-Z, a-z, 0-9, '-' and '_'"

// ErrInvalidID is returned by ParseID for anything that is not an id.
var ErrInvalidID = errors.New("invalid id")

var idEncoding = base64.RawURLEncoding.Strict()

// NewID returns a new random id.
func NewID() ID {
	var id ID
	// crypto/rand.Read never fails (Go 1.24+): it crashes the program rather
	// than return predictable bytes.
	_, _ = rand.Read(id[:])
	return id
}

// ParseID parses the text form of an id strictly: exactly 22 characters of
// the base64url alphabet, in canonical form (the unused low bits of the last
// character are zero), so one id has exactly one spelling.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != idLen {
		return id, fmt.Errorf("%w: want %d characters, got %d", ErrInvalidID, idLen, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return id, fmt.Errorf("%w: character %d is not base64url", ErrInvalidID, i+1)
		}
	}
	n, err := idEncoding.Decode(id[:], []byte(s))
	if err != nil || n != len(id) {
		return ID{}, fmt.Errorf("%w: not canonical base64url", ErrInvalidID)
	}
	return id, nil
}

// String returns the text form of the id.
func (id ID) String() string { return idEncoding.EncodeToString(id[:]) }

// IsZero reports whether id is the zero value (never a valid stored id).
func (id ID) IsZero() bool { return id == ID{} }
