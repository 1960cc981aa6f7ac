package edge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/extagram/extagram/internal/contract"
)

const (
	// formOverhead is what a form may add to the photo: the text field,
	// part headers and boundaries.
	formOverhead = 64 << 10
	// maxFormParts bounds the parts of an upload form (it has two).
	maxFormParts = 8
	// maxClaimBytes bounds what a client says of its file (name, type)
	// before it is passed on to the upload service.
	maxClaimBytes = 255
	// maxKeyBytes bounds an idempotency key, with room for the scope the
	// edge puts in front of it within the upload service's 255 bytes.
	maxKeyBytes = 128
	// keyField is the form's hidden field with the page's one-time
	// upload token, its idempotency key.
	keyField = "idempotency_key"
)

// uploadError is a failed upload as the user sees it: the status and the
// message of the page.
type uploadError struct {
	code int
	msg  string
}

func (u *uploadError) Error() string { return u.msg }

func badForm(code int, format string, args ...any) *uploadError {
	return &uploadError{code: code, msg: fmt.Sprintf(format, args...)}
}

func tooLarge(limit int64) *uploadError {
	return badForm(http.StatusRequestEntityTooLarge, "The photo is larger than the %s limit.", contract.FormatBytes(limit))
}

// uploadForm is the form of POST /upload.php, as the original site has it:
// a text field "post" and an optional file field "photo".
type uploadForm struct {
	// text is the "post" field as sent (the upload service trims and
	// checks it); it is also kept for the page shown after an error.
	text string
	// photo is nil when no photo was sent (or the file input was left
	// empty).
	photo *photoUpload
	// key is the idempotency_key field: the one-time token of the page the
	// form was on; "" without one.
	key string
	// held is the temporary file of a photo that came before the text.
	held *os.File
}

// close removes what the form holds.
func (f *uploadForm) close() {
	if f.held != nil {
		_ = f.held.Close()
		_ = os.Remove(f.held.Name())
		f.held = nil
	}
}

// DefaultUploadIdle is how long an upload's body may send nothing: a
// client that stalls is answered 408 and lets go of what it held.
const DefaultUploadIdle = 10 * time.Second

// progressBody gives each read of a body idle to deliver, and remembers
// when one did not: whatever a parser then makes of the cut-off input (a
// malformed part header, say), the client stalled.
type progressBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	idle    time.Duration
	stalled bool
}

func (p *progressBody) Read(b []byte) (int, error) {
	_ = p.rc.SetReadDeadline(time.Now().Add(p.idle))
	n, err := p.ReadCloser.Read(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		p.stalled = true
	}
	return n, err
}

// errStalled answers an upload whose body stopped arriving.
var errStalled = badForm(http.StatusRequestTimeout, "The upload stopped: nothing arrived for a while.")

// multipartReader returns the reader of an upload form's body.
func multipartReader(r *http.Request) (*multipart.Reader, error) {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "multipart/form-data" {
		return nil, badForm(http.StatusUnsupportedMediaType, "The form must be sent as multipart/form-data (fields \"post\" and \"photo\").")
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, badForm(http.StatusBadRequest, "The form could not be read: %v.", err)
	}
	return mr, nil
}

// readUploadForm reads an upload form up to its photo's bytes, so that a
// photo is streamed on rather than held. When the text comes first (as
// browsers send it), photo.body reads the photo's bytes from mr, then the
// rest of the form: it ends with io.EOF only once the whole form has been
// read and found good, and with the error otherwise. A photo that comes
// before the text is held (at most limit bytes) until the whole form has
// been read. Either way a photo over limit bytes ends in a 413. The returned
// form holds the text read so far even with an error.
func readUploadForm(mr *multipart.Reader, limit int64) (uploadForm, error) {
	fr := &formReader{mr: mr, limit: limit}
	for {
		part, err := fr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fr.form, err
		}
		if part.FormName() == keyField {
			if err := fr.readKey(part); err != nil {
				return fr.form, err
			}
			continue
		}
		if part.FormName() == "post" {
			if err := fr.readText(part); err != nil {
				return fr.form, err
			}
			continue
		}
		// The photo.
		photo, empty, err := fr.openPhoto(part)
		if err != nil {
			return fr.form, err
		}
		if empty {
			continue
		}
		if fr.haveText {
			photo.body = &photoBody{fr: fr, part: io.MultiReader(photo.body, part)}
			fr.form.photo = photo
			return fr.form, nil
		}
		// Hold the photo, in a temporary file rather than in memory,
		// until the text arrives.
		held, err := os.CreateTemp("", "extagram-photo-*")
		if err != nil {
			return fr.form, fmt.Errorf("edge: hold a photo: %w", err)
		}
		fr.form.held = held
		n, err := io.Copy(held, io.LimitReader(io.MultiReader(photo.body, part), limit+1))
		if err != nil {
			return fr.form, formReadError(err, limit)
		}
		if n > limit {
			return fr.form, tooLarge(limit)
		}
		if _, err := held.Seek(0, io.SeekStart); err != nil {
			return fr.form, fmt.Errorf("edge: hold a photo: %w", err)
		}
		photo.body = held
		fr.form.photo = photo
	}
	if !fr.haveText {
		return fr.form, badForm(http.StatusBadRequest, "Write something: the text is required.")
	}
	return fr.form, nil
}

// formReader reads the parts of an upload form in order.
type formReader struct {
	mr        *multipart.Reader
	limit     int64
	parts     int
	form      uploadForm
	haveText  bool
	havePhoto bool
	haveKey   bool
}

// next returns the next "post" or "photo" part, reading past (and within
// the body limit, discarding) fields the form does not have; io.EOF at the
// end of the form.
func (fr *formReader) next() (*multipart.Part, error) {
	for {
		part, err := fr.mr.NextPart()
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			return nil, formReadError(err, fr.limit)
		}
		if fr.parts++; fr.parts > maxFormParts {
			return nil, badForm(http.StatusBadRequest, "The form has too many fields; it needs only \"post\" and \"photo\".")
		}
		name := part.FormName()
		if name == "" {
			return nil, badForm(http.StatusBadRequest, "The form has a part without a field name (a missing or unreadable Content-Disposition); it needs only \"post\" and \"photo\".")
		}
		if !cleanName(name) {
			return nil, badForm(http.StatusBadRequest, "A field name in the form contains a NUL or control character or is not valid UTF-8; the form needs only \"post\" and \"photo\".")
		}
		switch name {
		case "post":
			if fr.haveText {
				return nil, badForm(http.StatusBadRequest, "The form has more than one \"post\" field.")
			}
			return part, nil
		case "photo":
			if fr.havePhoto {
				return nil, badForm(http.StatusBadRequest, "The form has more than one \"photo\" field.")
			}
			return part, nil
		case keyField:
			if fr.haveKey {
				return nil, badForm(http.StatusBadRequest, "The form has more than one %q field.", keyField)
			}
			return part, nil
		}
		if _, err := io.Copy(io.Discard, part); err != nil {
			return nil, formReadError(err, fr.limit)
		}
	}
}

// readText reads the "post" field within a byte cap against abuse. The
// rule for the text itself is the upload service's; only valid UTF-8 is
// required here, because the API carries the text as a protobuf string,
// which cannot hold anything else.
func (fr *formReader) readText(part *multipart.Part) error {
	b, err := io.ReadAll(io.LimitReader(part, contract.MaxTextBytes+1))
	if err != nil {
		return formReadError(err, fr.limit)
	}
	if len(b) > contract.MaxTextBytes {
		return badForm(http.StatusBadRequest, "The text is too long; the limit is %d characters.", contract.MaxTextLen)
	}
	if !utf8.Valid(b) {
		return badForm(http.StatusBadRequest, "The text is not valid UTF-8.")
	}
	fr.form.text, fr.haveText = string(b), true
	return nil
}

// readKey reads the idempotency_key field: at most maxKeyBytes of
// printable ASCII.
func (fr *formReader) readKey(part *multipart.Part) error {
	b, err := io.ReadAll(io.LimitReader(part, maxKeyBytes+1))
	if err != nil {
		return formReadError(err, fr.limit)
	}
	if !validKey(string(b)) {
		return badForm(http.StatusBadRequest, "The form's %s is not 1 to %d printable ASCII characters.", keyField, maxKeyBytes)
	}
	fr.form.key, fr.haveKey = string(b), true
	return nil
}

// validKey reports whether k is 1 to maxKeyBytes printable ASCII
// characters.
func validKey(k string) bool {
	if k == "" || len(k) > maxKeyBytes {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// openPhoto starts reading the "photo" field. empty is true for a file
// input left empty (no name, no bytes). photo.body holds the first byte
// read; the caller reads the rest from part.
func (fr *formReader) openPhoto(part *multipart.Part) (photo *photoUpload, empty bool, err error) {
	fr.havePhoto = true
	var first [1]byte
	n, err := part.Read(first[:])
	if err != nil && err != io.EOF {
		return nil, false, formReadError(err, fr.limit)
	}
	if n == 0 && part.FileName() == "" {
		return nil, true, nil
	}
	return &photoUpload{
		fileName:    claim(part.FileName()),
		contentType: claim(part.Header.Get("Content-Type")),
		body:        bytes.NewReader(first[:n]),
	}, false, nil
}

// rest reads the form after its photo: only fields the form does not have
// may follow, and are discarded.
func (fr *formReader) rest() error {
	part, err := fr.next()
	switch {
	case err == io.EOF:
		return nil
	case err != nil:
		return err
	case part.FormName() == "post":
		return badForm(http.StatusBadRequest, "The form has more than one \"post\" field.")
	case part.FormName() == keyField:
		return badForm(http.StatusBadRequest, "The form's %s must come before its photo.", keyField)
	default:
		return badForm(http.StatusBadRequest, "The form has more than one \"photo\" field.")
	}
}

// photoBody reads a photo that is streamed on: at most the limit, then the
// rest of the form, so that its io.EOF means the whole form was good.
type photoBody struct {
	fr   *formReader
	part io.Reader
	n    int64
	done bool
}

func (p *photoBody) Read(b []byte) (int, error) {
	if p.done {
		return 0, io.EOF
	}
	n, err := p.part.Read(b)
	p.n += int64(n)
	if p.n > p.fr.limit {
		return 0, tooLarge(p.fr.limit)
	}
	switch {
	case err == io.EOF:
		if rerr := p.fr.rest(); rerr != nil {
			return n, rerr
		}
		p.done = true
		return n, io.EOF
	case err != nil:
		// Never io.ErrUnexpectedEOF as such: a body cut short must not
		// read as the photo's end.
		return n, formReadError(err, p.fr.limit)
	}
	return n, nil
}

func formReadError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return badForm(http.StatusRequestEntityTooLarge, "The form is larger than the limit: the photo may be at most %s.", contract.FormatBytes(limit))
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errStalled
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return badForm(http.StatusRequestTimeout, "The upload took too long.")
	}
	// The part headers are parsed strictly: a NUL or another control
	// character in a field or file name ends here.
	var pe textproto.ProtocolError
	if errors.As(err, &pe) {
		return badForm(http.StatusBadRequest, "The form could not be read: the headers of one of its parts are malformed (for example a NUL or control character in a field or file name).")
	}
	return badForm(http.StatusBadRequest, "The form could not be read: %v.", err)
}

// cleanName reports whether a form field name is valid UTF-8 without
// control characters.
func cleanName(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// claim makes what a client says of its file carriable in the upload
// header (valid UTF-8, bounded); the upload service decides what is
// acceptable in it.
func claim(s string) string {
	return contract.Truncate(strings.ToValidUTF8(s, "\uFFFD"), maxClaimBytes)
}
