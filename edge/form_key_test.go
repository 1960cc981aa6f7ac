package edge

import (
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
)

// formOf builds a multipart reader over parts given as name=value pairs
// (a "photo" part gets a file name).
func formOf(t *testing.T, parts ...[2]string) *multipart.Reader {
	t.Helper()
	var b strings.Builder
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		var w io.Writer
		var err error
		if p[0] == "photo" {
			w, err = mw.CreateFormFile("photo", "a.png")
		} else {
			w, err = mw.CreateFormField(p[0])
		}
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(w, p[1])
	}
	_ = mw.Close()
	return multipart.NewReader(strings.NewReader(b.String()), mw.Boundary())
}

// TestFormKey: the idempotency_key field is read with the form, before the
// photo when the photo is streamed on, anywhere when it is held.
func TestFormKey(t *testing.T) {
	key := strings.Repeat("k", maxKeyBytes)
	for _, c := range []struct {
		name   string
		parts  [][2]string
		key    string
		status int // 0: accepted
	}{
		{"key, text, photo", [][2]string{{keyField, key}, {"post", "x"}, {"photo", "png"}}, key, 0},
		{"text, key, photo", [][2]string{{"post", "x"}, {keyField, "abc"}, {"photo", "png"}}, "abc", 0},
		{"photo held, text, key", [][2]string{{"photo", "png"}, {"post", "x"}, {keyField, "abc"}}, "abc", 0},
		{"text only, key last", [][2]string{{"post", "x"}, {keyField, "abc"}}, "abc", 0},
		{"no key", [][2]string{{"post", "x"}}, "", 0},
		{"key after a streamed photo", [][2]string{{"post", "x"}, {"photo", "png"}, {keyField, "abc"}}, "", http.StatusBadRequest},
		{"two keys", [][2]string{{keyField, "a"}, {keyField, "b"}, {"post", "x"}}, "", http.StatusBadRequest},
		{"key too long", [][2]string{{keyField, key + "k"}, {"post", "x"}}, "", http.StatusBadRequest},
		{"empty key", [][2]string{{keyField, ""}, {"post", "x"}}, "", http.StatusBadRequest},
		{"key with a space", [][2]string{{keyField, "a b"}, {"post", "x"}}, "", http.StatusBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			form, err := readUploadForm(formOf(t, c.parts...), 1<<20)
			if err == nil && form.photo != nil {
				// The photo's end is where the rest of the form is read.
				_, err = io.ReadAll(form.photo.body)
			}
			var ue *uploadError
			switch {
			case c.status == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case c.status != 0 && (!errors.As(err, &ue) || ue.code != c.status):
				t.Fatalf("error %v, want status %d", err, c.status)
			case c.status == 0 && form.key != c.key:
				t.Fatalf("key %q, want %q", form.key, c.key)
			}
		})
	}
}

// TestUploadKeyScope: an API client's Idempotency-Key is scoped to its
// address; the form's token is used as it is; the header wins.
func TestUploadKeyScope(t *testing.T) {
	req := func(header string) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "https://extagram.test/upload.php", nil)
		r.RemoteAddr = "192.0.2.7:5555"
		if header != "" {
			r.Header.Set("Idempotency-Key", header)
		}
		return r
	}
	for _, c := range []struct {
		header, form, want string
		bad                bool
	}{
		{"", "", "", false},
		{"", "tok", "form/tok", false},
		{`"8e03978e-40d5"`, "", "header/192.0.2.7/8e03978e-40d5", false},
		{"bare-token", "tok", "header/192.0.2.7/bare-token", false},
		{`"has"quote"`, "", "", true},
		{strings.Repeat("k", maxKeyBytes+1), "", "", true},
	} {
		got, err := uploadKey(req(c.header), c.form)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("header %q, form %q: %q, %v; want %q (error %v)", c.header, c.form, got, err, c.want, c.bad)
		}
	}
}
