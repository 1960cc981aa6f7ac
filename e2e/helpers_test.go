package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
)

// forEachStore runs fn against the MySQL store and the embedded store, as
// subtests named "mysql" and "embedded".
func forEachStore(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Run("mysql", func(t *testing.T) { fn(t, storetest.MySQL(t)) })
	t.Run("embedded", func(t *testing.T) { fn(t, storetest.Embedded(t)) })
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

func uploadPhoto(t testing.TB, m *testmesh.Mesh, text string, f *testutil.File) {
	t.Helper()
	body, ct := testutil.Form(t, [][2]string{{"post", text}}, f)
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
	return strings.Join(append([]string{"posts=" + strconv.Itoa(s.posts)}, s.files...), " ")
}

func uploadsFile(m *testmesh.Mesh, id string) string { return filepath.Join(m.UploadsDir, id) }

func storeEmbedded(t *testing.T) store.Store { return storetest.Embedded(t) }
