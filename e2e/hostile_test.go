package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"html"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	uploadv1 "github.com/extagram/extagram/gen/extagram/upload/v1"
	"github.com/extagram/extagram/internal/apierr"
	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	badText    = uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_BAD_TEXT
	badType    = uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_UNSUPPORTED_TYPE
	malformed  = uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_MALFORMED_IMAGE
	tooLarge   = uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_TOO_LARGE
	badRequest = uploadv1.UploadErrorReason_UPLOAD_ERROR_REASON_BAD_REQUEST
	// keptText is typed with the photos refused: the page keeps it.
	keptText     = "my holiday <3"
	polyglotHTML = "<html><body><script>alert(document.cookie)</script></body></html>"
	notImage     = "not a JPEG, PNG, GIF or WebP"
)

// rawForm is a form of parts of the given Content-Disposition ("": none) and content.
func rawForm(t testing.TB, parts ...[2]string) form {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		if p[0] != "" {
			h.Set("Content-Disposition", p[0])
		}
		w, err := mw.CreatePart(h)
		must(t, err)
		_, _ = w.Write([]byte(p[1]))
	}
	_ = mw.Close()
	return form{b.Bytes(), mw.FormDataContentType()}
}

// rawCodec sends hand-encoded messages that the protobuf library refuses to marshal.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }
func (rawCodec) Unmarshal([]byte, any) error   { return nil }
func (rawCodec) Name() string                  { return "proto" }

// grpcRefused checks an UploadService error's code, reason and message.
func grpcRefused(t *testing.T, err error, code codes.Code, reason uploadv1.UploadErrorReason) {
	t.Helper()
	if status.Code(err) != code || apierr.UploadReason(err) != reason {
		t.Fatalf("gRPC: %v (reason %v), want %v %v", err, apierr.UploadReason(err), code, reason)
	}
	if msg := status.Convert(err).Message(); len(msg) < 10 {
		t.Fatalf("gRPC message %q does not explain", msg)
	}
}

// httpRefused checks a refusal's status and the message in an alert on its page.
func httpRefused(t *testing.T, resp *http.Response, page string, code int, msg string) {
	t.Helper()
	if resp.StatusCode != code || !strings.Contains(html.UnescapeString(page), msg) || !strings.Contains(page, `role="alert"`) {
		t.Fatalf("status %d, want %d with %q in an alert; page:\n%.4000s", resp.StatusCode, code, msg, page)
	}
}

// hostileUploads sends bad uploads to the edge and straight to UploadService:
// each gets its own answer and nothing is stored. Names are claims: long or
// ../-laden ones are fine when the image is, and its file is uploads/{id}.
func hostileUploads(t *testing.T, m *testmesh.Mesh) {
	ctx, cc := t.Context(), m.Conn(t, m.UploadAddr)
	up := uploadv1.NewUploadServiceClient(cc)
	// hostileCase is a bad upload refused by the edge and by UploadService.
	type hostileCase struct {
		name, text string
		file       *testutil.File // nil: text only
		status     int
		msg        string
		code       codes.Code
		reason     uploadv1.UploadErrorReason
	}
	png, jpg := testutil.PNG(t, 16, 16), testutil.JPEG(t, 64, 64)
	big := bytes.Repeat([]byte{0xff}, uploadLimit+1)
	copy(big, png)
	inv, exhausted := codes.InvalidArgument, codes.ResourceExhausted
	cases := []hostileCase{
		{"empty text", "", nil, 400, "text is required", inv, badText},
		{"white space with a photo", "\u00a0 \r\n\t", pngFile("a.png", png), 400, "text is required", inv, badText},
		{"one character too long", strings.Repeat("é", 2201), nil, 400, "limit is 2200", inv, badText},
		{"10,000 characters of text", strings.Repeat("a", 10000), nil, 400, "limit is 2200", inv, badText},
		{"empty file", keptText, pngFile("empty.png", nil), 400, "empty", inv, malformed},
		{"over the size limit", keptText, pngFile("a.png", big), 413, "256 KiB", exhausted, tooLarge},
		{"NUL in the file name", keptText, pngFile("shell.php\x00.png", png), 400, "malformed (for example a NUL", inv, badRequest},
		{"truncated JPEG", keptText, testutil.Photo("a.jpg", "image/jpeg", jpg[:len(jpg)*2/3]), 400, "JPEG file is truncated", inv, malformed},
		{"GIF header then HTML", keptText, testutil.Photo("a.gif", "image/gif", []byte("GIF89a"+polyglotHTML)), 400, "GIF", inv, malformed},
		{"PNG of 100,000 x 100,000", keptText, pngFile("a.png", testutil.HugePNG(100000, 100000)), 413, "100000 x 100000", exhausted, tooLarge},
		// Not images, whatever the name or type claims (imaging's tests tell the kinds apart).
		{"HTML named .jpg", keptText, testutil.Photo("photo.jpg", "image/jpeg", []byte(polyglotHTML)), 415, notImage, inv, badType},
		{"PHP sent as PNG", keptText, pngFile("photo.png", []byte("<?php system($_GET['c']); ?>")), 415, notImage, inv, badType},
	}
	before := snap(t, m)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, page := post(t, m, newForm(t, c.text, c.file))
			httpRefused(t, resp, page, c.status, c.msg)
			if c.text == keptText && !strings.Contains(page, `value="my holiday &lt;3"`) {
				t.Errorf("typed text not kept in the form:\n%s", page)
			}
			grpcRefused(t, errOf(upload(ctx, up, c.text, c.file)), c.code, c.reason)
		})
	}
	// Bad forms, to the edge alone.
	text, photo := [2]string{`form-data; name="post"`, "x"}, [2]string{`form-data; name="photo"; filename="a.png"`, string(png)}
	many := [][2]string{text}
	for i := range 300 {
		many = append(many, [2]string{fmt.Sprintf(`form-data; name="f%d"`, i), "x"})
	}
	const nul = "malformed (for example a NUL"
	for _, c := range []struct {
		name   string
		form   form
		status int
		msg    string
	}{
		{"no text", rawForm(t, photo), 400, "text is required"},
		{"invalid UTF-8", rawForm(t, [2]string{`form-data; name="post"`, "caf\xe9"}), 400, "UTF-8"},
		{"hundreds of fields", rawForm(t, many...), 400, "too many fields"},
		{"two texts", rawForm(t, text, text), 400, "more than one"},
		{"two photos", rawForm(t, text, photo, photo), 400, "more than one \"photo\""},
		{"NUL in a field name", rawForm(t, text, [2]string{"form-data; name=\"ph\x00oto\"", "y"}), 400, nul},
		{"NUL in the photo's field name", rawForm(t, text, [2]string{"form-data; name=\"photo\x00\"; filename=\"a.png\"", string(png)}), 400, nul},
		{"NUL in the text's part header", rawForm(t, [2]string{"form-data; name=\"post\"\x00", "x"}), 400, nul},
		{"NUL in an RFC 2231 file name", rawForm(t, text, [2]string{`form-data; name="photo"; filename*=UTF-8''shell.php%00.png`, string(png)}), 400, "file name contains a NUL"},
		{"NUL in an RFC 2231 field name", rawForm(t, text, [2]string{`form-data; name*=UTF-8''ph%00oto`, "y"}), 400, "field name in the form contains a NUL"},
		{"invalid UTF-8 in a field name", rawForm(t, text, [2]string{"form-data; name=\"p\xffst\"", "y"}), 400, "not valid UTF-8"},
		{"part without Content-Disposition", rawForm(t, text, [2]string{"", string(png)}), 400, "without a field name"},
		{"unreadable Content-Disposition", rawForm(t, text, [2]string{`form-data; name="photo"; name="post"`, string(png)}), 400, "without a field name"},
		{"broken multipart", form{[]byte("--XYZ\r\nContent-Disposition: form-data; name=\"post\"\r\n\r\nhello"), "multipart/form-data; boundary=XYZ"}, 400, "could not be read"},
		{"multipart without boundary", form{[]byte("post=hello"), "multipart/form-data"}, 400, "could not be read"},
		{"URL-encoded form", form{[]byte("post=hello"), "application/x-www-form-urlencoded"}, 415, "multipart/form-data"},
		{"JSON body", form{[]byte(`{"post":"hello"}`), "application/json"}, 415, "multipart/form-data"},
		{"no content type", form{[]byte("post=hello"), ""}, 415, "multipart/form-data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, page := post(t, m, c.form)
			httpRefused(t, resp, page, c.status, c.msg)
		})
	}
	// Bad streams; grpc-go answers Internal to undecodable ones (the edge sends none).
	raw := func(msg []byte) error {
		return cc.Invoke(ctx, uploadv1.UploadService_Upload_FullMethodName, msg, nil, grpc.ForceCodec(rawCodec{}))
	}
	photoHdr := header("x", &testutil.File{})
	headers := make([]*uploadv1.UploadRequest, 300)
	for i := range headers {
		headers[i] = photoHdr
	}
	for _, c := range []struct {
		name   string
		err    error
		code   codes.Code
		reason uploadv1.UploadErrorReason
	}{
		// {header: {text: "caf\xe9"}} and {header: {text: "x", photo: {file_name: "a\xff.png"}}}
		{"invalid UTF-8 text", raw([]byte("\x0a\x06\x0a\x04caf\xe9")), codes.Internal, 0},
		{"invalid UTF-8 file name", raw([]byte("\x0a\x0d\x0a\x01x\x12\x08\x0a\x06a\xff.png")), codes.Internal, 0},
		{"garbage message", raw([]byte{0xff, 0xff, 0xff}), codes.Internal, 0},
		{"hundreds of headers", errOf(stream(ctx, up, headers...)), codes.InvalidArgument, badRequest},
		{"no header", errOf(stream(ctx, up, chunk([]byte("x")))), codes.InvalidArgument, badRequest},
		{"empty stream", errOf(stream(ctx, up)), codes.InvalidArgument, badRequest},
		{"chunk without photo", errOf(stream(ctx, up, header("x", nil), chunk([]byte("x")))), codes.InvalidArgument, badRequest},
		{"a message over the servers' 4 MiB", errOf(stream(ctx, up, photoHdr, chunk(make([]byte, 4<<20+1)))), codes.ResourceExhausted, 0},
	} {
		t.Run(c.name, func(t *testing.T) { grpcRefused(t, c.err, c.code, c.reason) })
	}
	// A 1 GiB form is answered once past the limit, flow control and socket buffers.
	const field = "--B\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n"
	for _, c := range []struct {
		name, prefix string
		want         int
	}{
		{"photo", fmt.Sprintf(field+"big one\r\n", "post") + "--B\r\nContent-Disposition: form-data; name=\"photo\"; " +
			"filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n" + string(testutil.PNG(t, 8, 8)), 413},
		{"post", fmt.Sprintf(field, "post"), 400}, // the text's own, much smaller limit
		{"other", fmt.Sprintf(field, "other"), 413},
	} {
		t.Run("1 GiB "+c.name, func(t *testing.T) {
			body := &countingReader{Reader: io.MultiReader(strings.NewReader(c.prefix), io.LimitReader(rand.Reader, 1<<30))}
			resp, err := m.Client.Post(m.URL+"/upload.php", "multipart/form-data; boundary=B", body)
			must(t, err)
			page, _ := io.ReadAll(resp.Body)
			if resp.Body.Close(); resp.StatusCode != c.want {
				t.Fatalf("status %d, want %d: %.500s", resp.StatusCode, c.want, page)
			}
			t.Logf("the client sent %d bytes of a 1 GiB body before the %d answer", body.n.Load(), resp.StatusCode)
			if read := body.n.Load(); read > uploadLimit+16<<20 {
				t.Fatalf("the edge let %d bytes in, far past the %d-byte limit", read, uploadLimit)
			}
		})
	}
	before.unchanged(t, m)
	dataDir, files := filepath.Dir(m.UploadsDir), len(folder(t, m))
	outside := listTree(t, dataDir)
	names := []string{strings.Repeat("n", 10000) + ".png", strings.Repeat("ñ", 10000), "../../../../etc/cron.d/evil.png",
		`..\..\..\windows\evil.png`, "/etc/passwd", "%2e%2e%2fevil.png", ".tmp-evil"}
	for _, name := range names {
		uploadPhoto(t, m, "named", pngFile(name, png))
		resp, err := upload(ctx, up, "named", &testutil.File{Name: name, ContentType: "../x", Data: png})
		must(t, err)
		for _, id := range []string{newest(t, m)[1].Image.ID, resp.GetPost().GetImage().GetId()} {
			if !bytes.Equal(onDisk(m, id), png) {
				t.Fatalf("name %.20q: uploads/%s is not the photo", name, id)
			}
		}
	}
	if got := len(folder(t, m)); got != files+2*len(names) {
		t.Errorf("uploads folder has %d files, want %d", got, files+2*len(names))
	}
	for path := range listTree(t, dataDir) {
		if !outside[path] && filepath.Dir(path) != filepath.Base(m.UploadsDir) {
			t.Errorf("a file appeared outside the uploads folder: %s", path)
		}
	}
	// A GIF that is also an HTML page is stored as the GIF alone (the page
	// in a comment too: imaging's "gif metadata").
	poly := append(testutil.GIF(t, 8, 8), polyglotHTML...)
	uploadPhoto(t, m, "polyglot", testutil.Photo("poly.gif", "text/html", poly))
	resp, body := get(t, m, "/storage/"+newest(t, m)[0].Image.ID)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/gif" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("polyglot served as %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "<html") {
		t.Fatalf("the stored GIF still carries the HTML")
	}
}

// listTree lists every path under root, relative to it.
func listTree(t testing.TB, root string) map[string]bool {
	out := map[string]bool{}
	must(t, filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		out[rel] = true
		return err
	}))
	return out
}

// countingReader counts what the client transport read of a request body.
type countingReader struct {
	io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.Reader.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// uploadCaps: uploads in flight from one address are capped (429), and a
// body that stops sending is answered 408, which frees its slot.
func uploadCaps(t *testing.T, m *testmesh.Mesh) {
	var stalled []*bufio.Reader // uploads that send the start of a large photo, then nothing
	for range 2 {
		conn, err := tls.Dial("tcp", strings.TrimPrefix(m.URL, "https://"), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}) //nolint:gosec // the mesh's own certificate
		must(t, err)
		t.Cleanup(func() { conn.Close() })
		body := "--b\r\nContent-Disposition: form-data; name=\"post\"\r\n\r\nstalled\r\n--b\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG"
		fmt.Fprintf(conn, "POST /upload.php HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: %d\r\n\r\n%s", 5<<20, body)
		stalled = append(stalled, bufio.NewReader(conn))
	}
	time.Sleep(100 * time.Millisecond) // both reach the handler before the third
	if resp, page := post(t, m, newForm(t, "a third at once", nil)); resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(page, "uploads in progress") {
		t.Fatalf("a third upload from the address: %d, want 429 saying why", resp.StatusCode)
	}
	for i, r := range stalled {
		resp, err := http.ReadResponse(r, nil)
		must(t, err)
		page, _ := io.ReadAll(resp.Body)
		if resp.Body.Close(); resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(page), "nothing arrived") {
			t.Fatalf("stalled upload %d: %d, want 408 saying why", i, resp.StatusCode)
		}
	}
	uploadPhoto(t, m, "after the stalled ones", nil) // the slots are free again
}
