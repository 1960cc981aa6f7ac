package testutil

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TIFF is an EXIF block like a phone's, in byte order bo: IFD0 with the
// camera make and the orientation, an EXIF sub-IFD with a maker note and a
// GPS IFD with a position. Its strings are among Secrets.
func TIFF(bo binary.ByteOrder, orientation int) []byte {
	b := make([]byte, 164)
	if bo == binary.ByteOrder(binary.LittleEndian) {
		copy(b, "II*\x00")
	} else {
		copy(b, "MM\x00*")
	}
	bo.PutUint32(b[4:], 8)
	entry := func(p int, tag, typ uint16, count, value uint32) {
		bo.PutUint16(b[p:], tag)
		bo.PutUint16(b[p+2:], typ)
		bo.PutUint32(b[p+4:], count)
		bo.PutUint32(b[p+8:], value)
	}
	bo.PutUint16(b[8:], 4)       // IFD0: 4 entries, next IFD at 58 is 0
	entry(10, 0x010F, 2, 10, 62) // Make
	entry(22, 0x0112, 3, 1, 0)   // Orientation
	bo.PutUint16(b[30:], uint16(orientation))
	entry(34, 0x8769, 4, 1, 72)  // EXIF IFD
	entry(46, 0x8825, 4, 1, 114) // GPS IFD
	copy(b[62:], "SecretCam\x00")
	bo.PutUint16(b[72:], 1)      // EXIF IFD: the maker note
	entry(74, 0x927C, 7, 22, 90) // MakerNote
	copy(b[90:], "MAKERNOTE-SERIAL-12345")
	bo.PutUint16(b[114:], 2) // GPS IFD: latitude ref and processing method
	entry(116, 0x0001, 2, 2, 0)
	copy(b[124:], "N\x00")
	entry(128, 0x001B, 7, 20, 144)
	copy(b[144:], "ASCII\x00\x00\x00SECRET-PLACE")
	return b
}

// XMP is an XMP packet with a position in it.
const XMP = `<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description exif:GPSLatitude="SECRET-XMP"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>`

// Secrets are the strings of the metadata fixtures (TIFF, XMP, and the
// comments, IPTC and text the tests add) that a cleaned file must not
// contain.
var Secrets = []string{"SecretCam", "MAKERNOTE", "SECRET-PLACE", "SECRET-XMP", "SECRET-COMMENT", "SECRET-IPTC", "SECRET-TEXT"}

// NoSecrets fails the test if b contains any of Secrets, or of more.
func NoSecrets(t testing.TB, b []byte, more ...string) {
	t.Helper()
	for _, s := range append(Secrets, more...) {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("cleaned file still contains %q", s)
		}
	}
}

// JPEGSegment is a JPEG marker segment, its payload the parts joined.
func JPEGSegment(marker byte, payload ...[]byte) []byte {
	p := bytes.Join(payload, nil)
	return append([]byte{0xFF, marker, byte((len(p) + 2) >> 8), byte(len(p) + 2)}, p...)
}

// JPEGInsert puts segments right after SOI, where cameras put theirs.
func JPEGInsert(j []byte, segs ...[]byte) []byte {
	return bytes.Join([][]byte{j[:2], bytes.Join(segs, nil), j[2:]}, nil)
}

// PNGInsert puts chunks right after IHDR.
func PNGInsert(p []byte, chunks ...[]byte) []byte {
	const afterIHDR = 8 + 25
	return bytes.Join([][]byte{p[:afterIHDR], bytes.Join(chunks, nil), p[afterIHDR:]}, nil)
}
