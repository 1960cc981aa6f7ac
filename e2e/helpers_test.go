package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
)

// forEachStore runs fn against the MySQL store and the embedded store, as
// subtests named "mysql" and "embedded".
func forEachStore(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Run("mysql", func(t *testing.T) { fn(t, storetest.MySQL(t)) })
	t.Run("embedded", func(t *testing.T) { fn(t, storetest.Embedded(t)) })
}

func testImage(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / max(1, w)), uint8(y * 255 / max(1, h)), uint8((x + y) % 256), 255})
		}
	}
	return img
}

func pngBytes(t testing.TB, w, h int) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, testImage(w, h)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegBytes(t testing.TB, w, h int) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, testImage(w, h), &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func gifBytes(t testing.TB, w, h int) []byte {
	var b bytes.Buffer
	if err := gif.Encode(&b, testImage(w, h), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// hugePNG is a well-formed PNG header declaring w x h pixels, with no
// pixel data worth the name: it must be refused from its header alone.
func hugePNG(w, h uint32) []byte {
	chunk := func(typ string, data []byte) []byte {
		var b bytes.Buffer
		_ = binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
		return b.Bytes()
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, chunk("IHDR", ihdr)...)
	out = append(out, chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})...)
	out = append(out, chunk("IEND", nil)...)
	return out
}

type formFile struct {
	name, contentType string
	data              []byte
}

// form builds a multipart body with the fields in order.
func form(t testing.TB, fields [][2]string, file *formFile) (body []byte, contentType string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if file != nil {
		h := make(map[string][]string)
		h["Content-Disposition"] = []string{`form-data; name="photo"; filename="` + file.name + `"`}
		if file.contentType != "" {
			h["Content-Type"] = []string{file.contentType}
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(file.data)
	}
	_ = mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

func post(t testing.TB, m *testmesh.Mesh, body []byte, contentType string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, m.URL+"/upload.php", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	return do(t, m, req)
}

func get(t testing.TB, m *testmesh.Mesh, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, m.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, m, req)
}

func do(t testing.TB, m *testmesh.Mesh, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := m.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return resp, string(b)
}

func uploadPhoto(t testing.TB, m *testmesh.Mesh, text string, f *formFile) {
	t.Helper()
	body, ct := form(t, [][2]string{{"post", text}}, f)
	resp, page := post(t, m, body, ct)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("upload %q: status %d, Location %q, want 303 to /; body:\n%s", text, resp.StatusCode, resp.Header.Get("Location"), page)
	}
}

type apiPost struct {
	ID         string `json:"id"`
	Text       string `json:"text"`
	CreateTime string `json:"createTime"`
	Image      *struct {
		ID          string `json:"id"`
		ContentType string `json:"contentType"`
		SizeBytes   string `json:"sizeBytes"`
		Width       int    `json:"width"`
		Height      int    `json:"height"`
	} `json:"image"`
}

type apiList struct {
	Posts         []apiPost `json:"posts"`
	NextPageToken string    `json:"nextPageToken"`
}

func listAPI(t testing.TB, m *testmesh.Mesh, query string) apiList {
	t.Helper()
	resp, body := get(t, m, "/api/v1/posts"+query)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/posts%s: %d %s", query, resp.StatusCode, body)
	}
	var l apiList
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return l
}

var postRE = regexp.MustCompile(`(?s)<div class="post">\s*<p dir="auto">(.*?)</p>`)

// pagePosts returns the texts of the posts on a feed page, in order.
func pagePosts(page string) []string {
	var out []string
	for _, m := range postRE.FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}

// snapshot is what the database and the uploads folder hold.
type snapshot struct {
	posts int
	files []string
}

func snap(t testing.TB, m *testmesh.Mesh) snapshot {
	t.Helper()
	return snapshot{posts: countPosts(t, m.Store), files: folder(t, m)}
}

// countPosts counts every post in the store, a page at a time.
func countPosts(t testing.TB, st store.Store) int {
	t.Helper()
	n := 0
	var before int64
	for {
		ps, err := st.ListPosts(t.Context(), store.ListOptions{Before: before, Limit: store.MaxListLimit})
		if err != nil {
			t.Fatal(err)
		}
		n += len(ps)
		if len(ps) < store.MaxListLimit {
			return n
		}
		before = ps[len(ps)-1].Key
	}
}

// folder lists the uploads folder, sorted by name.
func folder(t testing.TB, m *testmesh.Mesh) []string {
	t.Helper()
	entries, err := os.ReadDir(m.UploadsDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func (s snapshot) String() string {
	return strings.Join(append([]string{"posts=" + itoa(s.posts)}, s.files...), " ")
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func uploadsFile(m *testmesh.Mesh, id string) string { return filepath.Join(m.UploadsDir, id) }

func storeEmbedded(t *testing.T) store.Store { return storetest.Embedded(t) }
