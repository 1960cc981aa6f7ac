package imaging

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
)

var testICC = cat([]byte("ICC_PROFILE\x00\x01\x01"), bytes.Repeat([]byte("fake-icc-profile"), 20))

// jpegWithMetadata dresses a plain JPEG like a phone photo: JFIF with a
// thumbnail, EXIF (orientation, GPS, maker note), XMP and extended XMP,
// an ICC profile, Photoshop IPTC, a comment and an MPF index.
func jpegWithMetadata(t testing.TB, j []byte, orientation int) []byte {
	jfif := cat([]byte("JFIF\x00\x01\x02\x01\x00\x48\x00\x48\x01\x01"), []byte{1, 2, 3}) // 1x1 thumbnail
	return jpegInsert(j,
		jpegSeg(mAPP0, jfif),
		jpegSeg(mAPP1, []byte("Exif\x00\x00"), testTIFF(binary.LittleEndian, orientation)),
		jpegSeg(mAPP1, xmpPrefix, []byte(testXMP)),
		jpegSeg(mAPP1, xmpExtPrefix, []byte("0123456789ABCDEF0123456789ABCDEF\x00\x00\x01\x00\x00\x00\x00\x00SECRET-XMP")),
		jpegSeg(mAPP2, testICC),
		jpegSeg(mAPPD, []byte("Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x0bSECRET-IPTC")),
		jpegSeg(mCOM, []byte("SECRET-COMMENT")),
		jpegSeg(mAPP2, []byte("MPF\x00II*\x00\x08\x00\x00\x00")),
		jpegSeg(0xEC, []byte("Ducky\x00\x01")),
	)
}

func TestJPEGPrivacy(t *testing.T) {
	plain := encJPEG(t, testImage(40, 30), 85)
	orig := jpegWithMetadata(t, plain, 6)
	r := inspectOK(t, orig)

	if r.Orientation != 6 {
		t.Errorf("orientation %d, want 6", r.Orientation)
	}
	want := []string{"JFIF thumbnail", "EXIF", "GPS", "MakerNote", "XMP", "IPTC", "comment", "MPF", "APP12"}
	if !slices.Equal(r.Removed, want) {
		t.Errorf("removed %q, want %q", r.Removed, want)
	}
	assertNoSecrets(t, r.Data)

	var exifs, iccs int
	for _, s := range jpegHeaderSegments(t, r.Data) {
		if s.marker >= mAPP0 && s.marker <= mAPPF {
			if bytes.Contains(s.payload, []byte{0x88, 0x25}) || bytes.Contains(s.payload, []byte{0x25, 0x88}) {
				t.Errorf("GPS tag in APP%d", s.marker-mAPP0)
			}
		}
		switch {
		case s.marker == mAPP1 && bytes.HasPrefix(s.payload, []byte("Exif\x00\x00")):
			exifs++
			if !bytes.Equal(s.payload[6:], minimalTIFF(6)) {
				t.Errorf("EXIF kept is % x, want only orientation 6", s.payload)
			}
			if info := parseTIFF(s.payload[6:]); info != (exifInfo{orientation: 6}) {
				t.Errorf("kept EXIF reads as %+v", info)
			}
		case s.marker == mAPP1:
			t.Errorf("APP1 %q kept", s.payload[:min(len(s.payload), 30)])
		case s.marker == mAPP2:
			iccs++
			if !bytes.Equal(s.payload, testICC) {
				t.Error("ICC profile changed")
			}
		case s.marker == mAPP0:
			if len(s.payload) != 14 || s.payload[12] != 0 || s.payload[13] != 0 {
				t.Errorf("JFIF kept with a thumbnail: % x", s.payload)
			}
		case s.marker > mAPP2 && s.marker <= mAPPF, s.marker == mCOM:
			t.Errorf("marker %x kept", s.marker)
		}
	}
	if exifs != 1 || iccs != 1 {
		t.Errorf("%d EXIF and %d ICC segments, want 1 and 1", exifs, iccs)
	}
	// Same pixels: the entropy-coded data is copied, never re-encoded.
	samePixels(t, decode(t, TypeJPEG, plain), decode(t, TypeJPEG, r.Data))
	samePixels(t, decode(t, TypeJPEG, orig), decode(t, TypeJPEG, r.Data))
}

func TestJPEGOrientation(t *testing.T) {
	plain := encJPEG(t, testImage(8, 8), 80)
	for _, tt := range []struct {
		name string
		tiff []byte
		want int
	}{
		{"upright", testTIFF(binary.LittleEndian, 1), 1},
		{"big endian 8", testTIFF(binary.BigEndian, 8), 8},
		{"little endian 3", testTIFF(binary.LittleEndian, 3), 3},
		{"out of range", testTIFF(binary.LittleEndian, 9), 1},
		{"garbage", []byte("MM\x00*\xff\xff\xff\xff"), 1},
		{"IFD count past the end", []byte("II*\x00\x08\x00\x00\x00\xff\xff\x12\x01\x03\x00"), 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := inspectOK(t, jpegInsert(plain, jpegSeg(mAPP1, []byte("Exif\x00\x00"), tt.tiff)))
			if r.Orientation != tt.want {
				t.Fatalf("orientation %d, want %d", r.Orientation, tt.want)
			}
			if tt.want == 1 && !bytes.Equal(r.Data, plain) {
				t.Fatal("an upright photo keeps no EXIF at all")
			}
			if tt.want != 1 && !bytes.Equal(r.Data, jpegInsert(plain, minimalExifSegment(tt.want))) {
				t.Fatal("not the minimal EXIF")
			}
		})
	}
	t.Run("only the first orientation counts", func(t *testing.T) {
		b := jpegInsert(plain,
			jpegSeg(mAPP1, []byte("Exif\x00\x00"), testTIFF(binary.LittleEndian, 6)),
			jpegSeg(mAPP1, []byte("Exif\x00\x00"), testTIFF(binary.BigEndian, 8)))
		r := inspectOK(t, b)
		if r.Orientation != 6 || !bytes.Equal(r.Data, jpegInsert(plain, minimalExifSegment(6))) {
			t.Fatalf("orientation %d", r.Orientation)
		}
	})
}

func TestJPEGKeeps(t *testing.T) {
	plain := encJPEG(t, testImage(8, 8), 80)
	jfif := jpegSeg(mAPP0, []byte("JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"))
	adobe := jpegSeg(mAPPE, []byte("Adobe\x00\x64\x80\x00\x00\x00\x01"))
	icc := jpegSeg(mAPP2, testICC)
	b := jpegInsert(plain, jfif, icc, adobe)
	r := inspectOK(t, b)
	if !bytes.Equal(r.Data, b) || len(r.Removed) != 0 {
		t.Fatalf("JFIF, ICC and Adobe must be kept as they are; removed %v", r.Removed)
	}
}

func TestJPEGMalformed(t *testing.T) {
	plain := encJPEG(t, testImage(8, 8), 80)
	sos := bytes.Index(plain, []byte{0xFF, mSOS})
	checkMalformed(t, true, []malformedCase{
		{"no frame header", cat(plain[:2], jpegSeg(mSOS, []byte{1, 1, 0, 0, 63, 0}), []byte{1, 2, 0xFF, 0xD9}), "the JPEG file is corrupt: image data comes before the frame header"},
		{"no scan", cat(jpegHeader(8, 8), []byte{0xFF, 0xD9}), "the JPEG file is corrupt: it ends before any image data"},
		{"segment past the end", cat(plain[:2], []byte{0xFF, 0xE1, 0x40, 0x00}, []byte("Exif")), "the JPEG file is truncated: the APP1 segment is cut off"},
		{"length too small", cat(plain[:2], []byte{0xFF, 0xE1, 0x00, 0x01}, plain[2:]), "the JPEG file is corrupt: the APP1 segment has an invalid length"},
		{"garbage between segments", cat(plain[:2], jpegSeg(mCOM, []byte("x")), []byte("<html>"), plain[2:]), "the JPEG file is corrupt: expected a marker at byte 7"},
		{"two frames", cat(plain[:sos], jpegHeader(8, 8)[2:], plain[sos:]), "the JPEG file is corrupt: it has more than one frame header"},
		{"unknown marker", cat(plain[:2], jpegSeg(0x02, []byte{0}), plain[2:]), "the JPEG file is corrupt: it contains an unknown marker 0x02"},
		{"second SOI", cat(plain[:2], plain), "the JPEG file is corrupt: a second start-of-image marker"},
	})
}

func TestJPEGUnsupportedVariants(t *testing.T) {
	plain := encJPEG(t, testImage(8, 8), 80)
	sof := bytes.Index(plain, []byte{0xFF, mSOF0})
	for name, patch := range map[string]func(b []byte){
		"lossless":   func(b []byte) { b[sof+1] = 0xC3 },
		"arithmetic": func(b []byte) { b[sof+1] = 0xC9 },
		"12-bit":     func(b []byte) { b[sof+4] = 12 },
	} {
		t.Run(name, func(t *testing.T) {
			b := bytes.Clone(plain)
			patch(b)
			r, err := Inspect(b, Limits{})
			wantErr(t, r, err, ErrUnsupported)
		})
	}
}

func TestJPEGTrailingData(t *testing.T) {
	plain := encJPEG(t, testImage(8, 8), 80)
	// A motion photo: a second JPEG and a video after the first EOI.
	b := cat(plain, plain, []byte("\x00\x00\x00\x18ftypmp42 video"))
	r := inspectOK(t, b)
	if !bytes.Equal(r.Data, plain) || !slices.Equal(r.Removed, []string{"trailing data"}) {
		t.Fatalf("removed %v", r.Removed)
	}
}

func TestJPEGFillAndRestart(t *testing.T) {
	// Extra FF fill bytes before markers are legal and dropped; a stray
	// restart marker between segments is tolerated and kept.
	plain := encJPEG(t, testImage(8, 8), 80)
	b := cat(plain[:2], []byte{0xFF, 0xFF, 0xFF}, []byte{0xFF, mRST0}, plain[2:])
	r := inspectOK(t, b)
	if !bytes.Equal(r.Data, cat(plain[:2], []byte{0xFF, mRST0}, plain[2:])) {
		t.Fatal("unexpected output")
	}
	samePixels(t, decode(t, TypeJPEG, plain), decode(t, TypeJPEG, r.Data))
}
