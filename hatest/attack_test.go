package hatest_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extagram/extagram/hatest"
	"github.com/extagram/extagram/internal/testutil"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// memoryBound is what no process may exceed during an attack: half of the
// 256 MiB its Kubernetes limit allows.
const memoryBound = 128 << 20

// bigPhoto is a 9 MiB PNG of noise (stored without compression).
func bigPhoto(t *testing.T) []byte {
	t.Helper()
	const side = 1750
	img := image.NewNRGBA(image.Rect(0, 0, side, side))
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.Uint32())
	}
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	return testutil.EncodePNG(t, img, png.NoCompression)
}

// multipartBody is an upload form with the photo first or last.
func multipartBody(t *testing.T, text string, photo []byte, photoFirst bool) ([]byte, string) {
	t.Helper()
	return testutil.Form(t, [][2]string{{"post", text}}, &testutil.File{Name: "big.png", ContentType: "application/octet-stream", Data: photo, First: photoFirst})
}

// memoryWatch samples the RSS of every process of the cluster until stop,
// and keeps each one's peak.
type memoryWatch struct {
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	peaks map[string]int64
}

func watchMemory(procs []*hatest.Proc) *memoryWatch {
	m := &memoryWatch{stop: make(chan struct{}), done: make(chan struct{}), peaks: map[string]int64{}}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, p := range procs {
				if rss, err := p.RSS(); err == nil {
					m.mu.Lock()
					m.peaks[p.Name] = max(m.peaks[p.Name], rss)
					m.mu.Unlock()
				}
			}
			select {
			case <-m.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

func (m *memoryWatch) end() map[string]int64 {
	close(m.stop)
	<-m.done
	return m.peaks
}

// underAttack runs attack while 4 clients load the page, then checks that
// no process went past memoryBound, that the page loads kept their p99
// under 500 ms without an error, and that the site serves normally after.
func underAttack(t *testing.T, c *hatest.Cluster, imageID string, size int, attack func(ctx context.Context)) {
	t.Helper()
	mem := watchMemory(c.Procs())
	load := startLoad(t, c, 4, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	attack(ctx)
	samples := load.Stop()
	peaks := mem.end()
	var report []string
	for name, peak := range peaks {
		report = append(report, fmt.Sprintf("%s %.0f MiB", name, float64(peak)/(1<<20)))
		if peak > memoryBound {
			t.Errorf("%s reached %.0f MiB, over %d MiB", name, float64(peak)/(1<<20), memoryBound>>20)
		}
	}
	t.Logf("peak RSS during the attack: %s", strings.Join(report, ", "))
	st := hatest.Summarize(samples, 0, 0)
	t.Logf("other clients: %d page loads, %d failed, p50 %s, p99 %s", st.Sent, st.Failed, st.P50, st.P99)
	if st.Sent == 0 || st.Failed > 0 || st.P99 > 500*time.Millisecond {
		t.Errorf("other clients' page loads: %d sent, %d failed, p99 %s; want none failed and p99 under 500ms", st.Sent, st.Failed, st.P99)
	}
	resp, err := c.Client.Get(c.URL + "/storage/" + imageID)
	if err != nil {
		t.Fatalf("after the attack: %v", err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || n != int64(size) {
		t.Fatalf("after the attack, the image: %d with %d bytes", resp.StatusCode, n)
	}
}

// TestAttacks runs the three cheap attacks that used to take a process
// past its memory or burn seconds of CPU per request, each from one
// client with default settings, against every role as its own process.
func TestAttacks(t *testing.T) {
	c := startCluster(t, hatest.Options{WatchFeed: true})
	photo := bigPhoto(t)
	body, ct := multipartBody(t, "nine megabytes", photo, false)
	resp, err := c.Client.Post(c.URL+"/upload.php", ct, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("uploading the 9 MiB photo: %d", resp.StatusCode)
	}
	imageID := newestImage(t, c)

	t.Run("many ranges", func(t *testing.T) {
		ranges := make([]string, 300)
		for i := range ranges {
			ranges[i] = fmt.Sprintf("%d-%d", 2*i, 2*i)
		}
		underAttack(t, c, imageID, len(photo), func(ctx context.Context) {
			for range 20 {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/storage/"+imageID, nil)
				req.Header.Set("Range", "bytes="+strings.Join(ranges, ","))
				resp, err := c.Client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || n != int64(len(photo)) {
					t.Fatalf("300 ranges: %d with %d bytes; want the whole image, 200", resp.StatusCode, n)
				}
			}
		})
	})

	t.Run("slow readers", func(t *testing.T) {
		underAttack(t, c, imageID, len(photo), func(ctx context.Context) {
			opened, refused := slowReaders(t, ctx, c, imageID, 60, 12*time.Second)
			t.Logf("60 streams with a shut window on one connection: %d answered, %d refused", opened, refused)
			if opened > 32 {
				t.Errorf("%d streams ran on one connection, want at most 32", opened)
			}
		})
	})

	for _, photoFirst := range []bool{true, false} {
		name := "held uploads, text first"
		if photoFirst {
			name = "held uploads, photo first"
		}
		t.Run(name, func(t *testing.T) {
			body, ct := multipartBody(t, "held", photo, photoFirst)
			held := body[:len(body)-len("\r\n--")-100] // all but the end: the photo sent, the form never finished
			underAttack(t, c, imageID, len(photo), func(ctx context.Context) {
				codes := heldUploads(t, c, held, ct, len(body), 30)
				t.Logf("30 held uploads from one address: answers %v", codes)
				if codes[http.StatusTooManyRequests] < 26 || codes[http.StatusRequestTimeout] == 0 {
					t.Errorf("answers %v; want the address's uploads capped (429) and the held ones timed out (408)", codes)
				}
			})
		})
	}
}

// newestImage returns the id of the newest post's image, from the API.
func newestImage(t *testing.T, c *hatest.Cluster) string {
	t.Helper()
	var list struct {
		Posts []struct {
			Image *struct {
				ID string `json:"id"`
			} `json:"image"`
		} `json:"posts"`
	}
	if !testutil.Within(10*time.Second, func() bool {
		resp, err := c.Client.Get(c.URL + "/api/v1/posts?pageSize=1")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		return err == nil && len(list.Posts) > 0 && list.Posts[0].Image != nil
	}) {
		t.Fatal("the uploaded photo is not in the feed")
	}
	return list.Posts[0].Image.ID
}

// slowReaders opens n HTTP/2 streams for the image on one connection that
// never opens its flow-control window, holds them for hold, and returns
// how many the server answered and how many it refused.
func slowReaders(t *testing.T, ctx context.Context, c *hatest.Cluster, imageID string, n int, hold time.Duration) (answered, refused int) {
	t.Helper()
	host := strings.TrimPrefix(c.URL, "https://")
	conn, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}) //nolint:gosec // the cluster's own certificate
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatal("no HTTP/2")
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, bufio.NewReader(conn))
	// A window of 0: the server may send headers, no data.
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
		t.Fatal(err)
	}
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	for i := range n {
		hbuf.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", host}, {":path", "/storage/" + imageID}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
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
		if ctx.Err() != nil {
			return answered, refused
		}
	}
}

// heldUploads opens n uploads on their own connections, each sending prefix
// of a body of size bytes and then nothing, and returns the statuses they
// were answered with.
func heldUploads(t *testing.T, c *hatest.Cluster, prefix []byte, contentType string, size, n int) map[int]int {
	t.Helper()
	host := strings.TrimPrefix(c.URL, "https://")
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			conn, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}) //nolint:gosec // the cluster's own certificate
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
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			code := 0
			if err == nil {
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
