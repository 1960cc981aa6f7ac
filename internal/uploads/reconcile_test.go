package uploads_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testproxy"
	"github.com/extagram/extagram/internal/uploads"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
)

func openDir(t *testing.T) *uploads.Dir {
	t.Helper()
	d, err := uploads.Open(filepath.Join(t.TempDir(), "uploads"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// createImage stores a post with an image whose bytes are unique to it.
func createImage(t *testing.T, st store.Store, n int) (contract.ID, []byte) {
	t.Helper()
	data := fmt.Appendf(nil, "image %d", n)
	p, err := st.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: fmt.Sprint("post ", n),
		Image: &store.NewImage{ID: contract.NewID(), ContentType: "image/png", Width: 1, Height: 1, Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	return p.Image.ID, data
}

// writeAged writes a file into the folder, modified age ago.
func writeAged(t *testing.T, d *uploads.Dir, name string, age time.Duration) string {
	t.Helper()
	p, old := filepath.Join(d.Path(), name), time.Now().Add(-age)
	if err := os.WriteFile(p, []byte("some bytes"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	return name
}

// checkFolder fails the test unless the folder holds exactly the entries
// named.
func checkFolder(t *testing.T, d *uploads.Dir, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if slices.Sort(want); !slices.Equal(got, want) {
		t.Errorf("the folder holds %q, want %q", got, want)
	}
}

// checkMetrics fails the test unless reg exposes each of lines.
func checkMetrics(t *testing.T, reg *prometheus.Registry, lines ...string) {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, l := range lines {
		if !strings.Contains(rec.Body.String(), "\n"+l+"\n") {
			t.Errorf("no %q in the metrics", l)
		}
	}
}

func newMetrics() (*uploads.ReconcileMetrics, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	m, _ := uploads.NewReconcileMetrics(reg) // an error shows as metrics missing
	return m, reg
}

// TestReconcile runs on both stores; on MySQL it then cuts the connection
// for real: the run fails and removes nothing, however old the files.
func TestReconcile(t *testing.T) {
	embedded := func(t testing.TB) (store.Store, *testproxy.Proxy) { return storetest.Embedded(t), nil }
	for name, open := range map[string]func(testing.TB) (store.Store, *testproxy.Proxy){"mysql": storetest.Proxied, "embedded": embedded} {
		t.Run(name, func(t *testing.T) {
			st, proxy := open(t)
			d := openDir(t)
			metrics, reg := newMetrics()
			// The images below are seconds old: WriteGrace lets the run restore them.
			opts := uploads.ReconcileOptions{TempGrace: time.Minute, OrphanGrace: time.Hour, WriteGrace: time.Nanosecond,
				Logger: storetest.Logger(t), Metrics: metrics}
			kept, keptData := createImage(t, st, 1)
			if err := d.Write(kept, keptData); err != nil {
				t.Fatal(err)
			}
			missing, missingData := createImage(t, st, 2)
			writeAged(t, d, uploads.TempPrefix+kept.String()+"-123", 2*time.Minute) // left by a crash
			writeAged(t, d, contract.NewID().String(), 2*time.Hour)                 // an orphan
			// Young enough to stay; and not ours to remove: a folder named like an
			// id, and names that are not ids (22 characters, but not canonical).
			stay := []string{writeAged(t, d, uploads.TempPrefix+missing.String()+"-456", 0),
				writeAged(t, d, contract.NewID().String(), 10*time.Minute), contract.NewID().String(),
				writeAged(t, d, "README.txt", 48*time.Hour), writeAged(t, d, kept.String()+".jpg", 48*time.Hour),
				writeAged(t, d, "aaaaaaaaaaaaaaaaaaaaaB", 48*time.Hour), kept.String(), missing.String()}
			if err := os.Mkdir(filepath.Join(d.Path(), stay[2]), 0o750); err != nil {
				t.Fatal(err)
			}

			rep, err := d.Reconcile(t.Context(), st, opts)
			want := uploads.Report{Files: 3, RemovedTemp: 1, RemovedOrphans: 1, Restored: 1, Unknown: 4}
			if err != nil || rep != want {
				t.Errorf("report %+v, %v; want %+v", rep, err, want)
			}
			checkFolder(t, d, stay...)
			for id, data := range map[contract.ID][]byte{kept: keptData, missing: missingData} {
				if got, err := d.Read(id); err != nil || !bytes.Equal(got, data) {
					t.Errorf("%s: %v", id, err)
				}
			}

			// An image whose upload may still be writing its file is left alone.
			young, _ := createImage(t, st, 3)
			rep, err = d.Reconcile(t.Context(), st, uploads.ReconcileOptions{Logger: storetest.Logger(t)})
			if err != nil || rep.Pending != 1 || rep.Restored != 0 {
				t.Errorf("run with a young image: %+v, %v; want it pending", rep, err)
			}
			if _, err := d.Stat(young); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("young image's file written by the run: %v", err)
			}
			if rep, err := d.Reconcile(t.Context(), st, opts); err != nil || rep.Restored != 1 {
				t.Errorf("run after the grace: %+v, %v", rep, err)
			}
			// A second run finds nothing to do.
			rep, err = d.Reconcile(t.Context(), st, opts)
			if err != nil || rep.RemovedTemp+rep.RemovedOrphans+rep.Restored+rep.Failed != 0 {
				t.Errorf("second run: %+v, %v", rep, err)
			}
			checkMetrics(t, reg, "extagram_reconcile_removed_temp_total 1", "extagram_reconcile_removed_orphans_total 1",
				"extagram_reconcile_restored_total 2", "extagram_reconcile_failed_total 0",
				"extagram_reconcile_unknown_entries 4", `extagram_reconcile_runs_total{result="ok"} 3`)
			if proxy == nil {
				return
			}

			createImage(t, st, 4) // its file is missing
			more := []string{young.String(), writeAged(t, d, uploads.TempPrefix+"x", 24*time.Hour),
				writeAged(t, d, contract.NewID().String(), 24*time.Hour)}
			proxy.Cut()
			if rep, err := d.Reconcile(t.Context(), st, opts); !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("Reconcile with the database cut: %+v, %v; want an error wrapping ErrUnavailable", rep, err)
			}
			checkFolder(t, d, append(stay, more...)...)
			checkMetrics(t, reg, `extagram_reconcile_runs_total{result="failed"} 1`)
			if err := proxy.Restore(); err != nil {
				t.Fatal(err)
			}
			if rep, err := d.Reconcile(t.Context(), st, opts); err != nil || rep.RemovedTemp != 1 || rep.RemovedOrphans != 1 || rep.Restored != 1 {
				t.Fatalf("after restore: %+v, %v", rep, err)
			}
		})
	}
}

// fakeSource is an ImageSource with faults to order.
type fakeSource struct {
	images  map[contract.ID][]byte
	listErr error // from ImageIDs after the first page
	infoErr error
	corrupt bool // ImageData returns bytes that do not match the checksum
	pages   int
}

func (f *fakeSource) ImageIDs(_ context.Context, after contract.ID, limit int) ([]contract.ID, error) {
	if f.pages++; f.listErr != nil && f.pages > 1 {
		return nil, f.listErr
	}
	ids := slices.SortedFunc(maps.Keys(f.images), func(a, b contract.ID) int { return bytes.Compare(a[:], b[:]) })
	ids = slices.DeleteFunc(ids, func(id contract.ID) bool { return bytes.Compare(id[:], after[:]) <= 0 })
	return ids[:min(limit, len(ids))], nil
}

func (f *fakeSource) ImageInfo(_ context.Context, id contract.ID) (store.Image, error) {
	data, ok := f.images[id]
	switch {
	case f.infoErr != nil:
		return store.Image{}, f.infoErr
	case !ok:
		return store.Image{}, store.ErrNotFound
	}
	return store.Image{ID: id, Size: int64(len(data)), SHA256: sha256.Sum256(data)}, nil
}

func (f *fakeSource) ImageData(ctx context.Context, id contract.ID) (store.Image, []byte, error) {
	img, err := f.ImageInfo(ctx, id)
	if data := f.images[id]; err == nil && f.corrupt {
		return img, append([]byte("x"), data[1:]...), nil
	}
	return img, f.images[id], err
}

func TestReconcileFaults(t *testing.T) {
	unavailable := fmt.Errorf("store: image ids: %w: connection refused", store.ErrUnavailable)
	many := map[contract.ID][]byte{}
	for i := range 2500 {
		many[contract.NewID()] = []byte(fmt.Sprint(i))
	}
	one := map[contract.ID][]byte{contract.NewID(): []byte("image")}

	t.Run("database fails mid-run", func(t *testing.T) {
		d := openDir(t)
		temp, orphan := writeAged(t, d, uploads.TempPrefix+"x", 24*time.Hour), writeAged(t, d, contract.NewID().String(), 24*time.Hour)
		for _, c := range []struct {
			src  *fakeSource
			left []string
		}{
			{&fakeSource{images: many, listErr: unavailable}, []string{temp, orphan}},               // on a later page
			{&fakeSource{images: map[contract.ID][]byte{}, infoErr: unavailable}, []string{orphan}}, // confirming the orphan
		} {
			if _, err := d.Reconcile(t.Context(), c.src, uploads.ReconcileOptions{}); !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("err %v", err)
			}
			checkFolder(t, d, c.left...)
		}
	})
	t.Run("many pages", func(t *testing.T) {
		d, src := openDir(t), &fakeSource{images: many}
		rep, err := d.Reconcile(t.Context(), src, uploads.ReconcileOptions{})
		if err != nil || rep.Restored != 2500 || src.pages != 3 {
			t.Fatalf("%+v, %v, %d pages", rep, err, src.pages)
		}
		rep, err = d.Reconcile(t.Context(), src, uploads.ReconcileOptions{})
		if err != nil || rep.Files != 2500 || rep.Restored != 0 {
			t.Fatalf("second run %+v, %v", rep, err)
		}
	})
	t.Run("database copy damaged", func(t *testing.T) {
		d := openDir(t)
		rep, err := d.Reconcile(t.Context(), &fakeSource{images: one, corrupt: true}, uploads.ReconcileOptions{})
		if err != nil || rep.Failed != 1 || rep.Restored != 0 {
			t.Fatalf("%+v, %v", rep, err)
		}
		checkFolder(t, d) // no file that fails its checksum
	})
	t.Run("folder unwritable", func(t *testing.T) {
		// Root ignores permissions; nobody can create a file inside a regular file.
		d := openDir(t)
		if err := os.Remove(d.Path()); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(d.Path(), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Reconcile(t.Context(), &fakeSource{images: one}, uploads.ReconcileOptions{}); err == nil {
			t.Fatal("no error")
		}
	})
}
