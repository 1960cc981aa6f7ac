package hatest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"image"
	"image/png"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// memoryBound is half of the 256 MiB a process's Kubernetes limit allows.
const memoryBound = 128 << 20

// The edge keeping the newest page from WatchFeed: first the cheap attacks
// that used to take a process past its memory or burn seconds of CPU per
// request, each from one client, with default settings but a 3s upload
// idle time; then feed replicas killed and frozen.
func TestWatchedEdge(t *testing.T) {
	t.Parallel()
	dsn := storetest.MySQLDSN(t)
	c := startCluster(t, Options{DSN: dsn, WatchFeed: true, EdgeArgs: []string{"--upload-idle", "3s"}})
	// A 9 MiB PNG of noise, stored without compression.
	img := image.NewNRGBA(image.Rect(0, 0, 1750, 1750))
	_, _ = rand.NewChaCha8([32]byte{9}).Read(img.Pix)
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255 // opaque
	}
	photo := testutil.EncodePNG(t, img, png.NoCompression)
	upload := func(photoFirst bool) ([]byte, string) {
		return testutil.Form(t, [][2]string{{"post", "nine megabytes"}},
			&testutil.File{Name: "big.png", ContentType: "application/octet-stream", Data: photo, First: photoFirst})
	}
	body, ct := upload(false)
	resp, err := c.Client.Post(c.URL+"/upload.php", ct, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("uploading the 9 MiB photo: %d", resp.StatusCode)
	}
	page := func() string {
		_, body, _, _ := get(t.Context(), c.Client, c.URL+"/")
		return body
	}
	var imageID string // the photo's, the first image on the page
	testutil.Eventually(t, 10*time.Second, "the uploaded photo on the page", func() bool {
		if m := regexp.MustCompile(`/storage/([\w-]+)`).FindStringSubmatch(page()); m != nil {
			imageID = m[1]
		}
		return imageID != ""
	})
	getImage := func(ranges string) (int, int64, error) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, c.URL+"/storage/"+imageID, nil)
		if ranges != "" {
			req.Header.Set("Range", "bytes="+ranges)
		}
		resp, err := c.Client.Do(req)
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, n, err
	}

	// underAttack runs attack while 4 clients load the page and every 50 ms
	// the processes' RSS is read, then checks that none went past
	// memoryBound, that no page load failed and their p99 stayed under
	// 500 ms, and that the image is served after.
	underAttack := func(t *testing.T, attack func()) {
		load := startLoad(t, c, 4, 0)
		peaks := map[string]int64{}
		ctx, stop := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() {
			for tick := time.Tick(50 * time.Millisecond); ctx.Err() == nil; <-tick {
				for _, p := range c.procs {
					if rss, err := p.RSS(); err == nil {
						peaks[p.Name] = max(peaks[p.Name], rss)
					}
				}
			}
		})
		attack()
		stop()
		wg.Wait()
		samples := load.Stop()
		t.Logf("peak RSS during the attack (bytes): %v", peaks)
		for name, peak := range peaks {
			if peak > memoryBound {
				t.Errorf("%s reached %.0f MiB, over %d MiB", name, float64(peak)/(1<<20), memoryBound>>20)
			}
		}
		checkNoFailures(t, samples)
		if p99 := Summarize(samples, 0, 0).P99; p99 > 500*time.Millisecond {
			t.Errorf("other clients' page loads: p99 %s, want under 500ms", p99)
		}
		if code, n, err := getImage(""); code != http.StatusOK || n != int64(len(photo)) {
			t.Fatalf("after the attack, the image: %d with %d bytes (%v)", code, n, err)
		}
	}

	t.Run("300 ranges", func(t *testing.T) {
		ranges := make([]string, 300)
		for i := range ranges {
			ranges[i] = fmt.Sprintf("%d-%d", 2*i, 2*i)
		}
		underAttack(t, func() {
			for range 20 {
				if code, n, err := getImage(strings.Join(ranges, ",")); code != http.StatusOK || n != int64(len(photo)) {
					t.Fatalf("300 ranges: %d with %d bytes (%v); want the whole image, 200", code, n, err)
				}
			}
		})
	})

	t.Run("slow readers", func(t *testing.T) {
		underAttack(t, func() {
			opened, refused := slowReaders(t, c, imageID, 60, 4*time.Second)
			t.Logf("60 streams with a shut window on one connection: %d answered, %d refused", opened, refused)
			if opened > 32 {
				t.Errorf("%d streams ran on one connection, want at most 32", opened)
			}
		})
	})

	// Each from an address of its own (loopback on Linux), whose upload
	// slots and rate are all free.
	for i, photoFirst := range []bool{true, false} {
		from := &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(i+1))}
		t.Run(fmt.Sprintf("held uploads, photo first %v", photoFirst), func(t *testing.T) {
			body, ct := upload(photoFirst)
			held := body[:len(body)-len("\r\n--")-100] // the photo sent, the form never finished
			underAttack(t, func() {
				codes := heldUploads(t, c, from, held, ct, len(body), 30)
				t.Logf("30 held uploads from one address: answers %v", codes)
				if codes[http.StatusTooManyRequests] < 26 || codes[http.StatusRequestTimeout] == 0 {
					t.Errorf("answers %v; want the address's uploads capped (429) and the held ones timed out (408)", codes)
				}
			})
		})
	}

	// Under load, one replica killed, then the other frozen: no page load
	// fails, and a post made during each event (into the database, as by
	// another edge) is on the page soon after: the edge notices a stream
	// that ends or goes quiet, asks per view meanwhile and watches again.
	t.Run("replicas killed and frozen", func(t *testing.T) {
		st, err := store.Open(t.Context(), store.Config{MySQLDSN: dsn, SkipMigrations: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		onPage := func(text string) {
			t.Helper()
			start := time.Now()
			if _, err := st.CreatePost(t.Context(), store.NewPost{ID: contract.NewID(), Text: text}); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 10*time.Second, fmt.Sprintf("%q on the page", text), func() bool {
				return strings.Contains(page(), text)
			})
			t.Logf("%q on the page after %v", text, time.Since(start).Round(time.Millisecond))
		}
		load := startLoad(t, c, clients, 0)
		time.Sleep(time.Second)
		onPage("before any event")
		killed, frozen := c.Feeds[0], c.Feeds[1]
		if err := killed.Kill(); err != nil {
			t.Fatal(err)
		}
		onPage("while one replica is dead")
		// In turn: the first is back, then the other freezes.
		if err := killed.Start(); err != nil {
			t.Fatal(err)
		}
		if err := WaitHealth(t.Context(), c.Operator, killed.Addr, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := frozen.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		onPage("while one replica is frozen")
		if err := frozen.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		onPage("after the events")
		checkNoFailures(t, load.Stop())
	})
}

// slowReaders opens n HTTP/2 streams for the image on one connection that
// never opens its flow-control window, holds them for hold, and returns
// how many the server answered and how many it refused.
func slowReaders(t *testing.T, c *Cluster, imageID string, n int, hold time.Duration) (answered, refused int) {
	host := strings.TrimPrefix(c.URL, "https://")
	conn, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}) //nolint:gosec // the cluster's own certificate
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatal("no HTTP/2")
	}
	fr := http2.NewFramer(conn, bufio.NewReader(conn))
	// A window of 0: the server may send headers, no data.
	_, err = io.WriteString(conn, http2.ClientPreface)
	if err == nil {
		err = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	}
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	for i := 0; i < n && err == nil; i++ {
		hbuf.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", host}, {":path", "/storage/" + imageID}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true})
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(hold))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return answered, refused // the hold is over (or the server closed)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			answered++
		case *http2.RSTStreamFrame:
			if f.ErrCode == http2.ErrCodeRefusedStream {
				refused++
			}
		case *http2.PingFrame:
			_ = fr.WritePing(true, f.Data)
		}
	}
}

// heldUploads opens n uploads from address from on their own connections,
// each sending prefix of a body of size bytes and then nothing, and returns
// the statuses they were answered with.
func heldUploads(t *testing.T, c *Cluster, from net.Addr, prefix []byte, contentType string, size, n int) map[int]int {
	host := strings.TrimPrefix(c.URL, "https://")
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			conn, err := tls.DialWithDialer(&net.Dialer{LocalAddr: from}, "tcp", host,
				&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}) //nolint:gosec // the cluster's own certificate
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(40 * time.Second))
			// Sent while the answer is read: a refused upload is answered
			// before its body is all sent.
			go func() {
				fmt.Fprintf(conn, "POST /upload.php HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", host, contentType, size)
				_, _ = conn.Write(prefix)
			}()
			code := 0
			if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
				code = resp.StatusCode
				resp.Body.Close()
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return codes
}
