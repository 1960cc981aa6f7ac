package uploads

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of ReconcileOptions.
const (
	// DefaultReconcileInterval is how often the blob role reconciles.
	DefaultReconcileInterval = 10 * time.Minute
	// DefaultOrphanGrace protects a file with no database record from
	// removal while it is young. An upload commits before it writes its
	// file, so such a file should not exist at all; the grace covers what
	// the database listing might not see yet (a replica lagging behind the
	// primary, a restore from backup in progress).
	DefaultOrphanGrace = time.Hour
	// DefaultTempGrace protects temp files still being written: a write
	// lasts well under a second, so a temp file this old was left by a
	// crash.
	DefaultTempGrace = 15 * time.Minute
)

// imageIDsPage is how many ids one ImageIDs call lists.
const imageIDsPage = store.MaxListLimit

// ImageSource is what reconciliation reads from the database; a
// store.Store is one.
type ImageSource interface {
	ImageIDs(ctx context.Context, after contract.ID, limit int) ([]contract.ID, error)
	ImageInfo(ctx context.Context, id contract.ID) (store.Image, error)
	ImageData(ctx context.Context, id contract.ID) (store.Image, []byte, error)
}

// ReconcileOptions configures Reconcile. Zero values take the defaults.
type ReconcileOptions struct {
	// TempGrace: temp files older than this are removed.
	TempGrace time.Duration
	// OrphanGrace: files with no database record older than this are
	// removed.
	OrphanGrace time.Duration
	// WriteGrace: an image this young whose file is missing is left to
	// the upload that is writing it (default: TempGrace). Without it a
	// run could restore, at the same moment, a file the upload service
	// writes right after its commit.
	WriteGrace time.Duration
	Logger     *slog.Logger
	// Metrics, when set, counts what runs do.
	Metrics *ReconcileMetrics
}

func (o ReconcileOptions) withDefaults() ReconcileOptions {
	if o.TempGrace <= 0 {
		o.TempGrace = DefaultTempGrace
	}
	if o.OrphanGrace <= 0 {
		o.OrphanGrace = DefaultOrphanGrace
	}
	if o.WriteGrace <= 0 {
		o.WriteGrace = o.TempGrace
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Report counts what one reconciliation run found and did.
type Report struct {
	Files          int // image files found (named by a valid id)
	RemovedTemp    int // temp files left by a crash, removed
	RemovedOrphans int // files with no database record, removed
	Restored       int // missing files written from the database copy
	Pending        int // missing files of images younger than WriteGrace, left to their upload
	Unknown        int // entries that are neither ids nor temp files, left alone
	Failed         int // removals or restores that failed
}

// Reconcile brings the folder in line with the database, which is the
// record:
//
//   - temp files (TempPrefix) older than TempGrace are removed;
//   - files named by an id the database does not know, older than
//     OrphanGrace, are removed (each one confirmed NotFound by the database
//     just before);
//   - images the database holds whose file is missing are written from the
//     database copy, after checking its SHA-256 (unless younger than
//     WriteGrace: their upload is writing the file);
//   - anything else in the folder (names that are not ids, folders,
//     links) is left alone and logged.
//
// The database listing comes first: when it fails (the database is
// unavailable) the run stops with an error before anything is removed. The
// folder is read before the database is listed, so a file found on disk
// was written after its post was committed and is in the listing.
func (d *Dir) Reconcile(ctx context.Context, src ImageSource, opts ReconcileOptions) (rep Report, err error) {
	opts = opts.withDefaults()
	log := opts.Logger
	defer func() { opts.Metrics.observe(rep, err) }()

	now := time.Now()
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return rep, fmt.Errorf("uploads: reconcile: read folder: %w", err)
	}
	onDisk := make(map[contract.ID]time.Time, len(entries))
	var temps []string
	for _, e := range entries {
		name := e.Name()
		info, ierr := e.Info()
		if errors.Is(ierr, fs.ErrNotExist) {
			continue // removed since the folder was read (a temp file renamed)
		}
		regular := ierr == nil && info.Mode().IsRegular()
		if IsTemp(name) && regular {
			if now.Sub(info.ModTime()) > opts.TempGrace {
				temps = append(temps, name)
			}
			continue
		}
		if id, perr := contract.ParseID(name); perr == nil && regular {
			onDisk[id] = info.ModTime()
			continue
		}
		rep.Unknown++
		log.WarnContext(ctx, "uploads folder: unexpected entry left alone", "name", strconv.Quote(shorten(name, 80)), "mode", e.Type().String())
	}
	rep.Files = len(onDisk)

	// Every image the database holds, a page at a time; whatever is left
	// in onDisk afterwards has no record.
	var missing []contract.ID
	var after contract.ID
	for {
		ids, lerr := src.ImageIDs(ctx, after, imageIDsPage)
		if lerr != nil {
			return rep, fmt.Errorf("uploads: reconcile: list images (nothing removed): %w", lerr)
		}
		for _, id := range ids {
			if _, ok := onDisk[id]; ok {
				delete(onDisk, id)
			} else {
				missing = append(missing, id)
			}
		}
		if len(ids) < imageIDsPage {
			break
		}
		after = ids[len(ids)-1]
	}

	for _, name := range temps {
		if rerr := os.Remove(filepath.Join(d.path, name)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			rep.Failed++
			log.WarnContext(ctx, "uploads folder: could not remove a temp file", "name", name, "err", rerr)
			continue
		}
		rep.RemovedTemp++
	}

	for id, mtime := range onDisk {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		if now.Sub(mtime) <= opts.OrphanGrace {
			continue
		}
		// Ask again for this one id: only a definite "not found" removes
		// a file.
		_, ierr := src.ImageInfo(ctx, id)
		switch {
		case ierr == nil:
			continue
		case errors.Is(ierr, store.ErrNotFound):
		default:
			return rep, fmt.Errorf("uploads: reconcile: check %s: %w", id, ierr)
		}
		if rerr := d.Remove(id); rerr != nil {
			rep.Failed++
			log.WarnContext(ctx, "uploads folder: could not remove a file with no record", "image", id.String(), "err", rerr)
			continue
		}
		rep.RemovedOrphans++
		log.InfoContext(ctx, "uploads folder: removed a file with no database record", "image", id.String(), "modified", mtime)
	}

	for _, id := range missing {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		if _, serr := d.Stat(id); serr == nil {
			continue // written since the folder was read (a new upload)
		}
		info, ierr := src.ImageInfo(ctx, id)
		switch {
		case errors.Is(ierr, store.ErrNotFound):
			continue
		case ierr != nil:
			return rep, fmt.Errorf("uploads: reconcile: check %s: %w", id, ierr)
		}
		// CreatedAt is the upload service's clock; the grace also covers
		// a small skew between hosts.
		if info.CreatedAt.After(now.Add(-opts.WriteGrace)) {
			rep.Pending++
			continue
		}
		img, data, derr := src.ImageData(ctx, id)
		switch {
		case errors.Is(derr, store.ErrNotFound):
			continue
		case derr != nil:
			return rep, fmt.Errorf("uploads: reconcile: read %s: %w", id, derr)
		}
		if sum := sha256.Sum256(data); int64(len(data)) != img.Size || !bytes.Equal(sum[:], img.SHA256[:]) {
			rep.Failed++
			log.ErrorContext(ctx, "uploads folder: database copy does not match its checksum; file not restored", "image", id.String())
			continue
		}
		if werr := d.Write(id, data); werr != nil {
			rep.Failed++
			// The next write would fail the same way (a full or read-only
			// disk): stop here, the next run tries again.
			return rep, fmt.Errorf("uploads: reconcile: restore %s: %w", id, werr)
		}
		rep.Restored++
		log.InfoContext(ctx, "uploads folder: restored a missing file from the database copy", "image", id.String())
	}
	return rep, nil
}

// ReconcileEvery runs Reconcile at once and then every interval until ctx
// ends. A run that fails (the database unavailable, say) is tried again
// after at most a minute.
func (d *Dir) ReconcileEvery(ctx context.Context, src ImageSource, interval time.Duration, opts ReconcileOptions) {
	if interval <= 0 {
		interval = DefaultReconcileInterval
	}
	opts = opts.withDefaults()
	for {
		start := time.Now()
		rep, err := d.Reconcile(ctx, src, opts)
		wait := interval
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			wait = min(interval, time.Minute)
			opts.Logger.WarnContext(ctx, "uploads folder: reconciliation stopped; trying again later", "err", err, "retry_in", wait)
		default:
			lvl := slog.LevelDebug
			if rep.RemovedTemp+rep.RemovedOrphans+rep.Restored+rep.Failed > 0 {
				lvl = slog.LevelInfo
			}
			opts.Logger.Log(ctx, lvl, "uploads folder reconciled", "files", rep.Files, "removed_temp", rep.RemovedTemp,
				"removed_orphans", rep.RemovedOrphans, "restored", rep.Restored, "pending", rep.Pending, "unknown", rep.Unknown,
				"failed", rep.Failed, "took", time.Since(start))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// ReconcileMetrics are the Prometheus metrics of reconciliation runs.
type ReconcileMetrics struct {
	runs           *prometheus.CounterVec
	removedTemp    prometheus.Counter
	removedOrphans prometheus.Counter
	restored       prometheus.Counter
	failed         prometheus.Counter
	unknown        prometheus.Gauge
	lastSuccess    prometheus.Gauge
}

// NewReconcileMetrics registers the metrics on reg.
func NewReconcileMetrics(reg prometheus.Registerer) (*ReconcileMetrics, error) {
	m := &ReconcileMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "extagram_reconcile_runs_total",
			Help: "Reconciliations of the uploads folder with the database, by result (ok, or failed: stopped early, for example because the database was unavailable).",
		}, []string{"result"}),
		removedTemp: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "extagram_reconcile_removed_temp_total",
			Help: "Temp files left in the uploads folder by a crash, removed.",
		}),
		removedOrphans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "extagram_reconcile_removed_orphans_total",
			Help: "Files in the uploads folder with no database record, removed.",
		}),
		restored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "extagram_reconcile_restored_total",
			Help: "Missing files written to the uploads folder from the database copy.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "extagram_reconcile_failed_total",
			Help: "Removals or restores that failed (the file system refused, or a database copy did not match its checksum).",
		}),
		unknown: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "extagram_reconcile_unknown_entries",
			Help: "Entries of the uploads folder that are neither image files nor temp files, left alone, at the last run.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "extagram_reconcile_last_success_timestamp_seconds",
			Help: "When the last reconciliation completed.",
		}),
	}
	m.runs.WithLabelValues("ok")
	m.runs.WithLabelValues("failed")
	for _, c := range []prometheus.Collector{m.runs, m.removedTemp, m.removedOrphans, m.restored, m.failed, m.unknown, m.lastSuccess} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("uploads: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *ReconcileMetrics) observe(rep Report, err error) {
	if m == nil {
		return
	}
	m.removedTemp.Add(float64(rep.RemovedTemp))
	m.removedOrphans.Add(float64(rep.RemovedOrphans))
	m.restored.Add(float64(rep.Restored))
	m.failed.Add(float64(rep.Failed))
	if err != nil {
		m.runs.WithLabelValues("failed").Inc()
		return
	}
	m.runs.WithLabelValues("ok").Inc()
	m.unknown.Set(float64(rep.Unknown))
	m.lastSuccess.SetToCurrentTime()
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
