// Package imaging is the upload service's photo gatekeeper. Inspect decides
// from the bytes alone (never the client's content type or file name) whether
// an upload is a JPEG, PNG, GIF or WebP image; walks the file's structure
// (segments, chunks, blocks, lengths and checksums) without decoding pixels,
// so truncated, corrupt and disguised files are refused; checks the declared
// dimensions against pixel limits before anything is allocated for them; and
// returns a copy with privacy metadata (EXIF with GPS and maker notes, XMP,
// IPTC, comments, text chunks, embedded thumbnails, data after the end of the
// image) cut out segment by segment, never re-encoded, so the stored pixels
// are exactly the uploaded ones. Errors wrap ErrEmpty, ErrUnsupported,
// ErrMalformed or ErrTooLarge for errors.Is and read as sentences that can be
// shown to the user as they are.
package imaging

import (
	"errors"
	"fmt"
	"slices"
)

// Default limits. 40 megapixels is above any phone camera still, and 10,000
// pixels a side keeps panoramas in while refusing images whose decoded
// bitmap would exhaust a browser's or a thumbnailer's memory.
const (
	DefaultMaxPixels = 40_000_000
	DefaultMaxSide   = 10_000
)

// Limits bounds the dimensions Inspect accepts. A field that is zero or
// negative takes its default, so the zero Limits is DefaultLimits.
type Limits struct {
	MaxPixels int64 // width × height, default 40,000,000
	MaxSide   int   // width and height each, default 10,000
}

// DefaultLimits returns the limits the upload service uses unless it is
// configured otherwise.
func DefaultLimits() Limits {
	return Limits{MaxPixels: DefaultMaxPixels, MaxSide: DefaultMaxSide}
}

// DisplaySize is the size the photo shows at once its EXIF orientation is
// applied: orientations 5 to 8 turn it a quarter, swapping the sides. Pages
// use it for the <img> width and height, so a turned photo reserves the
// right box.
func (r Result) DisplaySize() (width, height int) {
	if r.Orientation >= 5 && r.Orientation <= 8 {
		return r.Height, r.Width
	}
	return r.Width, r.Height
}

func (l Limits) orDefaults() Limits {
	if l.MaxPixels <= 0 {
		l.MaxPixels = DefaultMaxPixels
	}
	if l.MaxSide <= 0 {
		l.MaxSide = DefaultMaxSide
	}
	return l
}

// Content types Inspect reports; they are what the site serves the stored
// bytes with.
const (
	TypeJPEG = "image/jpeg"
	TypePNG  = "image/png"
	TypeGIF  = "image/gif"
	TypeWebP = "image/webp"
)

// Result describes an accepted photo.
type Result struct {
	// ContentType is TypeJPEG, TypePNG, TypeGIF or TypeWebP.
	ContentType string
	// Width and Height are the stored pixel dimensions from the header (the
	// logical screen of a GIF, the canvas of an extended WebP). They are
	// before orientation: with Orientation 5 to 8 the photo displays Height
	// pixels wide and Width pixels tall.
	Width, Height int
	// Orientation is the EXIF orientation (1 to 8) left in Data so that the
	// photo still displays upright; 1 when Data carries none.
	Orientation int
	// Data is the cleaned file to store: a new slice, never the input.
	Data []byte
	// Removed names what was cut out, in the order met, for logging: for
	// example "EXIF", "GPS", "MakerNote", "XMP", "IPTC", "comment",
	// "text", "timestamp", "trailing data". Empty when nothing was.
	Removed []string
}

// Errors returned by Inspect, always wrapped in an *Error whose message says
// more; test them with errors.Is.
var (
	// ErrEmpty: the upload has no bytes. It also matches ErrUnsupported,
	// so a caller that handles only that still answers correctly.
	ErrEmpty = errors.New("the photo is empty")
	// ErrUnsupported: the bytes are not a JPEG, PNG, GIF or WebP image
	// (text, HTML, SVG, a script, an archive, a PDF, HEIC, ...), or use a
	// variant of one that web browsers cannot display.
	ErrUnsupported = errors.New("the file is not a JPEG, PNG, GIF or WebP image")
	// ErrMalformed: the file starts like a supported image but is
	// truncated or corrupt.
	ErrMalformed = errors.New("the image file is damaged or incomplete")
	// ErrTooLarge: the declared dimensions exceed the Limits.
	ErrTooLarge = errors.New("the image dimensions are too large")
)

// Error is the type of every error Inspect returns. Its message is a
// complete, user-facing sentence; Kind is one of the Err variables above.
type Error struct {
	Kind   error  // ErrEmpty, ErrUnsupported, ErrMalformed or ErrTooLarge
	Format string // "JPEG", "PNG", "GIF", "WebP", or "" when not one of them
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap makes errors.Is(err, e.Kind) true.
func (e *Error) Unwrap() error { return e.Kind }

// Is makes an empty upload match ErrUnsupported as well as ErrEmpty.
func (e *Error) Is(target error) bool {
	return e.Kind == ErrEmpty && target == ErrUnsupported
}

func truncated(format, what string) error {
	return &Error{Kind: ErrMalformed, Format: format,
		Msg: fmt.Sprintf("the %s file is truncated: %s", format, what)}
}

func corrupt(format, what string) error {
	return &Error{Kind: ErrMalformed, Format: format,
		Msg: fmt.Sprintf("the %s file is corrupt: %s", format, what)}
}

func unsupportedVariant(format, what string) error {
	return &Error{Kind: ErrUnsupported, Format: format,
		Msg: fmt.Sprintf("the %s file %s, which web browsers cannot display; please save it as a standard %s", format, what, format)}
}

// checkDims applies the limits. It only multiplies in int64, so a header
// declaring 16,777,216 × 16,777,216 is answered without overflow and
// without allocating anything for it.
func checkDims(format string, w, h int, lim Limits) error {
	if w <= 0 || h <= 0 {
		return corrupt(format, fmt.Sprintf("it declares a size of %d x %d pixels", w, h))
	}
	if w > lim.MaxSide || h > lim.MaxSide {
		return &Error{Kind: ErrTooLarge, Format: format,
			Msg: fmt.Sprintf("the image is %d x %d pixels, but each side may be at most %d pixels; please resize it", w, h, lim.MaxSide)}
	}
	if px := int64(w) * int64(h); px > lim.MaxPixels {
		return &Error{Kind: ErrTooLarge, Format: format,
			Msg: fmt.Sprintf("the image is %d x %d pixels (%d pixels), but at most %d pixels are allowed; please resize it", w, h, px, lim.MaxPixels)}
	}
	return nil
}

// maxRemoved caps the names in Result.Removed. A hostile file can hold
// hundreds of thousands of distinct unknown chunks; without a cap the list,
// and the search that keeps it free of duplicates, would grow with them.
const maxRemoved = 16

// removed collects the names for Result.Removed, each once, in the order
// first met, at most maxRemoved of them.
type removed []string

func (r *removed) add(name string) {
	if len(*r) < maxRemoved && !slices.Contains(*r, name) {
		*r = append(*r, name)
	}
}

// addBytes is add for a name still in bytes: it converts (allocates) only
// when the name is new, so a file of a million identical chunks costs no
// allocations here.
func (r *removed) addBytes(name []byte) {
	if len(*r) >= maxRemoved {
		return
	}
	for _, s := range *r {
		if s == string(name) {
			return
		}
	}
	*r = append(*r, string(name))
}

// Inspect decides the photo's type from its bytes alone, checks that the
// file is complete and well formed, reads the dimensions from the header
// only (no pixel decoding, no allocation proportional to the declared
// size), enforces lim, and returns a cleaned copy with privacy metadata
// removed. On error the Result is the zero value. It keeps no state and is
// safe for concurrent use; its time and memory are linear in len(data).
//
// The checks are structural: a file whose every length, marker and
// checksum is right but whose compressed pixel data is garbage is accepted
// and will display as garbage. That is harmless, because the site serves
// the bytes with the detected type and nosniff, and is what keeps Inspect
// fast and its memory bounded.
func Inspect(data []byte, lim Limits) (Result, error) {
	lim = lim.orDefaults()
	var (
		r   Result
		err error
	)
	switch sniff(data) {
	case TypeJPEG:
		r, err = inspectJPEG(data, lim)
	case TypePNG:
		r, err = inspectPNG(data, lim)
	case TypeGIF:
		r, err = inspectGIF(data, lim)
	case TypeWebP:
		r, err = inspectWebP(data, lim)
	default:
		err = unsupported(data)
	}
	if err != nil {
		return Result{}, err
	}
	if r.Orientation == 0 {
		r.Orientation = 1
	}
	return r, nil
}
