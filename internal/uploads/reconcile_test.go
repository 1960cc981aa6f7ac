package uploads_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testproxy"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/internal/uploads"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
)

// A 1x1 PNG: the store does not look at the bytes, but real ones are
// clearer in a failure.
var pixel = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89" +
	"\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82")

func forEachStore(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Run("mysql", func(t *testing.T) { fn(t, storetest.MySQL(t)) })
	t.Run("embedded", func(t *testing.T) { fn(t, storetest.Embedded(t)) })
}

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
	data := append(append([]byte{}, pixel...), fmt.Sprintf("#%d", n)...)
	p, err := st.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: fmt.Sprint("post ", n),
		Image: &store.NewImage{ID: contract.NewID(), ContentType: "image/png", Width: 1, Height: 1, Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	return p.Image.ID, data
}

// writeAged writes a file into the folder, modified age ago.
func writeAged(t *testing.T, d *uploads.Dir, name string, data []byte, age time.Duration) string {
	t.Helper()
	p := filepath.Join(d.Path(), name)
	if err := os.WriteFile(p, data, 0o640); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-age)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	return p
}

func names(t *testing.T, d *uploads.Dir) []string {
	t.Helper()
	entries, err := os.ReadDir(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func TestReconcile(t *testing.T) {
	forEachStore(t, func(t *testing.T, st store.Store) {
		d := openDir(t)
		reg := prometheus.NewRegistry()
		metrics, err := uploads.NewReconcileMetrics(reg)
		if err != nil {
			t.Fatal(err)
		}
		// The images below are seconds old: WriteGrace lets the run
		// restore them.
		opts := uploads.ReconcileOptions{TempGrace: time.Minute, OrphanGrace: time.Hour, WriteGrace: time.Nanosecond,
			Logger: storetest.Logger(t), Metrics: metrics}

		kept, keptData := createImage(t, st, 1)
		if err := d.Write(kept, keptData); err != nil {
			t.Fatal(err)
		}
		missing, missingData := createImage(t, st, 2)
		oldTemp := writeAged(t, d, uploads.TempPrefix+kept.String()+"-123", []byte("half"), 2*time.Minute)
		newTemp := writeAged(t, d, uploads.TempPrefix+missing.String()+"-456", []byte("being written"), 0)
		oldOrphan := writeAged(t, d, contract.NewID().String(), pixel, 2*time.Hour)
		newOrphan := writeAged(t, d, contract.NewID().String(), pixel, 10*time.Minute)
		strangers := []string{
			writeAged(t, d, "README.txt", []byte("hello"), 48*time.Hour),
			writeAged(t, d, kept.String()+".jpg", pixel, 48*time.Hour),
			writeAged(t, d, "aaaaaaaaaaaaaaaaaaaaaB", pixel, 48*time.Hour), // 22 characters, not canonical
		}
		sub := filepath.Join(d.Path(), contract.NewID().String()) // a folder named like an id
		if err := os.Mkdir(sub, 0o750); err != nil {
			t.Fatal(err)
		}
		strangers = append(strangers, sub)

		rep, err := d.Reconcile(t.Context(), st, opts)
		if err != nil {
			t.Fatal(err)
		}
		want := uploads.Report{Files: 3, RemovedTemp: 1, RemovedOrphans: 1, Restored: 1, Unknown: 4}
		if rep != want {
			t.Errorf("report %+v, want %+v", rep, want)
		}
		for p, want := range map[string]bool{oldTemp: false, newTemp: true, oldOrphan: false, newOrphan: true} {
			if exists(p) != want {
				t.Errorf("%s exists = %v, want %v", filepath.Base(p), !want, want)
			}
		}
		for _, p := range strangers {
			if !exists(p) {
				t.Errorf("%s was removed; it is not ours to remove", filepath.Base(p))
			}
		}
		for id, data := range map[contract.ID][]byte{kept: keptData, missing: missingData} {
			if got, err := d.Read(id); err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s: %v", id, err)
			}
		}
		if got := names(t, d); len(got) != 8 {
			t.Errorf("folder holds %v", got)
		}

		// An image whose upload may still be writing its file is left
		// alone.
		young, _ := createImage(t, st, 3)
		rep, err = d.Reconcile(t.Context(), st, uploads.ReconcileOptions{Logger: storetest.Logger(t)})
		if err != nil || rep.Pending != 1 || rep.Restored != 0 {
			t.Errorf("run with a young image: %+v, %v; want it pending", rep, err)
		}
		if _, err := d.Stat(young); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("young image's file written by the run: %v", err)
		}
		opts.WriteGrace = time.Nanosecond
		if rep, err := d.Reconcile(t.Context(), st, opts); err != nil || rep.Restored != 1 {
			t.Errorf("run after the grace: %+v, %v", rep, err)
		}

		// A second run finds nothing to do.
		rep, err = d.Reconcile(t.Context(), st, opts)
		if err != nil || rep.RemovedTemp+rep.RemovedOrphans+rep.Restored+rep.Failed != 0 {
			t.Errorf("second run: %+v, %v", rep, err)
		}
		for name, want := range map[string]float64{
			"extagram_reconcile_removed_temp_total":    1,
			"extagram_reconcile_removed_orphans_total": 1,
			"extagram_reconcile_restored_total":        2,
			"extagram_reconcile_failed_total":          0,
			"extagram_reconcile_unknown_entries":       4,
		} {
			if got := metricValue(t, reg, name, ""); got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
		if got := metricValue(t, reg, "extagram_reconcile_runs_total", "ok"); got != 3 {
			t.Errorf("runs_total{result=ok} = %v, want 3", got)
		}
	})
}

// metricValue reads a counter or gauge from reg; result, when set, picks
// the series with that result label. -1 when there is none.
func metricValue(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := result == ""
			for _, l := range m.GetLabel() {
				match = match || l.GetName() == "result" && l.GetValue() == result
			}
			if !match {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// TestReconcileDatabaseUnreachable cuts the connection to MySQL for real:
// the run fails and removes nothing, however old the files.
func TestReconcileDatabaseUnreachable(t *testing.T) {
	dsn := storetest.MySQLDSN(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testproxy.Start(t, cfg.Addr)
	cfg.Addr = proxy.Addr()
	cfg.Timeout = 2 * time.Second
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, store.Config{MySQLDSN: cfg.FormatDSN(), Logger: storetest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	d := openDir(t)
	id, data := createImage(t, st, 1)
	temp := writeAged(t, d, uploads.TempPrefix+"x", nil, 24*time.Hour)
	orphan := writeAged(t, d, contract.NewID().String(), pixel, 24*time.Hour)
	proxy.Cut()
	reg := prometheus.NewRegistry()
	metrics, _ := uploads.NewReconcileMetrics(reg)
	rep, err := d.Reconcile(ctx, st, uploads.ReconcileOptions{Logger: storetest.Logger(t), Metrics: metrics})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Reconcile with the database cut: %+v, %v; want an error wrapping ErrUnavailable", rep, err)
	}
	if !exists(temp) || !exists(orphan) {
		t.Fatal("files removed while the database was unreachable")
	}
	if got := metricValue(t, reg, "extagram_reconcile_runs_total", "failed"); got != 1 {
		t.Errorf("runs_total{result=failed} = %v, want 1", got)
	}

	if err := proxy.Restore(); err != nil {
		t.Fatal(err)
	}
	rep, err = d.Reconcile(ctx, st, uploads.ReconcileOptions{Logger: storetest.Logger(t), WriteGrace: time.Nanosecond})
	if err != nil || rep.RemovedTemp != 1 || rep.RemovedOrphans != 1 || rep.Restored != 1 {
		t.Fatalf("after restore: %+v, %v", rep, err)
	}
	if got, err := d.Read(id); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("not restored: %v", err)
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
	f.pages++
	if f.listErr != nil && f.pages > 1 {
		return nil, f.listErr
	}
	var ids []contract.ID
	for id := range f.images {
		if bytes.Compare(id[:], after[:]) > 0 {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return bytes.Compare(ids[i][:], ids[j][:]) < 0 })
	return ids[:min(limit, len(ids))], nil
}

func (f *fakeSource) ImageInfo(_ context.Context, id contract.ID) (store.Image, error) {
	if f.infoErr != nil {
		return store.Image{}, f.infoErr
	}
	data, ok := f.images[id]
	if !ok {
		return store.Image{}, store.ErrNotFound
	}
	return store.Image{ID: id, Size: int64(len(data)), SHA256: sha256.Sum256(data)}, nil
}

func (f *fakeSource) ImageData(ctx context.Context, id contract.ID) (store.Image, []byte, error) {
	img, err := f.ImageInfo(ctx, id)
	if err != nil {
		return img, nil, err
	}
	data := f.images[id]
	if f.corrupt {
		data = append([]byte("x"), data[1:]...)
	}
	return img, data, nil
}

func TestReconcileFaults(t *testing.T) {
	unavailable := fmt.Errorf("store: image ids: %w: connection refused", store.ErrUnavailable)
	many := map[contract.ID][]byte{}
	for i := range 2500 {
		many[contract.NewID()] = []byte(fmt.Sprint(i))
	}

	t.Run("listing fails on a later page", func(t *testing.T) {
		d := openDir(t)
		orphan := writeAged(t, d, contract.NewID().String(), pixel, 24*time.Hour)
		temp := writeAged(t, d, uploads.TempPrefix+"x", nil, 24*time.Hour)
		src := &fakeSource{images: many, listErr: unavailable}
		if _, err := d.Reconcile(t.Context(), src, uploads.ReconcileOptions{}); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("err %v", err)
		}
		if !exists(orphan) || !exists(temp) || len(names(t, d)) != 2 {
			t.Fatalf("the folder changed although the listing failed: %v", names(t, d))
		}
	})
	t.Run("many pages", func(t *testing.T) {
		d := openDir(t)
		src := &fakeSource{images: many}
		rep, err := d.Reconcile(t.Context(), src, uploads.ReconcileOptions{})
		if err != nil || rep.Restored != 2500 || src.pages != 3 {
			t.Fatalf("%+v, %v, %d pages", rep, err, src.pages)
		}
		rep, err = d.Reconcile(t.Context(), src, uploads.ReconcileOptions{})
		if err != nil || rep.Files != 2500 || rep.Restored != 0 {
			t.Fatalf("second run %+v, %v", rep, err)
		}
	})
	t.Run("confirming an orphan fails", func(t *testing.T) {
		d := openDir(t)
		orphan := writeAged(t, d, contract.NewID().String(), pixel, 24*time.Hour)
		src := &fakeSource{images: map[contract.ID][]byte{}, infoErr: unavailable}
		if _, err := d.Reconcile(t.Context(), src, uploads.ReconcileOptions{}); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("err %v", err)
		}
		if !exists(orphan) {
			t.Fatal("removed a file whose record could not be checked")
		}
	})
	t.Run("database copy damaged", func(t *testing.T) {
		d := openDir(t)
		id := contract.NewID()
		src := &fakeSource{images: map[contract.ID][]byte{id: pixel}, corrupt: true}
		rep, err := d.Reconcile(t.Context(), src, uploads.ReconcileOptions{})
		if err != nil || rep.Failed != 1 || rep.Restored != 0 {
			t.Fatalf("%+v, %v", rep, err)
		}
		if _, err := d.Stat(id); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("a file that fails its checksum was written: %v", err)
		}
	})
	t.Run("folder unwritable", func(t *testing.T) {
		d := openDir(t)
		src := &fakeSource{images: map[contract.ID][]byte{contract.NewID(): pixel, contract.NewID(): pixel}}
		// Root ignores permissions; nobody can create a file inside a
		// regular file.
		if err := os.Remove(d.Path()); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(d.Path(), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Reconcile(t.Context(), src, uploads.ReconcileOptions{}); err == nil {
			t.Fatal("no error")
		}
	})
}

// TestReconcileEvery runs at once and again on its interval, and stops with
// its context.
func TestReconcileEvery(t *testing.T) {
	d := openDir(t)
	id := contract.NewID()
	src := &fakeSource{images: map[contract.ID][]byte{id: pixel}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); d.ReconcileEvery(ctx, src, 10*time.Millisecond, uploads.ReconcileOptions{}) }()
	testutil.Eventually(t, 10*time.Second, "condition", func() bool { _, err := d.Stat(id); return err == nil })
	// Removed again: a later run restores it.
	if err := d.Remove(id); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "condition", func() bool { _, err := d.Stat(id); return err == nil })
	cancel()
	<-done
}
