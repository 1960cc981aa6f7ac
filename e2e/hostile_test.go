package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"html"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"github.com/extagram/extagram/imaging"
	"github.com/extagram/extagram/internal/apierr"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// Files that are not images, each as a browser or a script might send it.
var notImages = map[string][]byte{
	"text": []byte("hello, world\n"),
	"HTML": []byte("<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"),
	"SVG": []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">` +
		`<script>alert(1)</script><rect width="10" height="10"/></svg>`),
	"PHP": []byte("<?php system($_GET['c']); ?>"),
	"PDF": []byte("%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"),
}

func zipBytes(t testing.TB) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.Create("shell.php")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("<?php system($_GET['c']); ?>"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// webpBytes is a lossy WebP made by libwebp (the imaging package's test
// fixture): the standard library cannot write WebP.
func webpBytes(t testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join("..", "imaging", "testdata", "lossy.webp"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const polyglotHTML = "<html><body><script>alert(document.cookie)</script></body></html>"

// gifPolyglot is a valid GIF that is also an HTML page: the page sits in a
// comment extension and again after the trailer.
func gifPolyglot(t testing.TB) []byte {
	g := testutil.GIF(t, 8, 8)
	pos := 13
	if g[10]&0x80 != 0 {
		pos += 3 << (g[10]&7 + 1)
	}
	comment := []byte{0x21, 0xFE, byte(len(polyglotHTML))}
	comment = append(comment, polyglotHTML...)
	comment = append(comment, 0)
	out := append(append(append([]byte{}, g[:pos]...), comment...), g[pos:]...)
	return append(out, polyglotHTML...)
}

// badFiles are photos that must be refused, with the HTTP status and the
// gRPC reason expected for each.
type badFile struct {
	name, fileName, contentType string
	data                        []byte
	status                      int
	msg                         string                     // in the page
	reason                      uploadv1.UploadErrorReason // of the gRPC error
}

func badFiles(t testing.TB) []badFile {
	var out []badFile
	kinds := map[string][]byte{"ZIP": zipBytes(t)}
	for k, v := range notImages {
		kinds[k] = v
	}
	for kind, data := range kinds {
		out = append(out,
			badFile{kind + " named .jpg", "photo.jpg", "image/jpeg", data, 415, "not a JPEG, PNG, GIF or WebP", uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_UNSUPPORTED_TYPE},
			badFile{kind + " sent as PNG", "photo.png", "image/png", data, 415, "not a JPEG, PNG, GIF or WebP", uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_UNSUPPORTED_TYPE})
	}
	png, jpg, gif, webp := testutil.PNG(t, 64, 64), testutil.JPEG(t, 64, 64), testutil.GIF(t, 64, 64), webpBytes(t)
	out = append(out,
		badFile{"truncated JPEG", "a.jpg", "image/jpeg", jpg[:len(jpg)*2/3], 400, "JPEG file is truncated", uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_MALFORMED_IMAGE},
		badFile{"truncated PNG", "a.png", "image/png", png[:len(png)*2/3], 400, "PNG file is truncated", uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_MALFORMED_IMAGE},
		badFile{"truncated GIF", "a.gif", "image/gif", gif[:len(gif)*2/3], 400, "GIF file is truncated", uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_MALFORMED_IMAGE},
		badFile{"truncated WebP", "a.webp", "image/webp", webp[:len(webp)*2/3], 400, "WebP file is truncated", uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_MALFORMED_IMAGE},
		badFile{"JPEG cut after its first marker", "a.jpg", "image/jpeg", jpg[:20], 400, "JPEG file is truncated", uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_MALFORMED_IMAGE},
		badFile{"GIF header then HTML", "a.gif", "image/gif", []byte("GIF89a" + polyglotHTML), 400, "GIF", uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_MALFORMED_IMAGE},
		badFile{"PNG of 100,000 x 100,000", "a.png", "image/png", testutil.HugePNG(100000, 100000), 413, "100000 x 100000", uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_TOO_LARGE},
	)
	return out
}

// rawPart writes a multipart part with exactly the given headers.
func rawForm(t testing.TB, parts ...[2]string) (body []byte, contentType string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		if p[0] != "" {
			h.Set("Content-Disposition", p[0])
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(p[1]))
	}
	_ = mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

// TestHostileUploads sends the edge bad forms: missing, empty, too long or
// invalid text, files that lie about their type, truncated files of every
// format, polyglots, oversized files, NUL bytes in names, parts without
// names. Each gets its own status and a message in an alert on the page,
// and nothing reaches the database or the folder.
func TestHostileUploads(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		m := testmesh.Start(t, testmesh.Options{Store: st, MaxUploadBytes: 256 << 10})
		uploadPhoto(t, m, "already here", testutil.Photo("a.png", "image/png", testutil.PNG(t, 10, 10)))
		before := snap(t, m)
		png := testutil.PNG(t, 16, 16)

		for _, c := range badFiles(t) {
			t.Run(c.name, func(t *testing.T) {
				body, ct := testutil.Form(t, [][2]string{{"post", "hostile " + c.name}}, testutil.Photo(c.fileName, c.contentType, c.data))
				resp, page := post(t, m, body, ct)
				assertRefused(t, resp, page, c.status, c.msg)
			})
		}
		big := bytes.Repeat([]byte{0xff}, 256<<10+1)
		copy(big, png)
		manyFields := [][2]string{{"post", "x"}}
		for i := range 300 {
			manyFields = append(manyFields, [2]string{fmt.Sprintf("f%d", i), "x"})
		}
		fields := func(f [][2]string, file *testutil.File) func() ([]byte, string) {
			return func() ([]byte, string) { return testutil.Form(t, f, file) }
		}
		for _, c := range []struct {
			name   string
			body   func() ([]byte, string)
			status int
			msg    string
		}{
			{"no text", fields(nil, testutil.Photo("a.png", "image/png", png)), 400, "text is required"},
			{"empty text", fields([][2]string{{"post", ""}}, nil), 400, "text is required"},
			{"white space", fields([][2]string{{"post", " \t\n "}}, nil), 400, "text is required"},
			{"one character too long", fields([][2]string{{"post", strings.Repeat("é", 2201)}}, nil), 400, "limit is 2200"},
			{"invalid UTF-8", fields([][2]string{{"post", "caf\xe9"}}, nil), 400, "UTF-8"},
			{"NUL in text", fields([][2]string{{"post", "a\x00b"}}, nil), 400, "NUL"},
			{"empty file", fields([][2]string{{"post", "x"}}, testutil.Photo("empty.png", "image/png", nil)), 400, "empty"},
			{"over the size limit", fields([][2]string{{"post", "x"}}, testutil.Photo("a.png", "image/png", big)), 413, "256 KiB"},
			{"hundreds of fields", fields(manyFields, nil), 400, "too many fields"},
			{"two texts", fields([][2]string{{"post", "x"}, {"post", "y"}}, nil), 400, "more than one"},
			{"URL-encoded form", func() ([]byte, string) { return []byte("post=hello"), "application/x-www-form-urlencoded" }, 415, "multipart/form-data"},
			{"white space text with a photo", func() ([]byte, string) {
				return testutil.Form(t, [][2]string{{"post", "\u00a0 \r\n\t"}}, testutil.Photo("a.png", "image/png", png))
			}, 400, "text is required"},
			{"10,000 characters of text", func() ([]byte, string) {
				return testutil.Form(t, [][2]string{{"post", strings.Repeat("a", 10000)}}, nil)
			}, 400, "limit is 2200"},
			{"NUL in the file name", func() ([]byte, string) {
				return testutil.Form(t, [][2]string{{"post", "x"}}, testutil.Photo("shell.php\x00.png", "image/png", png))
			}, 400, "malformed (for example a NUL"},
			{"NUL in a field name", func() ([]byte, string) {
				return testutil.Form(t, [][2]string{{"post", "x"}, {"ph\x00oto", "y"}}, nil)
			}, 400, "malformed (for example a NUL"},
			{"NUL in the photo's field name", func() ([]byte, string) {
				return rawForm(t, [2]string{`form-data; name="post"`, "x"},
					[2]string{"form-data; name=\"photo\x00\"; filename=\"a.png\"", string(png)})
			}, 400, "malformed (for example a NUL"},
			{"NUL in the text's part header", func() ([]byte, string) {
				return rawForm(t, [2]string{"form-data; name=\"post\"\x00", "x"})
			}, 400, "malformed (for example a NUL"},
			{"NUL in an RFC 2231 file name", func() ([]byte, string) {
				return rawForm(t, [2]string{`form-data; name="post"`, "x"},
					[2]string{`form-data; name="photo"; filename*=UTF-8''shell.php%00.png`, string(png)})
			}, 400, "file name contains a NUL"},
			{"NUL in an RFC 2231 field name", func() ([]byte, string) {
				return rawForm(t, [2]string{`form-data; name="post"`, "x"}, [2]string{`form-data; name*=UTF-8''ph%00oto`, "y"})
			}, 400, "field name in the form contains a NUL"},
			{"invalid UTF-8 in a field name", func() ([]byte, string) {
				return rawForm(t, [2]string{`form-data; name="post"`, "x"}, [2]string{"form-data; name=\"p\xffst\"", "y"})
			}, 400, "not valid UTF-8"},
			{"part without Content-Disposition", func() ([]byte, string) {
				return rawForm(t, [2]string{`form-data; name="post"`, "x"}, [2]string{"", string(png)})
			}, 400, "without a field name"},
			{"unreadable Content-Disposition", func() ([]byte, string) {
				return rawForm(t, [2]string{`form-data; name="post"`, "x"}, [2]string{`form-data; name="photo"; name="post"`, string(png)})
			}, 400, "without a field name"},
			{"two photos", func() ([]byte, string) {
				return rawForm(t, [2]string{`form-data; name="post"`, "x"},
					[2]string{`form-data; name="photo"; filename="a.png"`, string(png)},
					[2]string{`form-data; name="photo"; filename="b.png"`, string(png)})
			}, 400, "more than one \"photo\""},
			{"broken multipart", func() ([]byte, string) {
				return []byte("--XYZ\r\nContent-Disposition: form-data; name=\"post\"\r\n\r\nhello"), "multipart/form-data; boundary=XYZ"
			}, 400, "could not be read"},
			{"multipart without boundary", func() ([]byte, string) {
				return []byte("post=hello"), "multipart/form-data"
			}, 400, "could not be read"},
			{"JSON body", func() ([]byte, string) {
				return []byte(`{"post":"hello"}`), "application/json"
			}, 415, "multipart/form-data"},
			{"no content type", func() ([]byte, string) {
				return []byte("post=hello"), ""
			}, 415, "multipart/form-data"},
		} {
			t.Run(c.name, func(t *testing.T) {
				body, ct := c.body()
				resp, page := post(t, m, body, ct)
				assertRefused(t, resp, page, c.status, c.msg)
			})
		}
		if after := snap(t, m); after.String() != before.String() {
			t.Fatalf("hostile uploads changed the store or the uploads folder:\nbefore %s\nafter  %s", before, after)
		}

		// Names are claims: a 10,000-character or ../-laden name is fine
		// when the image is, and the file is uploads/{id} all the same.
		outside := filepath.Dir(m.UploadsDir)
		beforeOutside := listTree(t, outside)
		for _, name := range []string{strings.Repeat("n", 10000) + ".png", "../../../../etc/cron.d/evil.png",
			`..\..\..\windows\evil.png`, "/etc/passwd", "%2e%2e%2fevil.png", ".tmp-evil"} {
			text := fmt.Sprintf("named %.40q", name)
			uploadPhoto(t, m, text, testutil.Photo(name, "image/png", png))
			img := listAPI(t, m, "").Posts[0].Image
			if img == nil {
				t.Fatalf("%s: no image stored", text)
			}
			disk, err := os.ReadFile(uploadsFile(m, img.ID))
			if err != nil || !bytes.Equal(disk, png) {
				t.Fatalf("%s: uploads/%s: %v", text, img.ID, err)
			}
		}
		afterOutside := listTree(t, outside)
		for path := range afterOutside {
			if _, ok := beforeOutside[path]; !ok && filepath.Dir(path) != filepath.Base(m.UploadsDir) {
				t.Errorf("a file appeared outside the uploads folder: %s", path)
			}
		}
		if after := snap(t, m); len(after.files) != len(before.files)+6 {
			t.Errorf("uploads folder has %d files, want %d: %v", len(after.files), len(before.files)+6, after.files)
		}

		// A GIF that is also an HTML page is stored as the GIF alone.
		uploadPhoto(t, m, "polyglot", testutil.Photo("poly.gif", "text/html", gifPolyglot(t)))
		img := listAPI(t, m, "").Posts[0].Image
		resp, body := get(t, m, "/storage/"+img.ID)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/gif" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("polyglot served as %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if strings.Contains(body, "<script") || strings.Contains(body, "<html") {
			t.Fatalf("the stored GIF still carries the HTML")
		}
	})
}

func assertRefused(t *testing.T, resp *http.Response, page string, code int, msg string) {
	t.Helper()
	if resp.StatusCode != code {
		t.Fatalf("status %d, want %d; page:\n%.2000s", resp.StatusCode, code, page)
	}
	if !strings.Contains(html.UnescapeString(page), msg) {
		t.Fatalf("page does not say %q:\n%.4000s", msg, page)
	}
	if !strings.Contains(page, `role="alert"`) {
		t.Errorf("error not shown in an alert")
	}
}

// listTree lists every path under root, relative to it.
func listTree(t testing.TB, root string) map[string]bool {
	out := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// countingReader is an endless request body (a form whose photo never
// ends) that counts what the client transport has read of it.
type countingReader struct {
	prefix []byte
	n      atomic.Int64
	limit  int64 // it ends after this many bytes
}

func (c *countingReader) Read(p []byte) (int, error) {
	off := c.n.Load()
	if off >= c.limit {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), c.limit-off)]
	k := 0
	if off < int64(len(c.prefix)) {
		k = copy(p, c.prefix[off:])
	}
	for i := k; i < len(p); i++ {
		p[i] = 0xA5
	}
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// TestHugeBodyNotRead streams a 1 GiB form at the edge and checks that it
// answers 413 and stops reading near the limit: what the client managed to
// send is the limit plus what the HTTP/2 flow-control windows and socket
// buffers let through, nowhere near the gigabyte.
func TestHugeBodyNotRead(t *testing.T) {
	const limit = 1 << 20
	m := testmesh.Start(t, testmesh.Options{Store: storeEmbedded(t), MaxUploadBytes: limit})
	before := snap(t, m)
	for _, field := range []string{"photo", "post", "other"} {
		t.Run(field, func(t *testing.T) {
			prefix := "--B\r\nContent-Disposition: form-data; name=\"post\"\r\n\r\nbig one\r\n--B\r\n"
			switch field {
			case "photo":
				prefix += "Content-Disposition: form-data; name=\"photo\"; filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n" + string(testutil.PNG(t, 8, 8))
			default:
				prefix = "--B\r\nContent-Disposition: form-data; name=\"" + field + "\"\r\n\r\n"
			}
			body := &countingReader{prefix: []byte(prefix), limit: 1 << 30}
			req, err := http.NewRequest(http.MethodPost, m.URL+"/upload.php", body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "multipart/form-data; boundary=B")
			resp, err := m.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := http.StatusRequestEntityTooLarge
			if field == "post" {
				want = http.StatusBadRequest // the text's own, much smaller limit
			}
			if resp.StatusCode != want {
				t.Fatalf("status %d, want %d: %.500s", resp.StatusCode, want, page)
			}
			read := body.n.Load()
			t.Logf("%s: the client sent %d bytes of a 1 GiB body before the %d answer (limit %d)", field, read, resp.StatusCode, limit)
			if read > limit+16<<20 {
				t.Fatalf("the edge let %d bytes in, far past the %d-byte limit", read, limit)
			}
		})
	}
	if after := snap(t, m); after.String() != before.String() {
		t.Fatalf("stored something: %s", after)
	}
}

// TestLimits: headers, bodies and gRPC messages are all bounded.
func TestLimits(t *testing.T) {
	m := testmesh.Start(t, testmesh.Options{Store: storeEmbedded(t)})
	// HTTP/2 clients keep to the header list size the edge advertises;
	// over HTTP/1.1 the edge itself refuses.
	h1 := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the mesh's self-signed certificate
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
	}}
	defer h1.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, m.URL+"/upload.php", strings.NewReader("x"))
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	resp, err := h1.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB of headers over HTTP/1.1: %d, want 431", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodGet, m.URL+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	if _, err := m.Client.Do(req); err == nil {
		t.Errorf("64 KiB of headers over HTTP/2: sent")
	}
	// One gRPC message over the servers' 4 MiB receive limit.
	up := uploadv1.NewUploadServiceClient(m.Conn(t, m.UploadAddr))
	s, err := up.Upload(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Header{Header: &uploadv1.UploadHeader{Text: "x", Photo: &uploadv1.PhotoInfo{}}}})
	_ = s.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Chunk{Chunk: make([]byte, 4<<20+1)}})
	if _, err := s.CloseAndRecv(); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a 4 MiB gRPC message: %v, want ResourceExhausted", err)
	}
	if s := snap(t, m); s.posts != 0 || len(s.files) != 0 {
		t.Fatalf("stored something: %s", s)
	}
}

// rawCodec sends hand-encoded protobuf messages, so that a test can send
// what the Go protobuf library refuses to marshal (invalid UTF-8 in a
// string field).
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// rawHeader encodes UploadRequest{header: {text, photo: {file_name}}}.
func rawHeader(text, fileName string, photo bool) []byte {
	var hdr []byte
	hdr = protowire.AppendTag(hdr, 1, protowire.BytesType)
	hdr = protowire.AppendString(hdr, text)
	if photo {
		var info []byte
		info = protowire.AppendTag(info, 1, protowire.BytesType)
		info = protowire.AppendString(info, fileName)
		hdr = protowire.AppendTag(hdr, 2, protowire.BytesType)
		hdr = protowire.AppendBytes(hdr, info)
	}
	req := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendBytes(req, hdr)
}

func rawUpload(ctx context.Context, cc *grpc.ClientConn, msgs ...[]byte) error {
	s, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, uploadv1.UploadService_Upload_FullMethodName, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := s.SendMsg(&m); err != nil {
			break
		}
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	var resp []byte
	return s.RecvMsg(&resp)
}

// TestHostileUploadsGRPC sends the same classes of bad input straight to
// UploadService, past the edge's own checks.
func TestHostileUploadsGRPC(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		const limit = 256 << 10
		m := testmesh.Start(t, testmesh.Options{Store: st, MaxUploadBytes: limit})
		ctx := t.Context()
		cc := m.Conn(t, m.UploadAddr)
		up := uploadv1.NewUploadServiceClient(cc)
		png := testutil.PNG(t, 16, 16)
		before := snap(t, m)

		type tc struct {
			name   string
			call   func() error
			code   codes.Code
			reason uploadv1.UploadErrorReason // UNSPECIFIED: no reason expected
		}
		cases := []tc{
			{"empty text", func() error { _, err := upload(ctx, up, "", nil, 1); return err }, codes.InvalidArgument, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_BAD_TEXT},
			{"white space text", func() error { _, err := upload(ctx, up, " \t\r\n\u00a0", png, 1000); return err }, codes.InvalidArgument, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_BAD_TEXT},
			{"2,201 characters", func() error { _, err := upload(ctx, up, strings.Repeat("ü", 2201), nil, 1); return err }, codes.InvalidArgument, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_BAD_TEXT},
			{"NUL in text", func() error { _, err := upload(ctx, up, "a\x00b", png, 1000); return err }, codes.InvalidArgument, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_BAD_TEXT},
			// A message the protobuf library cannot decode (invalid UTF-8
			// in a string field, broken wire format) is answered by
			// grpc-go itself, Internal, before the service sees it; the
			// edge never sends one (it checks the text and cleans names).
			{"invalid UTF-8 text", func() error { return rawUpload(ctx, cc, rawHeader("caf\xe9", "", false)) }, codes.Internal, 0},
			{"invalid UTF-8 file name", func() error {
				chunk := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), png)
				return rawUpload(ctx, cc, rawHeader("x", "a\xff.png", true), chunk)
			}, codes.Internal, 0},
			{"garbage message", func() error { return rawUpload(ctx, cc, []byte{0xff, 0xff, 0xff}) }, codes.Internal, 0},
			{"NUL in the file name", func() error {
				s, _ := up.Upload(ctx)
				_ = s.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Header{Header: &uploadv1.UploadHeader{Text: "x", Photo: &uploadv1.PhotoInfo{FileName: "shell.php\x00.png"}}}})
				_ = s.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Chunk{Chunk: png}})
				_, err := s.CloseAndRecv()
				return err
			}, codes.InvalidArgument, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_BAD_REQUEST},
			{"hundreds of headers", func() error {
				s, _ := up.Upload(ctx)
				for range 300 {
					if s.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Header{Header: &uploadv1.UploadHeader{Text: "x", Photo: &uploadv1.PhotoInfo{}}}}) != nil {
						break
					}
				}
				_, err := s.CloseAndRecv()
				return err
			}, codes.InvalidArgument, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_BAD_REQUEST},
			{"empty photo", func() error {
				s, _ := up.Upload(ctx)
				_ = s.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Header{Header: &uploadv1.UploadHeader{Text: "x", Photo: &uploadv1.PhotoInfo{}}}})
				_, err := s.CloseAndRecv()
				return err
			}, codes.InvalidArgument, uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_MALFORMED_IMAGE},
		}
		for _, f := range badFiles(t) {
			code := codes.InvalidArgument
			if f.status == 413 {
				code = codes.ResourceExhausted
			}
			cases = append(cases, tc{f.name, func() error { _, err := upload(ctx, up, "x", f.data, 1000); return err }, code, f.reason})
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				err := c.call()
				if status.Code(err) != c.code {
					t.Fatalf("%v, want %v", err, c.code)
				}
				if got := apierr.UploadReason(err); got != c.reason {
					t.Fatalf("reason %v, want %v (%v)", got, c.reason, err)
				}
				if msg := status.Convert(err).Message(); len(msg) < 10 {
					t.Fatalf("message %q does not explain", msg)
				}
			})
		}

		// A photo that never ends: refused at the limit. What the client
		// got to send is the limit plus gRPC's flow-control windows.
		t.Run("endless photo", func(t *testing.T) {
			s, err := up.Upload(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_ = s.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Header{Header: &uploadv1.UploadHeader{Text: "x", Photo: &uploadv1.PhotoInfo{}}}})
			chunk := make([]byte, 64<<10)
			copy(chunk, png)
			var sent int64
			for sent < 1<<30 {
				if err := s.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Chunk{Chunk: chunk}}); err != nil {
					break
				}
				sent += int64(len(chunk))
			}
			_, err = s.CloseAndRecv()
			t.Logf("sent %d bytes of an endless photo before %v", sent, status.Code(err))
			if status.Code(err) != codes.ResourceExhausted || apierr.UploadReason(err) != uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_TOO_LARGE {
				t.Fatalf("%v, want ResourceExhausted TOO_LARGE", err)
			}
			if sent > limit+32<<20 {
				t.Fatalf("the service took %d bytes for a %d-byte limit", sent, limit)
			}
		})
		if after := snap(t, m); after.String() != before.String() {
			t.Fatalf("bad uploads changed the store or the uploads folder:\nbefore %s\nafter  %s", before, after)
		}

		// Long and ../-laden names are accepted; the file is uploads/{id}.
		for _, name := range []string{strings.Repeat("ñ", 10000), "../../../../tmp/evil.png"} {
			s, _ := up.Upload(ctx)
			_ = s.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Header{Header: &uploadv1.UploadHeader{Text: "named", Photo: &uploadv1.PhotoInfo{FileName: name, ContentType: "../x"}}}})
			_ = s.Send(&uploadv1.UploadRequest{Payload: &uploadv1.UploadRequest_Chunk{Chunk: png}})
			resp, err := s.CloseAndRecv()
			if err != nil {
				t.Fatalf("name %.20q: %v", name, err)
			}
			id := resp.GetPost().GetImage().GetId()
			if disk, err := os.ReadFile(uploadsFile(m, id)); err != nil || !bytes.Equal(disk, png) {
				t.Fatalf("uploads/%s: %v", id, err)
			}
		}
	})
}

// TestStoragePaths asks /storage/ for everything but an id: dot segments,
// encoded ones, NUL, wrong lengths and alphabets, and a path to a real
// file just outside the uploads folder. Nothing outside the folder is
// ever served.
func TestStoragePaths(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		m := testmesh.Start(t, testmesh.Options{Store: st})
		uploadPhoto(t, m, "real", testutil.Photo("a.png", "image/png", testutil.PNG(t, 8, 8)))
		real := listAPI(t, m, "").Posts[0].Image.ID

		// A file named like an id, beside the uploads folder.
		secretID := contract.NewID().String()
		secret := []byte("SECRET-OUTSIDE-UPLOADS")
		if err := os.WriteFile(filepath.Join(filepath.Dir(m.UploadsDir), secretID), secret, 0o600); err != nil {
			t.Fatal(err)
		}
		paths := []string{
			"/storage/..", "/storage/../" + secretID, "/storage/..%2f" + secretID, "/storage/%2e%2e%2f" + secretID,
			"/storage/%2e%2e/" + secretID, "/storage/.%2e/" + secretID, "/storage/%2E%2E%5C" + secretID,
			"/storage/" + real + "%00", "/storage/%00" + real[1:], "/storage/" + real[:21] + "%00",
			"/storage/" + real[:21], "/storage/" + real + "A", "/storage/" + real + "=", "/storage/" + real + "/",
			"/storage/" + real[:21] + "+", "/storage/" + real[:21] + "/", "/storage/" + real[:21] + ".",
			"/storage/" + strings.Repeat("%41", 22), "/storage/" + strings.Repeat("A", 1000),
			"/storage/" + strings.Repeat("é", 11), "/storage/", "/storage",
			"/storage/" + contract.NewID().String(), // unknown id
		}
		for _, p := range paths {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				req, err := http.NewRequest(method, m.URL+"/", nil)
				if err != nil {
					t.Fatal(err)
				}
				req.URL.Opaque = p // sent exactly as written
				resp, body := do(t, m, req)
				if resp.StatusCode != 400 && resp.StatusCode != 404 && resp.StatusCode != 405 {
					t.Errorf("%s %s: %d, want 400 or 404", method, p, resp.StatusCode)
				}
				if strings.Contains(body, "SECRET") || strings.HasPrefix(resp.Header.Get("Content-Type"), "image/") {
					t.Errorf("%s %s served a file", method, p)
				}
			}
		}
		if resp, _ := get(t, m, "/storage/"+contract.NewID().String()); resp.StatusCode != 404 {
			t.Errorf("unknown id: %d, want 404", resp.StatusCode)
		}
		if resp, _ := get(t, m, "/storage/"+real); resp.StatusCode != 200 {
			t.Errorf("the real image: %d", resp.StatusCode)
		}
	})
}

// TestPrivacyMetadata uploads photos full of metadata through the edge and
// reads them back from /storage/: what is served, the file on disk and the
// database copy are all exactly what imaging.Inspect makes of the upload,
// and none of the metadata is left. (The imaging tests check, format by
// format, what Inspect keeps: no EXIF but the orientation, no GPS, XMP,
// maker note, comments or text chunks; the colour profile and the pixels.)
func TestPrivacyMetadata(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		m := testmesh.Start(t, testmesh.Options{Store: st})
		plainPNG := testutil.PNG(t, 40, 30)
		richPNG := bytes.Join([][]byte{
			plainPNG[:33], // signature and IHDR
			testutil.PNGChunk("eXIf", testutil.TIFF(binary.BigEndian, 6)),
			testutil.PNGChunk("tEXt", []byte("Comment\x00SECRET-TEXT GPS 41.40338, 2.17403")),
			testutil.PNGChunk("iTXt", []byte("XML:com.adobe.xmp\x00\x00\x00\x00\x00"), []byte(testutil.XMP)),
			plainPNG[33:],
		}, nil)
		webpSrc, err := os.ReadFile(filepath.Join("..", "imaging", "testdata", "metadata.webp"))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name, contentType string
			data              []byte
		}{{"IMG_0001.JPG", "image/jpeg", richJPEG(t, 6)}, {"shot.png", "image/png", richPNG}, {"a.webp", "image/webp", webpSrc}} {
			t.Run(c.contentType, func(t *testing.T) {
				want, err := imaging.Inspect(c.data, imaging.DefaultLimits())
				if err != nil || len(want.Removed) == 0 {
					t.Fatalf("Inspect: %v, removed %v: the fixture should carry metadata", err, want.Removed)
				}
				uploadPhoto(t, m, "with metadata", testutil.Photo(c.name, c.contentType, c.data))
				img := listAPI(t, m, "").Posts[0].Image
				resp, body := get(t, m, "/storage/"+img.ID)
				if resp.StatusCode != 200 || body != string(want.Data) {
					t.Fatalf("GET /storage/%s: %d, %d bytes; want the %d bytes Inspect keeps", img.ID, resp.StatusCode, len(body), len(want.Data))
				}
				disk, err := os.ReadFile(uploadsFile(m, img.ID))
				if err != nil || !bytes.Equal(disk, want.Data) {
					t.Fatalf("the file on disk is not what is served: %v", err)
				}
				_, dbCopy, err := m.Store.ImageData(t.Context(), mustID(t, img.ID))
				if err != nil || !bytes.Equal(dbCopy, disk) {
					t.Fatalf("the database copy is not what is served: %v", err)
				}
				testutil.NoSecrets(t, disk, "SECRET", "ns.adobe.com/xap", "xmpmeta")
				// Orientation 6 turns the 64x48 photo a quarter: the page
				// must reserve a 48x64 box for it.
				if c.contentType == "image/jpeg" && (img.Width != 48 || img.Height != 64) {
					t.Errorf("turned photo listed as %dx%d, want 48x64 (as displayed)", img.Width, img.Height)
				}
			})
		}
	})
}

func mustID(t testing.TB, s string) contract.ID {
	t.Helper()
	id, err := contract.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestUploadRateLimit: past its budget a client gets 429 with Retry-After
// and nothing is stored; scripted clients (curl -F: no Origin, no
// Sec-Fetch-* headers) and same-origin browsers pass CSRF protection.
func TestUploadRateLimit(t *testing.T) {
	m := testmesh.Start(t, testmesh.Options{Store: storeEmbedded(t), UploadRate: 2})
	png := testutil.PNG(t, 8, 8)
	send := func(text string, browser bool) (*http.Response, string) {
		body, ct := testutil.Form(t, [][2]string{{"post", text}}, testutil.Photo("a.png", "image/png", png))
		req, _ := http.NewRequest(http.MethodPost, m.URL+"/upload.php", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("User-Agent", "curl/8.5.0")
		if browser {
			req.Header.Set("Origin", m.URL)
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			req.Header.Set("User-Agent", "Mozilla/5.0")
		}
		return do(t, m, req)
	}
	if resp, page := send("curl style", false); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("curl-style upload: %d\n%.500s", resp.StatusCode, page)
	}
	if resp, page := send("same-origin browser", true); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("same-origin upload: %d\n%.500s", resp.StatusCode, page)
	}
	before := snap(t, m)
	for i := range 3 {
		resp, page := send(fmt.Sprintf("over the limit %d", i), i%2 == 0)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("upload past the limit: %d, want 429", resp.StatusCode)
		}
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
			t.Fatalf("Retry-After %q, want 1 to 60 seconds", resp.Header.Get("Retry-After"))
		}
		if !strings.Contains(page, "Too many posts") || !strings.Contains(page, `role="alert"`) {
			t.Fatalf("429 page does not explain:\n%.2000s", page)
		}
	}
	if after := snap(t, m); after.String() != before.String() || after.posts != 2 {
		t.Fatalf("refused uploads stored something:\nbefore %s\nafter  %s", before, after)
	}
}
