// Package testutil holds the helpers the tests of several packages share:
// waiting for a condition, reading /metrics, image fixtures, multipart
// forms and gRPC services over an in-memory listener.
package testutil

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
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

// Eventually checks cond every 10 ms and fails the test if it does not
// hold within d.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Within(d, cond) {
		t.Fatalf("%s: not within %s", what, d)
	}
}

// Within checks cond every 10 ms until it holds, for d at the most, and
// reports whether it held.
func Within(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// Scrape returns the text a /metrics URL serves.
func Scrape(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	return b.String()
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

// Metric is MetricSum of what url serves.
func Metric(t testing.TB, url, name string, with ...string) float64 {
	t.Helper()
	return MetricSum(Scrape(t, url), name, with...)
}

// Image is a w x h gradient, different at every pixel.
func Image(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / max(1, w)), uint8(y * 255 / max(1, h)), uint8((x + y) % 256), 255})
		}
	}
	return img
}

// PNG encodes Image(w, h).
func PNG(t testing.TB, w, h int) []byte { return EncodePNG(t, Image(w, h)) }

// EncodePNG encodes m as a PNG, at the compression level given if any.
func EncodePNG(t testing.TB, m image.Image, level ...png.CompressionLevel) []byte {
	t.Helper()
	e := png.Encoder{}
	if len(level) > 0 {
		e.CompressionLevel = level[0]
	}
	return encode(t, func(b *bytes.Buffer) error { return e.Encode(b, m) })
}

// JPEG encodes Image(w, h) at quality 85.
func JPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	return encode(t, func(b *bytes.Buffer) error { return jpeg.Encode(b, Image(w, h), &jpeg.Options{Quality: 85}) })
}

// GIF encodes Image(w, h).
func GIF(t testing.TB, w, h int) []byte {
	t.Helper()
	return encode(t, func(b *bytes.Buffer) error { return gif.Encode(b, Image(w, h), nil) })
}

func encode(t testing.TB, enc func(*bytes.Buffer) error) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := enc(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// File is a form's file part.
type File struct {
	Field, Name, ContentType string
	Data                     []byte
	First                    bool // before the fields rather than after
}

// Form builds a multipart body: the fields in order, and the file if there
// is one (Field defaults to "photo") after them, or before if First.
func Form(t testing.TB, fields [][2]string, file *File) (body []byte, contentType string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	writeFile := func() {
		if file == nil {
			return
		}
		field := file.Field
		if field == "" {
			field = "photo"
		}
		h := textproto.MIMEHeader{"Content-Disposition": {`form-data; name="` + field + `"; filename="` + file.Name + `"`}}
		if file.ContentType != "" {
			h.Set("Content-Type", file.ContentType)
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(file.Data)
	}
	if file != nil && file.First {
		writeFile()
		file = nil
	}
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	writeFile()
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
	c := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	c = append(c, typ...)
	c = append(c, data...)
	return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(append([]byte(typ), data...)))
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
// in CI (CI=true), where a missing tool must fail the run rather than hide
// a check.
func NeedTool(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}
