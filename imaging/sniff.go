package imaging

import (
	"bytes"
	"unicode/utf8"
)

var (
	jpegMagic = []byte{0xFF, 0xD8, 0xFF}
	pngMagic  = []byte("\x89PNG\r\n\x1a\n")
)

// sniff names the format from the magic bytes only. Anything that does not
// start exactly like one of the four formats is unsupported, however it was
// labelled by the client.
func sniff(b []byte) string {
	switch {
	case bytes.HasPrefix(b, jpegMagic):
		return TypeJPEG
	case bytes.HasPrefix(b, pngMagic):
		return TypePNG
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return TypeGIF
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return TypeWebP
	}
	return ""
}

// unsupported builds the error for bytes that are not one of the four
// formats, naming what they look like when that is easy to tell, because
// "this is a HEIC photo" helps a user far more than "unsupported".
func unsupported(b []byte) error {
	if len(b) == 0 {
		return &Error{Kind: ErrEmpty, Msg: "the photo is empty: please choose a JPEG, PNG, GIF or WebP image"}
	}
	what := describe(b)
	msg := ErrUnsupported.Error()
	switch what {
	case "":
	case "a HEIC image", "an AVIF image", "a JPEG XL image", "a TIFF image", "a BMP image":
		msg = "the file is " + what + ", which is not supported: please convert it to JPEG, PNG, GIF or WebP"
	default:
		msg = "the file is " + what + ", not a JPEG, PNG, GIF or WebP image"
	}
	return &Error{Kind: ErrUnsupported, Msg: msg}
}

// describe guesses what an unsupported file is; "" when it cannot tell.
func describe(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("%PDF-")):
		return "a PDF document"
	case bytes.HasPrefix(b, []byte("PK\x03\x04")), bytes.HasPrefix(b, []byte("PK\x05\x06")):
		return "a ZIP archive"
	case bytes.HasPrefix(b, []byte("II*\x00")), bytes.HasPrefix(b, []byte("MM\x00*")):
		return "a TIFF image"
	case bytes.HasPrefix(b, []byte{0xFF, 0x0A}), bytes.HasPrefix(b, []byte("\x00\x00\x00\x0cJXL \r\n\x87\n")):
		return "a JPEG XL image"
	case len(b) >= 12 && string(b[4:8]) == "ftyp":
		switch string(b[8:12]) {
		case "heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1":
			return "a HEIC image"
		case "avif", "avis":
			return "an AVIF image"
		}
		return "a video"
	case len(b) >= 14 && string(b[:2]) == "BM" && b[6] == 0 && b[7] == 0 && b[8] == 0 && b[9] == 0:
		return "a BMP image"
	}
	if bytes.IndexByte(b[:min(len(b), 4096)], 0) >= 0 {
		return ""
	}
	// Text: look at the start, lower-cased, after a BOM and white space.
	head := b[:min(len(b), 1024)]
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	head = bytes.ToLower(bytes.TrimLeft(head, " \t\r\n\f"))
	switch {
	case bytes.HasPrefix(head, []byte("<?php")), bytes.Contains(head, []byte("<?php")):
		return "a PHP script"
	case bytes.Contains(head, []byte("<svg")):
		return "an SVG image"
	case bytes.HasPrefix(head, []byte("<!doctype html")), bytes.HasPrefix(head, []byte("<html")),
		bytes.HasPrefix(head, []byte("<head")), bytes.HasPrefix(head, []byte("<body")),
		bytes.HasPrefix(head, []byte("<script")), bytes.Contains(head, []byte("<html")):
		return "an HTML page"
	case bytes.HasPrefix(head, []byte("<?xml")):
		return "an XML document"
	}
	// The sample may end inside a multi-byte character.
	p := b[:min(len(b), 4096)]
	for i := 0; i < 3 && len(p) > 1 && !utf8.Valid(p); i++ {
		p = p[:len(p)-1]
	}
	if utf8.Valid(p) {
		return "a text file"
	}
	return ""
}
