package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
)

// stalledUpload opens an upload that sends its headers and the start of a
// large photo, then nothing; it returns the connection, whose answer is
// read with its reader.
func stalledUpload(t *testing.T, m *testmesh.Mesh) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(m.URL, "https://"), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}) //nolint:gosec // the mesh's own certificate
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	body := "--b\r\nContent-Disposition: form-data; name=\"post\"\r\n\r\nstalled\r\n--b\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG"
	fmt.Fprintf(conn, "POST /upload.php HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: %d\r\n\r\n%s", 5<<20, body)
	return conn, bufio.NewReader(conn)
}

// TestUploadCaps: uploads in flight from one address are capped (429
// beyond), and a body that stops sending is answered 408, which gives its
// slot back.
func TestUploadCaps(t *testing.T) {
	m := testmesh.Start(t, testmesh.Options{Store: storeEmbedded(t), MaxUploadsPerClient: 2, UploadIdle: 500 * time.Millisecond})
	var readers []*bufio.Reader
	for range 2 {
		_, r := stalledUpload(t, m)
		readers = append(readers, r)
	}
	// Let both reach the handler before the third.
	time.Sleep(100 * time.Millisecond)
	body, ct := testutil.Form(t, [][2]string{{"post", "a third at once"}}, nil)
	if resp, page := post(t, m, body, ct); resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(page, "uploads in progress") {
		t.Fatalf("a third upload from the address: %d, want 429 saying why", resp.StatusCode)
	}
	for i, r := range readers {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("stalled upload %d: %v", i, err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(page), "nothing arrived") {
			t.Fatalf("stalled upload %d: %d, want 408 saying why", i, resp.StatusCode)
		}
	}
	// The slots are free again.
	uploadPhoto(t, m, "after the stalled ones", nil)
}
