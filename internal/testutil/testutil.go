// Package testutil holds the helpers the tests of several packages share:
// waiting for a condition, reading /metrics, image fixtures, multipart
// forms and gRPC services over an in-memory listener.
package testutil

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// Eventually fails the test if cond does not hold Within d.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Within(d, cond) {
		t.Fatalf("%s: not within %s", what, d)
	}
}

// Within checks cond every 10 ms, for d at the most, until it holds.
func Within(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// Metric is MetricSum of what a /metrics url serves.
func Metric(t testing.TB, url, name string, with ...string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return MetricSum(string(text), name, with...)
}

// MetricSum adds the samples of name in a Prometheus text exposition:
// name is a metric's name, or its name with the start of its labels
// (`m{outcome="posted"}`); each of with must appear in the sample's line.
func MetricSum(text, name string, with ...string) float64 {
	total := 0.0
lines:
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") &&
			!(strings.HasSuffix(name, "}") && strings.HasPrefix(line, name)) {
			continue
		}
		for _, w := range with {
			if !strings.Contains(line, w) {
				continue lines
			}
		}
		f := strings.Fields(line)
		n, _ := strconv.ParseFloat(f[len(f)-1], 64)
		total += n
	}
	return total
}

// gradient is a w x h picture, different at every pixel.
func gradient(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / max(1, w)), uint8(y * 255 / max(1, h)), uint8((x + y) % 256), 255})
		}
	}
	return img
}

// PNG encodes a w x h gradient.
func PNG(t testing.TB, w, h int) []byte { return EncodePNG(t, gradient(w, h)) }

// EncodePNG encodes m as a PNG, at the compression level given if any.
func EncodePNG(t testing.TB, m image.Image, level ...png.CompressionLevel) []byte {
	t.Helper()
	e := png.Encoder{}
	if len(level) > 0 {
		e.CompressionLevel = level[0]
	}
	return encode(t, func(b *bytes.Buffer) error { return e.Encode(b, m) })
}

// JPEG encodes a w x h gradient.
func JPEG(t testing.TB, w, h int) []byte { return EncodeJPEG(t, gradient(w, h)) }

// EncodeJPEG encodes m as a JPEG, at the quality given or 85.
func EncodeJPEG(t testing.TB, m image.Image, quality ...int) []byte {
	t.Helper()
	o := jpeg.Options{Quality: 85}
	if len(quality) > 0 {
		o.Quality = quality[0]
	}
	return encode(t, func(b *bytes.Buffer) error { return jpeg.Encode(b, m, &o) })
}

// GIF encodes a w x h gradient.
func GIF(t testing.TB, w, h int) []byte {
	t.Helper()
	return encode(t, func(b *bytes.Buffer) error { return gif.Encode(b, gradient(w, h), nil) })
}

func encode(t testing.TB, enc func(*bytes.Buffer) error) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := enc(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// File is a form's file part, "photo".
type File struct {
	Name, ContentType string
	Data              []byte
	First             bool // before the fields rather than after
}

// Form builds a multipart body: the fields in order, and the file if there
// is one after them, or before if First.
func Form(t testing.TB, fields [][2]string, file *File) (body []byte, contentType string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	writeFile := func(first bool) {
		if file == nil || file.First != first {
			return
		}
		h := textproto.MIMEHeader{"Content-Disposition": {`form-data; name="photo"; filename="` + file.Name + `"`}}
		if file.ContentType != "" {
			h.Set("Content-Type", file.ContentType)
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(file.Data)
	}
	writeFile(true)
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(false)
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), mw.FormDataContentType()
}

// Bufconn serves the services register adds over an in-memory listener
// until the test ends, and returns a connection to them.
func Bufconn(t testing.TB, register func(*grpc.Server), opts ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(opts...)
	register(gs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// Photo is the file part of an upload form.
func Photo(name, contentType string, data []byte) *File {
	return &File{Name: name, ContentType: contentType, Data: data}
}

// PNGChunk is a PNG chunk of the given type, its body the parts joined,
// with its length and CRC.
func PNGChunk(typ string, body ...[]byte) []byte {
	data := bytes.Join(body, nil)
	c := append(append(binary.BigEndian.AppendUint32(nil, uint32(len(data))), typ...), data...)
	return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(c[4:])) // of the type and the data
}

// HugePNG is a well-formed PNG declaring w x h pixels with a token IDAT:
// it must be refused from its header alone.
func HugePNG(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, w), h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0)
	return bytes.Join([][]byte{[]byte("\x89PNG\r\n\x1a\n"), PNGChunk("IHDR", ihdr),
		PNGChunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01}), PNGChunk("IEND")}, nil)
}

// Buffer is a bytes.Buffer safe for one goroutine writing while another
// reads. With Max set, what comes past Max bytes is dropped.
type Buffer struct {
	Max int
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Max > 0 && b.buf.Len() > b.Max {
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// NeedTool skips a test whose external tool or server is missing, except
// in CI (CI=true), where it fails the test rather than hide a check.
func NeedTool(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// TIFF is an EXIF block like a phone's, in byte order bo: IFD0 with the
// camera make and the orientation, an EXIF sub-IFD with a maker note and a
// GPS IFD with a position, all strings NoSecrets looks for.
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

// NoSecrets fails the test if b contains a string of the metadata fixtures
// (TIFF, XMP, and the comments, IPTC and text the tests add) or of more.
func NoSecrets(t testing.TB, b []byte, more ...string) {
	t.Helper()
	for _, s := range append(more, "SecretCam", "MAKERNOTE", "SECRET-PLACE", "SECRET-XMP", "SECRET-COMMENT", "SECRET-IPTC", "SECRET-TEXT") {
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
