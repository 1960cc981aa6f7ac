package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/extagram/extagram/hatest"
	"github.com/extagram/extagram/internal/contract"
)

// startDemo runs a mesh under a steady, mixed load with Prometheus scraping
// it (every 2s, the rules of deploy/observability loaded) for cfg.demoTime,
// and returns Prometheus's URL and what stops it all. During the run, at
// fractions of its time: one feed replica killed at 30%, the other too at
// 45% (the site answers 503), the second back at 50%, the first at 60%;
// at 75% the image files deleted, so that blob serves them from the
// database and repairs them.
func startDemo(ctx context.Context, cfg config) (stop func(), promURL string, err error) {
	if cfg.mysqlDSN == "" {
		return nil, "", fmt.Errorf("-demo needs -mysql-dsn (or EXTAGRAM_TEST_MYSQL_DSN)")
	}
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	dir, err := os.MkdirTemp("", "extagram-render-demo-")
	if err != nil {
		return nil, "", err
	}
	stops = append(stops, func() { os.RemoveAll(dir) })
	dsn, drop, err := hatest.CreateDatabase(ctx, cfg.mysqlDSN, "extagram_render_")
	if err != nil {
		return stop, "", err
	}
	stops = append(stops, drop)
	log("building the binary")
	bin, err := hatest.Build(ctx, dir)
	if err != nil {
		return stop, "", err
	}
	log("starting the mesh")
	c, err := hatest.Start(ctx, hatest.Options{Bin: bin, Dir: dir, DSN: dsn, Replicas: 2})
	if err != nil {
		return stop, "", err
	}
	stops = append(stops, c.Close)
	rules, err := filepath.Abs("deploy/observability/rules/extagram.yml")
	if err != nil {
		return stop, "", err
	}
	prom, err := hatest.StartPrometheus(ctx, hatest.PrometheusOptions{Dir: dir, Targets: c.MetricsTargets(), RuleFiles: []string{rules}, Interval: 2 * time.Second})
	if err != nil {
		return stop, "", err
	}
	stops = append(stops, func() { _ = prom.Kill() })

	loadCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stops = append(stops, func() { cancel(); wg.Wait() })
	every := func(d time.Duration, f func()) {
		wg.Go(func() {
			t := time.NewTicker(d)
			defer t.Stop()
			for {
				select {
				case <-loadCtx.Done():
					return
				case <-t.C:
					f()
				}
			}
		})
	}
	client := hatest.NewClient(8)
	get := func(path string) {
		if resp, err := client.Get(c.URL + path); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	log("load for %s; Prometheus at %s", cfg.demoTime, prom.URL)
	for range 4 {
		every(200*time.Millisecond, func() { get("/") })
	}
	every(time.Second, func() { get("/static/style.css") })
	every(3*time.Second, func() { get("/posts/" + contract.NewID().String()) }) // 404
	every(4*time.Second, func() { upload(client, c.URL) })
	every(2*time.Second, func() {
		for _, id := range imageIDs(client, c.URL) {
			get("/storage/" + id)
		}
	})

	// The events, at fractions of the run.
	began := time.Now()
	wait := func(frac float64) bool {
		select {
		case <-loadCtx.Done():
			return false
		case <-time.After(time.Until(began.Add(time.Duration(frac * float64(cfg.demoTime))))):
			return true
		}
	}
	wg.Go(func() {
		a, b := c.Feeds[0], c.Feeds[1]
		if !wait(0.30) {
			return
		}
		log("killing %s", a.Name)
		_ = a.Kill()
		if !wait(0.45) {
			return
		}
		log("killing %s too: no feed replica left", b.Name)
		_ = b.Kill()
		if !wait(0.50) {
			return
		}
		log("starting %s again", b.Name)
		_ = b.Start()
		if !wait(0.60) {
			return
		}
		log("starting %s again", a.Name)
		_ = a.Start()
		if !wait(0.75) {
			return
		}
		n := 0
		_ = filepath.WalkDir(filepath.Join(dir, "uploads"), func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && os.Remove(path) == nil {
				n++
			}
			return nil
		})
		log("deleted %d image files", n)
	})
	select {
	case <-ctx.Done():
		return stop, "", ctx.Err()
	case <-time.After(cfg.demoTime):
	}
	cancel()
	wg.Wait()
	time.Sleep(3 * time.Second) // one more scrape after the load
	return stop, prom.URL, nil
}

func log(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "render: "+format+"\n", args...)
}

// upload posts a small PNG of a random colour with a caption, as the form
// does.
func upload(client *http.Client, site string) {
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	var rgb [3]byte
	_, _ = rand.Read(rgb[:])
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = rgb[0], rgb[1], rgb[2], 255
	}
	img.Set(0, 0, color.Black)
	var photo bytes.Buffer
	_ = png.Encode(&photo, img)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("post", "A colour: #"+hex.EncodeToString(rgb[:]))
	w, _ := mw.CreateFormFile("photo", "colour.png")
	_, _ = w.Write(photo.Bytes())
	_ = mw.Close()
	resp, err := client.Post(site+"/upload.php", mw.FormDataContentType(), &body)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// imageIDs returns the ids of the newest posts' images.
func imageIDs(client *http.Client, site string) []string {
	resp, err := client.Get(site + "/api/v1/posts?pageSize=10")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var list struct {
		Posts []struct {
			Image *struct {
				ID string `json:"id"`
			} `json:"image"`
		} `json:"posts"`
	}
	if json.NewDecoder(resp.Body).Decode(&list) != nil {
		return nil
	}
	var ids []string
	for _, p := range list.Posts {
		if p.Image != nil {
			ids = append(ids, p.Image.ID)
		}
	}
	return ids
}
