package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/extagram/extagram/feedsvc"
	"github.com/extagram/extagram/hatest"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/store"
)

// bench is one run of the benchmark.
type bench struct {
	cfg    config
	dir    string
	site   *site
	ng     *nginx
	goSrv  *goServer
	photos []store.NewPost
	small  database // the 20 photo posts
	large  database // cfg.posts posts, the newest the same photo posts
	bulk   seeded

	loadAtStart string

	rows     []row
	notes    []string
	failures []string
	timings  []timing
}

// row is one line of the table.
type row struct {
	label   string
	body    int
	ours    wrkResult
	nginx   *wrkResult
	plainGo *wrkResult
	ceiling *ceiling
}

type timing struct {
	name string
	d    time.Duration
}

// timed runs f and notes how long it took.
func (b *bench) timed(name string, f func() error) error {
	start := time.Now()
	err := f()
	b.timings = append(b.timings, timing{name, time.Since(start)})
	return err
}

func (b *bench) failf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.failures = append(b.failures, msg)
	logf("FAILURE: %s", msg)
}

// run runs the benchmark and prints its results. ok is false when
// something failed along the way but the table could still be made.
func run(sigCtx context.Context, cfg config) (ok bool, err error) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(sigCtx, cfg.timeout)
	defer cancel()
	for _, tool := range []string{"wrk", "nginx"} {
		if _, err := exec.LookPath(tool); err != nil {
			return false, fmt.Errorf("%s is not installed (apt-get install -y nginx wrk): %w", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "extagram-bench-http-")
	if err != nil {
		return false, err
	}
	b := &bench{cfg: cfg, dir: dir, loadAtStart: loadAverage()}
	defer func() { b.removeDir(sigCtx.Err() != nil || (err == nil && ok)) }()
	// nginx's workers (nobody, when run as root) go through this folder to
	// their files; they cannot list it.
	if err := os.Chmod(dir, 0o711); err != nil {
		return false, err
	}
	defer func() {
		switch {
		case err == nil:
		case sigCtx.Err() != nil:
			err = errors.New("interrupted")
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			err = fmt.Errorf("stopped after -timeout %s: %w", cfg.timeout, err)
		}
	}()

	var bin string
	if err := b.timed("build the binary", func() (err error) {
		logf("building cmd/extagram")
		bin, err = hatest.Build(ctx, dir)
		return err
	}); err != nil {
		return false, err
	}

	// The databases.
	b.photos = makePhotos()
	b.small = database{label: fmt.Sprintf("%d posts", photoPosts)}
	b.large = database{label: fmt.Sprintf("%s posts", thousands(cfg.posts))}
	if cfg.store == "mysql" {
		srv, err := openServer(ctx, cfg.mysqlDSN)
		if err != nil {
			return false, err
		}
		defer srv.close()
		if b.small.dsn, err = srv.create(ctx, "small"); err != nil {
			return false, err
		}
		if b.large.dsn, err = srv.create(ctx, "large"); err != nil {
			return false, err
		}
		b.notes = append(b.notes, fmt.Sprintf("databases %s and %s on %s, dropped at the end", dbName(b.small.dsn), dbName(b.large.dsn), srv.cfg.Addr))
	} else {
		b.small.dataDir = filepath.Join(dir, "store-small")
		b.large.dataDir = filepath.Join(dir, "store-large")
	}
	if cfg.has("feed20") {
		if err := b.timed("seed 20 photo posts", func() error {
			logf("seeding %d photo posts (%s)", photoPosts, b.small)
			_, err := seed(ctx, b.small.storeConfig(), 0, b.photos, 1)
			return err
		}); err != nil {
			return false, err
		}
	}
	if cfg.needLarge() {
		n := cfg.posts - photoPosts
		if err := b.timed(fmt.Sprintf("seed %s posts", thousands(cfg.posts)), func() (err error) {
			logf("seeding %s text posts with %d goroutines, then the %d photo posts (%s)", thousands(n), cfg.seeders, photoPosts, b.large)
			start := time.Now()
			b.bulk, err = seed(ctx, b.large.storeConfig(), n, b.photos, cfg.seeders)
			if err == nil {
				logf("seeded %s posts in %s (%.0f posts/s)", thousands(cfg.posts), time.Since(start).Round(100*time.Millisecond), float64(cfg.posts)/time.Since(start).Seconds())
			}
			return err
		}); err != nil {
			return false, err
		}
	}

	// The site, on the small database first when feed20 is measured.
	first := b.large
	if cfg.has("feed20") {
		first = b.small
	}
	s := newSite(bin, dir)
	b.site = s
	defer s.close()
	if err := b.timed("start the site", func() error {
		logf("starting upload, blob, feed-1, feed-2 and the edge over the database of %s", first.label)
		return s.start(ctx, first)
	}); err != nil {
		return false, err
	}

	// nginx, with the edge's Content-Type headers.
	types, err := b.contentTypes(ctx)
	if err != nil {
		return false, err
	}
	if err := b.timed("start nginx", func() (err error) {
		logf("starting nginx")
		b.ng, err = startNginx(ctx, filepath.Join(dir, "nginx"), types)
		return err
	}); err != nil {
		if b.ng != nil {
			b.ng.stop()
		}
		return false, err
	}
	defer b.ng.stop()
	if b.goSrv, err = startGoServer(); err != nil {
		return false, err
	}
	defer b.goSrv.stop()
	// On the way out, the table so far (before the processes stop).
	defer func() {
		if err != nil && len(b.rows) > 0 {
			b.printTable(os.Stdout)
		}
	}()

	if cfg.has("feed20") {
		if err := b.checkPageOne(ctx); err != nil {
			return false, err
		}
		if err := b.get(ctx, "GET / (20 posts)", "/", nil); err != nil {
			return false, err
		}
	}
	if cfg.needLarge() {
		if first.label != b.large.label {
			if err := b.timed("restart the site on the large database", func() error {
				logf("restarting the site over the database of %s", b.large.label)
				return s.switchTo(ctx, b.large)
			}); err != nil {
				return false, err
			}
		}
		if err := b.checkPageOne(ctx); err != nil {
			return false, err
		}
		if err := b.measureLarge(ctx); err != nil {
			return false, err
		}
	}
	if err := s.dead(); err != nil {
		return false, err
	}

	w := os.Stdout
	b.printHeader(w)
	b.printTable(w)
	b.printRSS(w)
	b.timings = append(b.timings, timing{"whole run", time.Since(began)})
	b.printTimings(w)
	if len(b.failures) > 0 {
		fmt.Fprintln(w, "\nFAILED:")
		for _, f := range b.failures {
			fmt.Fprintln(w, "  "+f)
		}
	}
	if cfg.keep {
		b.printAddresses(w)
		<-sigCtx.Done()
	}
	return len(b.failures) == 0, nil
}

// measureLarge measures every selected path of the large feed, uploads
// last (they add posts).
func (b *bench) measureLarge(ctx context.Context) error {
	cfg := b.cfg
	if cfg.has("feed") {
		if err := b.get(ctx, fmt.Sprintf("GET / (%s posts)", thousands(cfg.posts)), "/", nil); err != nil {
			return err
		}
	}
	if cfg.has("deep") {
		// The page after the middle text post: the one before it comes
		// first.
		type kp struct {
			key int64
			i   int
		}
		keys := make([]kp, len(b.bulk.keyOf))
		for i, k := range b.bulk.keyOf {
			keys[i] = kp{k, i}
		}
		slices.SortFunc(keys, func(a, c kp) int { return cmp.Compare(a.key, c.key) })
		mid := len(keys) / 2
		token := feedsvc.EncodePageToken(keys[mid].key)
		want := bulkText(keys[mid-1].i)
		label := fmt.Sprintf("GET /?page=… (%s posts down)", thousands(cfg.posts-mid))
		if err := b.get(ctx, label, "/?page="+token, func(body []byte) error {
			if !bytes.Contains(body, []byte(want)) {
				return fmt.Errorf("the page does not show %q", want)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if cfg.has("api") {
		if err := b.get(ctx, fmt.Sprintf("GET /api/v1/posts (%s posts)", thousands(cfg.posts)), "/api/v1/posts", nil); err != nil {
			return err
		}
	}
	if cfg.has("image") {
		img := b.photos[len(b.photos)-1].Image
		if err := b.get(ctx, "GET /storage/{id} (PNG)", "/storage/"+img.ID.String(), func(body []byte) error {
			if !bytes.Equal(body, img.Data) {
				return fmt.Errorf("the image is not the one stored (%d bytes, want %d)", len(body), len(img.Data))
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if cfg.has("css") {
		if err := b.get(ctx, "GET /static/style.css", "/static/style.css", nil); err != nil {
			return err
		}
	}
	if cfg.has("upload") {
		return b.upload(ctx)
	}
	return nil
}

// contentTypes fetches one page of each kind from the edge and returns its
// Content-Type headers, for nginx to send the same.
func (b *bench) contentTypes(ctx context.Context) (contentTypes, error) {
	var t contentTypes
	for _, x := range []struct {
		uri string
		to  *string
	}{
		{"/", &t.HTML},
		{"/api/v1/posts", &t.JSON},
		{"/storage/" + b.photos[len(b.photos)-1].Image.ID.String(), &t.Image},
		{"/static/style.css", &t.CSS},
	} {
		code, ct, _, err := fetch(ctx, b.site.client, b.site.url, x.uri)
		if err != nil || code != http.StatusOK {
			return t, fmt.Errorf("GET %s from the edge: status %d, %v", x.uri, code, err)
		}
		*x.to = ct
	}
	return t, nil
}

// checkPageOne checks that page 1 of the API shows the photo posts,
// newest first: the same page at every feed size.
func (b *bench) checkPageOne(ctx context.Context) error {
	code, _, body, err := fetch(ctx, b.site.client, b.site.url, "/api/v1/posts")
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("GET /api/v1/posts: status %d, %v", code, err)
	}
	var page struct {
		Posts []struct {
			ID string `json:"id"`
		} `json:"posts"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return fmt.Errorf("GET /api/v1/posts: %w", err)
	}
	var got, want []string
	for _, p := range page.Posts {
		got = append(got, p.ID)
	}
	for i := len(b.photos) - 1; i >= 0; i-- {
		want = append(want, b.photos[i].ID.String())
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("page 1 of the feed of %s is not the %d photo posts, newest first:\n got %v\nwant %v", b.site.db.label, photoPosts, got, want)
	}
	return nil
}

// get measures GET uri on the edge and on nginx serving the body the edge
// served for it a moment before. check, if not nil, checks that body.
func (b *bench) get(ctx context.Context, label, uri string, check func([]byte) error) error {
	s := b.site
	code, ct, body, err := fetch(ctx, s.client, s.url, uri)
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("%s: the edge answered %d, %v", label, code, err)
	}
	if check != nil {
		if err := check(body); err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
	}
	if err := b.ng.put(uri, body); err != nil {
		return err
	}
	ncode, nct, nbody, err := fetch(ctx, b.ng.client, b.ng.url, uri)
	if err != nil || ncode != http.StatusOK || nct != ct || !bytes.Equal(nbody, body) {
		return fmt.Errorf("%s: nginx does not serve what the edge served: status %d, Content-Type %q (edge %q), %d bytes (edge %d), %v",
			label, ncode, nct, ct, len(nbody), len(body), err)
	}
	logf("%s: %s, %s; measuring the edge", label, contract.FormatBytes(int64(len(body))), ct)
	ours, err := b.wrk(ctx, label+", edge", s.url+uri, b.cfg.conns, "")
	if err != nil {
		return err
	}
	if err := s.dead(); err != nil {
		return err
	}
	logf("%s: measuring nginx", label)
	theirs, err := b.wrk(ctx, label+", nginx", b.ng.url+uri, b.cfg.conns, "")
	if err != nil {
		return err
	}
	if !b.ng.proc.running() {
		return fmt.Errorf("nginx died: %v", b.ng.proc.exitErr())
	}
	b.goSrv.put(uri, ct, body)
	logf("%s: measuring plain Go", label)
	plain, err := b.wrk(ctx, label+", plain Go", b.goSrv.url+uri, b.cfg.conns, "")
	if err != nil {
		return err
	}
	b.rows = append(b.rows, row{label: label, body: len(body), ours: ours, nginx: &theirs, plainGo: &plain})
	return nil
}

// wrk runs the warm-up run and then the measured one, and notes a run
// with errors or no requests as a failure.
func (b *bench) wrk(ctx context.Context, what, url string, conns int, script string) (wrkResult, error) {
	var r wrkResult
	err := b.timed("measure "+what, func() error {
		if b.cfg.warmup > 0 {
			if _, err := runWrk(ctx, url, conns, b.cfg.warmup, script); err != nil {
				return err
			}
		}
		var err error
		r, err = runWrk(ctx, url, conns, b.cfg.duration, script)
		return err
	})
	if err != nil {
		return r, err
	}
	switch {
	case r.requests == 0:
		b.failf("%s: wrk sent no request\n%s", what, r.output)
	case r.errors() > 0:
		b.failf("%s: %d errors (%d answers not 2xx/3xx, %s)", what, r.errors(), max(r.non2xx3xx, r.other), r.socketMsg)
	}
	return r, nil
}

// upload measures POST /upload.php with a photo, compares it with the
// database's ceiling, and checks that every upload answered 303 was
// stored.
func (b *bench) upload(ctx context.Context) error {
	label := "POST /upload.php (PNG)"
	photo := noisePNG(1000)
	var c ceiling
	if err := b.timed("measure the database ceiling", func() (err error) {
		logf("measuring the database ceiling: %d writers inserting %s rows for %s", b.cfg.uploadConns, contract.FormatBytes(int64(len(photo))), b.cfg.ceiling)
		if b.cfg.store == "mysql" {
			c, err = ceilingMySQL(ctx, b.large.dsn, b.cfg.uploadConns, b.cfg.ceiling, photo)
		} else {
			c, err = ceilingSQLite(ctx, filepath.Join(b.dir, "ceiling.db"), b.cfg.uploadConns, b.cfg.ceiling, photo)
		}
		return err
	}); err != nil {
		return fmt.Errorf("database ceiling: %w", err)
	}
	_ = os.Remove(filepath.Join(b.dir, "ceiling.db"))
	_ = os.Remove(filepath.Join(b.dir, "ceiling.db-wal"))
	_ = os.Remove(filepath.Join(b.dir, "ceiling.db-shm"))
	logf("database ceiling: %.0f inserts/s (%s)", c.perSecond(), c.how)

	form, contentType, err := uploadForm(photo)
	if err != nil {
		return err
	}
	bodyPath := filepath.Join(b.dir, "upload-body")
	scriptPath := filepath.Join(b.dir, "upload.lua")
	if err := os.WriteFile(bodyPath, form, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(scriptPath, fmt.Appendf(nil, uploadScript, bodyPath, contentType), 0o644); err != nil {
		return err
	}

	cfg := b.large.storeConfig()
	cfg.SkipMigrations = true
	st, err := store.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	url := b.site.url + "/upload.php"
	var r wrkResult
	var grown, files int
	if err := b.timed("measure "+label+", edge", func() error {
		logf("%s: %s form; measuring the edge with %d connections", label, contract.FormatBytes(int64(len(form))), b.cfg.uploadConns)
		if b.cfg.warmup > 0 {
			warm, err := runWrk(ctx, url, b.cfg.uploadConns, b.cfg.warmup, scriptPath)
			if err != nil {
				return err
			}
			if warm.other > 0 || warm.socket > 0 {
				b.failf("%s warm-up: %d answers other than 303, %s", label, warm.other, warm.socketMsg)
			}
		}
		// The newest post once the warm-up's last uploads are in.
		before, err := settledKey(ctx, st)
		if err != nil {
			return err
		}
		filesBefore := fileCount(b.site.uploads)
		if r, err = runWrk(ctx, url, b.cfg.uploadConns, b.cfg.duration, scriptPath); err != nil {
			return err
		}
		if grown, err = settledCount(ctx, st, before); err != nil {
			return err
		}
		files = fileCount(b.site.uploads) - filesBefore
		return nil
	}); err != nil {
		return err
	}
	if err := b.site.dead(); err != nil {
		return err
	}
	if !r.counted {
		return fmt.Errorf("%s: the upload script's counts are missing from wrk's output\n%s", label, r.output)
	}
	switch {
	case r.requests == 0:
		b.failf("%s: wrk sent no request", label)
	case r.errors() > 0:
		b.failf("%s: %d errors (%d answers other than 303, %s)", label, r.errors(), r.other, r.socketMsg)
	}
	// The uploads wrk cut off when it stopped (one per connection at most)
	// may be stored too.
	note := fmt.Sprintf("uploads: wrk counted %s answers 303; the posts grew by %s (uploads cut off when wrk stopped may be stored too, up to %d), the uploads folder by %s files",
		thousands(int(r.seeOther)), thousands(grown), b.cfg.uploadConns, thousands(files))
	if int64(grown) < r.seeOther || int64(grown) > r.seeOther+int64(b.cfg.uploadConns) {
		b.failf("%s; want %d to %d posts", note, r.seeOther, r.seeOther+int64(b.cfg.uploadConns))
	} else {
		b.notes = append(b.notes, note)
	}
	b.rows = append(b.rows, row{label: label, body: len(form), ours: r, ceiling: &c})
	return nil
}

// settledCount returns the number of posts with a key above after, once
// it has stopped growing for half a second (uploads wrk cut off may still
// be running), or after 10 s.
func settledCount(ctx context.Context, st store.Store, after int64) (int, error) {
	last := -1
	for range 20 {
		n, err := countNewer(ctx, st, after)
		if err != nil || n == last {
			return n, err
		}
		last = n
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return n, err
		}
	}
	return last, nil
}

// settledKey returns the key of the newest post once it has not changed
// for half a second, or after 10 s.
func settledKey(ctx context.Context, st store.Store) (int64, error) {
	last := int64(-1)
	for range 20 {
		k, err := newestKey(ctx, st)
		if err != nil || k == last {
			return k, err
		}
		last = k
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return k, err
		}
	}
	return last, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// uploadForm returns the multipart form a browser sends for a post with
// the photo png, and its Content-Type.
func uploadForm(png []byte) ([]byte, string, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if err := w.WriteField("post", "An upload of the HTTP benchmark: a photo of noise."); err != nil {
		return nil, "", err
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="photo"; filename="noise.png"`)
	h.Set("Content-Type", "image/png")
	part, err := w.CreatePart(h)
	if err != nil {
		return nil, "", err
	}
	if _, err := part.Write(png); err != nil {
		return nil, "", err
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), w.FormDataContentType(), nil
}

func (b *bench) printHeader(w io.Writer) {
	fmt.Fprintln(w, "\nExtagram HTTP benchmark: every role its own process (edge, feed-1, feed-2, upload, blob).")
	if b.cfg.store == "embedded" {
		fmt.Fprintln(w, "Store: embedded; each database is one SQLite file (WAL mode) that the four service processes share.")
	}
	for _, n := range b.notes {
		if strings.HasPrefix(n, "databases") {
			fmt.Fprintf(w, "Store: MySQL, %s.\n", n)
		}
	}
	fmt.Fprintf(w, "nginx: %s, 2 workers, TLS, HTTP/1.1, keep-alive, sendfile, serving as files the bodies the edge served.\n", toolVersion("nginx", "-v"))
	fmt.Fprintln(w, "Plain Go: net/http over crypto/tls in the benchmark's process, writing the same bodies from memory (the ceiling of Go's HTTP and TLS stack).")
	fmt.Fprintf(w, "Load: %s, -t%d -c%d -d%s --latency after a %s warm-up (uploads: -c%d).\n",
		toolVersion("wrk", "-v"), wrkThreads, b.cfg.conns, b.cfg.duration, b.cfg.warmup, b.cfg.uploadConns)
	fmt.Fprintf(w, "Machine: %d CPUs; load average %s at the start, %s at the end.\n\n", runtime.NumCPU(), b.loadAtStart, loadAverage())
}

func (b *bench) printTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "path\tbody bytes\tours req/s\tp50\tp99\terrors\tnginx req/s\tp50\tp99\terrors\tours/nginx\tplain Go req/s\tours/Go\tGo/nginx")
	for _, r := range b.rows {
		o := r.ours
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%d\t", r.label, thousands(r.body), o.rps, ms(o.p50), ms(o.p99), o.errors())
		switch {
		case r.nginx != nil:
			n := r.nginx
			fmt.Fprintf(tw, "%.0f\t%s\t%s\t%d\t%s", n.rps, ms(n.p50), ms(n.p99), n.errors(), ratio(o.rps, n.rps))
			if g := r.plainGo; g != nil {
				fmt.Fprintf(tw, "\t%.0f\t%s\t%s", g.rps, ratio(o.rps, g.rps), ratio(g.rps, n.rps))
			}
			fmt.Fprintln(tw)
		case r.ceiling != nil:
			fmt.Fprintf(tw, "DB %.0f/s*\t-\t-\t-\t%s*\n", r.ceiling.perSecond(), ratio(o.rps, r.ceiling.perSecond()))
		}
	}
	tw.Flush()
	for _, r := range b.rows {
		if r.ceiling != nil {
			fmt.Fprintf(w, "* uploads are compared with the database's own ceiling: %.0f inserts/s (%s, for %s).\n",
				r.ceiling.perSecond(), r.ceiling.how, r.ceiling.elapsed.Round(10*time.Millisecond))
		}
	}
	for _, n := range b.notes {
		if strings.HasPrefix(n, "uploads") {
			fmt.Fprintf(w, "%s%s.\n", strings.ToUpper(n[:1]), n[1:])
		}
	}
}

func (b *bench) printRSS(w io.Writer) {
	fmt.Fprintln(w, "\nPeak RSS (VmHWM):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	var sum int64
	for _, p := range b.site.procs() {
		kb, err := p.peak()
		if err != nil {
			fmt.Fprintf(tw, "  %s\t%v\t\n", p.name, err)
			continue
		}
		sum += kb
		fmt.Fprintf(tw, "  %s\t%s\t\n", p.name, mib(kb))
	}
	fmt.Fprintf(tw, "  sum\t%s\t\n", mib(sum))
	tw.Flush()
	if len(b.site.retired) > 0 {
		var parts []string
		for _, p := range b.site.retired {
			if kb, err := p.peak(); err == nil {
				parts = append(parts, fmt.Sprintf("%s %s", p.name, mib(kb)))
			}
		}
		fmt.Fprintf(w, "  (the processes over the database of %s, stopped before the paths of %s: %s)\n", b.small.label, b.large.label, strings.Join(parts, ", "))
	}
	if kb, n, err := b.ng.peakKB(); err == nil {
		fmt.Fprintf(w, "  for comparison, nginx: %s (%d processes)\n", mib(kb), n)
	}
}

func (b *bench) printTimings(w io.Writer) {
	fmt.Fprintln(w, "\nPhases:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range b.timings {
		fmt.Fprintf(tw, "  %s\t%s\n", t.name, t.d.Round(100*time.Millisecond))
	}
	tw.Flush()
}

func (b *bench) printAddresses(w io.Writer) {
	fmt.Fprintf(w, "\nKept running (-keep) until Ctrl-C; logs in %s:\n", b.dir)
	fmt.Fprintf(w, "  %-8s %s/  metrics http://%s/metrics  pid %d\n", "edge", b.site.url, b.site.edge.metrics, b.site.edge.pid())
	for _, p := range b.site.running {
		fmt.Fprintf(w, "  %-8s grpc://%s  metrics http://%s/metrics  pid %d\n", p.name, p.addr, p.metrics, p.pid())
	}
	fmt.Fprintf(w, "  %-8s %s/  pid %d\n", "nginx", b.ng.url, b.ng.proc.pid())
	fmt.Fprintf(w, "  store:   %s\n", b.site.db)
	fmt.Fprintln(w, "For example: go tool pprof -seconds 10 http://METRICS/debug/pprof/profile (where the roles serve it).")
}

// removeDir removes the temp folder; after a failure it keeps the logs
// (and removes the bulky rest: uploads, databases, nginx's files).
func (b *bench) removeDir(clean bool) {
	if clean {
		os.RemoveAll(b.dir)
		return
	}
	entries, _ := os.ReadDir(b.dir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".log") && e.Name() != "nginx" {
			os.RemoveAll(filepath.Join(b.dir, e.Name()))
		}
	}
	os.RemoveAll(filepath.Join(b.dir, "nginx", "root"))
	fmt.Fprintf(os.Stderr, "process logs kept in %s\n", b.dir)
}

func ms(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func mib(kb int64) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

// thousands formats n with commas: 100,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func dbName(dsn string) string {
	i := strings.LastIndexByte(dsn, '/')
	return strings.SplitN(dsn[i+1:], "?", 2)[0]
}

func toolVersion(tool, flag string) string {
	out, _ := exec.Command(tool, flag).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	switch {
	case strings.HasPrefix(line, "nginx version: "):
		return strings.TrimPrefix(line, "nginx version: ")
	case strings.HasPrefix(line, "wrk "):
		f := strings.Fields(line)
		return f[0] + " " + f[1]
	}
	return tool
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
