package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"html"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extagram/extagram/edge"
	"github.com/extagram/extagram/imaging"
	"github.com/extagram/extagram/internal/app"
	"github.com/extagram/extagram/internal/meshtls"
	"github.com/extagram/extagram/internal/telegram/telegramtest"
	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
	"github.com/go-telegram/bot/models"
)

// The Telegram integration end to end, against a stand-in for the Bot API:
// feed replicas announce new posts in chat 42, edges take photos from chat 7.
const (
	tgToken       = "5151:e2e-token"
	announceChat  = "42"
	allowedChat   = 7
	forbiddenChat = 8
)

func telegramMesh(t *testing.T, tg *telegramtest.Server, opts testmesh.Options) *testmesh.Mesh {
	opts.Telegram = app.TelegramConfig{Token: tgToken, APIURL: tg.URL, Chat: announceChat}
	opts.EdgeTelegram.AllowedChats = append(opts.EdgeTelegram.AllowedChats, allowedChat)
	opts.EdgeTelegram.Token, opts.EdgeTelegram.APIURL, opts.EdgeTelegram.PollTimeout = tgToken, tg.URL, 5*time.Second
	return testmesh.Start(t, opts)
}

// waitSent waits at most d for a message the bot sent to chat that satisfies ok.
func waitSent(t *testing.T, tg *telegramtest.Server, d time.Duration, chat string, ok func(telegramtest.Call) bool) (found telegramtest.Call) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	if _, err := tg.Wait(ctx, func([]telegramtest.Call) bool {
		for _, found = range tg.Sent() {
			if found.Params["chat_id"] == chat && ok(found) {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("no such message to chat %s within %v; sent: %+v", chat, d, tg.Sent())
	}
	return found
}

// replyTo returns the text of the bot's answer to update u.
func replyTo(t *testing.T, tg *telegramtest.Server, u models.Update) string {
	t.Helper()
	return waitSent(t, tg, 15*time.Second, strconv.FormatInt(u.Message.Chat.ID, 10), func(c telegramtest.Call) bool {
		return strings.Contains(c.Params["reply_parameters"], `"message_id":`+strconv.Itoa(u.Message.ID)+`,`)
	}).Params["text"]
}

var errorRE = regexp.MustCompile(`<p class="error" id="upload-error" role="alert">(.*?)</p>`)

// richJPEG is a phone's JPEG: EXIF (orientation, GPS, maker note), XMP, comment, IPTC.
func richJPEG(t *testing.T, orientation int) []byte {
	plain := testutil.JPEG(t, 64, 48)
	return append(append([]byte{0xFF, 0xD8}, bytes.Join([][]byte{
		testutil.JPEGSegment(0xE1, []byte("Exif\x00\x00"), testutil.TIFF(binary.BigEndian, orientation)),
		testutil.JPEGSegment(0xE1, []byte("http://ns.adobe.com/xap/1.0/\x00"), []byte(testutil.XMP)),
		testutil.JPEGSegment(0xFE, []byte("SECRET-COMMENT")),
		testutil.JPEGSegment(0xED, []byte("Photoshop 3.0\x00SECRET-IPTC")),
	}, nil)...), plain[2:]...)
}

// TestSmallEdge: a mesh whose edge has small limits and takes Telegram
// updates by webhook. Announcing on each store, by two announcers at once:
// announce.TestLifecycle.
func TestSmallEdge(t *testing.T) {
	tg := telegramtest.Start(t, tgToken)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	public := "https://" + lis.Addr().String()
	m := telegramMesh(t, tg, testmesh.Options{Store: storetest.Embedded(t), MaxUploadBytes: 64 << 10, HTTPSListener: lis,
		MaxUploadsPerClient: 2, UploadIdle: 500 * time.Millisecond, EdgeTelegram: edge.TelegramOptions{PublicURL: public}})
	t.Run("announces uploads", func(t *testing.T) { announcesUploads(t, m, tg, public) })
	t.Run("bot", func(t *testing.T) { bot(t, m, tg, public) })
	t.Run("one poller", func(t *testing.T) { onePoller(t, m) })
	t.Run("upload caps", func(t *testing.T) { uploadCaps(t, m) })
}

// announcesUploads: a phone's photo is stored, served and announced once
// in chat 42 as imaging.Inspect keeps it (its own tests), the text and the
// post's link as caption.
func announcesUploads(t *testing.T, m *testmesh.Mesh, tg *telegramtest.Server, public string) {
	rich := richJPEG(t, 6)
	want, err := imaging.Inspect(rich, imaging.DefaultLimits())
	if err != nil || len(want.Removed) == 0 {
		t.Fatalf("Inspect: %v, removed %v: the fixture should carry metadata", err, want.Removed)
	}
	testutil.NoSecrets(t, want.Data, "SECRET", "ns.adobe.com/xap", "xmpmeta")
	uploadPhoto(t, m, "harbour at dawn", testutil.Photo("IMG_0001.JPG", "image/jpeg", rich))
	p := newest(t, m)[0]
	_, dbCopy, err := m.Store.ImageData(t.Context(), mustID(t, p.Image.ID))
	resp, body := get(t, m, "/storage/"+p.Image.ID)
	if resp.StatusCode != 200 || body != string(want.Data) || !bytes.Equal(onDisk(m, p.Image.ID), want.Data) || err != nil || !bytes.Equal(dbCopy, want.Data) {
		t.Fatalf("GET /storage/%s: %d, %d bytes; the file on disk or the database copy (%v) differ; want the %d bytes Inspect keeps",
			p.Image.ID, resp.StatusCode, len(body), err, len(want.Data))
	}
	// Orientation 6 turns the 64x48 photo: the page reserves 48x64 for it.
	if p.Image.Width != 48 || p.Image.Height != 64 {
		t.Errorf("turned photo listed as %dx%d, want 48x64 (as displayed)", p.Image.Width, p.Image.Height)
	}
	c := waitSent(t, tg, 5*time.Second, announceChat, func(c telegramtest.Call) bool { return c.Method == "sendPhoto" })
	if c.Params["caption"] != "harbour at dawn\n\n"+public+"/posts/"+p.ID {
		t.Errorf("caption %q, want the text and the post's link", c.Params["caption"])
	}
	if !bytes.Equal(c.Files["photo"].Data, want.Data) {
		t.Error("the announced photo is not the stored one")
	}
	// Once, though both replicas run an announcer; the counter follows the record.
	var rec store.AnnouncementRecord
	testutil.Eventually(t, 10*time.Second, "announcement sent", func() bool {
		var err error
		rec, err = m.Store.GetAnnouncement(t.Context(), mustID(t, p.ID))
		return err == nil && rec.State == store.AnnouncementSent
	})
	if n := len(tg.Sent()); n != 1 || rec.MessageID != int64(c.MessageID) {
		t.Errorf("%d messages sent, record %+v; want one, recorded as message %d", n, rec, c.MessageID)
	}
	waitMetric(t, "extagram_telegram_announcements_sent_total", 1, m.Metrics["feed-1"], m.Metrics["feed-2"])
}

// bot: the edge sets its webhook with a secret (calls without it change
// nothing), takes photos from it and answers commands.
func bot(t *testing.T, m *testmesh.Mesh, tg *telegramtest.Server, public string) {
	testutil.Eventually(t, 10*time.Second, "webhook set", func() bool { u, _ := tg.Webhook(); return u != "" })
	hook, secret := tg.Webhook()
	if hook != public+"/telegram/webhook" || secret == "" || strings.Contains(secret, tgToken) {
		t.Fatalf("webhook %q with secret %q", hook, secret)
	}
	before, sent := snap(t, m), len(tg.Sent())
	update := []byte(`{"update_id": 1, "message": {"message_id": 1, "date": 1, "chat": {"id": 7, "type": "private"}, "text": "/start"}}`)
	for _, h := range [][]string{nil, {"X-Telegram-Bot-Api-Secret-Token", "wrong-secret"}, {"X-Telegram-Bot-Api-Secret-Token", secret + "x"}} {
		if resp, _ := send(t, m, http.MethodPost, "/telegram/webhook", update, append(h, "Content-Type", "application/json")...); resp.StatusCode != 401 {
			t.Errorf("webhook with %q: %d, want 401", h, resp.StatusCode)
		}
	}
	if before.unchanged(t, m); len(tg.Sent()) != sent {
		t.Errorf("a refused webhook call sent %d messages", len(tg.Sent())-sent)
	}
	// Photos from the allowed chat become posts; others are refused with
	// the web page's message, or as from a chat not allowed.
	reply, p := replyTo(t, tg, tg.UserPhoto(allowedChat, allowedChat, testutil.PNG(t, 40, 30), "from my phone")), newest(t, m)[0]
	if reply != "Posted: "+public+"/posts/"+p.ID || p.Text != "from my phone" || p.Image == nil || p.Image.Width != 40 {
		t.Errorf("reply %q, newest post %+v; want the photo from Telegram and its link", reply, p)
	}
	replyTo(t, tg, tg.UserPhoto(allowedChat, allowedChat, testutil.PNG(t, 20, 20), ""))
	if p := newest(t, m)[0]; p.Text != "Photo sent from Telegram" {
		t.Errorf("a photo without caption became %q", p.Text)
	}
	// Refused, as documents: nothing stored, and no file fetched but for the
	// one that does not say its size, which is stopped at the limit as read.
	data := make([]byte, 64<<10+1)
	_, _ = rand.Read(data)
	big, notes := testutil.Photo("big.jpg", "image/jpeg", data), pngFile("notes.png", []byte("just some notes, not a picture\n"))
	for _, c := range []struct {
		name    string
		chat    int64
		file    *testutil.File
		sized   bool
		want    string // "": the web form's message for the file
		fetches int
	}{
		{"not allowed", forbiddenChat, pngFile("a.png", testutil.PNG(t, 40, 30)), true, "This chat may not post to Extagram. Ask the site's operator to allow chat id 8.", 0},
		{"not an image", allowedChat, notes, true, "", 1},
		{"too large", allowedChat, big, true, "", 0},
		{"too large, size not said", allowedChat, big, false, "", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.want == "" {
				_, page := post(t, m, newForm(t, "compare", c.file))
				g := errorRE.FindStringSubmatch(page)
				if g == nil {
					t.Fatalf("the web form shows no message for %s", c.name)
				}
				c.want = html.UnescapeString(g[1])
			}
			before, fetches := snap(t, m), len(tg.Calls("getFile"))
			if reply := replyTo(t, tg, tg.UserFile(c.chat, c.chat, c.file.Name, c.file.ContentType, c.file.Data, c.sized)); reply != c.want {
				t.Errorf("reply %q, want %q", reply, c.want)
			}
			if before.unchanged(t, m); len(tg.Calls("getFile")) != fetches+c.fetches {
				t.Errorf("%d files fetched, want %d", len(tg.Calls("getFile"))-fetches, c.fetches)
			}
		})
	}
	reply = replyTo(t, tg, tg.UserText(forbiddenChat, forbiddenChat, "/start"))
	if !strings.Contains(reply, "posts photos") || !strings.Contains(reply, "id 8") || !strings.Contains(reply, "may not post") {
		t.Errorf("/start: %q", reply)
	}
	if reply = replyTo(t, tg, tg.UserText(allowedChat, allowedChat, "/help@extagram_test_bot")); !strings.Contains(reply, "64 KiB") || !strings.Contains(reply, "may post") {
		t.Errorf("/help: %q", reply)
	}
	if n := len(tg.Calls("getUpdates")); n != 0 {
		t.Errorf("%d getUpdates calls with a webhook set", n)
	}
}

// waitMetric waits for a metric's sum over urls to be want.
func waitMetric(t *testing.T, name string, want float64, urls ...string) {
	t.Helper()
	testutil.Eventually(t, 15*time.Second, fmt.Sprintf("%s = %v at %s", name, want, urls), func() bool {
		sum := 0.0
		for _, u := range urls {
			sum += testutil.Metric(t, u, name)
		}
		return sum == want
	})
}

// onePoller: of two more edges that long-poll another bot, one gets the
// updates, the other (409) takes over when it stops; each is handled once.
func onePoller(t *testing.T, m *testmesh.Mesh) {
	tg, posts := telegramtest.Start(t, tgToken), len(allPosts(t, m.Store))
	// edgeWithBot returns its metrics URL and a function that stops it. Its
	// chat is 9: this bot's message ids, and so upload keys, are chat 7's again.
	edgeWithBot := func() (string, func()) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		must(t, err)
		ml, err := net.Listen("tcp", "127.0.0.1:0")
		must(t, err)
		e, err := app.NewEdge(edge.Options{
			DataDir: t.TempDir(), HTTPSListener: lis, Logger: storetest.Logger(t), Mesh: meshtls.DefaultFiles(m.MeshDir, meshtls.Edge),
			FeedTarget: strings.Join(m.FeedAddrs, ","), UploadTarget: m.UploadAddr, BlobTarget: m.BlobAddr,
			Telegram: edge.TelegramOptions{Token: tgToken, APIURL: tg.URL, AllowedChats: []int64{9}, PollTimeout: 5 * time.Second},
		})
		must(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Serve(ctx, ml) }()
		stop := sync.OnceFunc(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("edge: %v", err)
			}
		})
		t.Cleanup(stop)
		return "http://" + ml.Addr().String() + "/metrics", stop
	}
	a, stopA := edgeWithBot()
	waitMetric(t, "extagram_telegram_polling", 1, a)
	b, _ := edgeWithBot()
	testutil.Eventually(t, 15*time.Second, "the second edge answered 409", func() bool {
		return slices.ContainsFunc(tg.Calls("getUpdates"), func(c telegramtest.Call) bool { return c.Status == http.StatusConflict })
	})
	if testutil.Metric(t, b, "extagram_telegram_polling") != 0 {
		t.Error("the second edge says it polls")
	}
	replyTo(t, tg, tg.UserPhoto(9, 9, testutil.PNG(t, 10, 10), "first"))
	waitMetric(t, `extagram_telegram_updates_total{outcome="posted"}`, 1, a)
	stopA()
	replyTo(t, tg, tg.UserPhoto(9, 9, testutil.PNG(t, 10, 10), "second"))
	waitMetric(t, `extagram_telegram_updates_total{outcome="posted"}`, 1, b)
	waitMetric(t, "extagram_telegram_polling", 1, b)
	if p, n := len(allPosts(t, m.Store))-posts, len(tg.Sent()); p != 2 || n != 2 {
		t.Errorf("%d posts and %d replies, want 2 each: each update handled once", p, n)
	}
}

// TestRateLimits: two uploads a minute from an address, scripted or from a
// same-origin browser, then 429; each Telegram user has a budget of their own.
func TestRateLimits(t *testing.T) {
	tg := telegramtest.Start(t, tgToken)
	m := telegramMesh(t, tg, testmesh.Options{Store: storetest.Embedded(t), UploadRate: 2, EdgeTelegram: edge.TelegramOptions{AllowedChats: []int64{9}}})
	f := newForm(t, "limited", pngFile("a.png", testutil.PNG(t, 8, 8)))
	curl := []string{"User-Agent", "curl/8.5.0"}
	browser := []string{"Origin", m.URL, "Sec-Fetch-Site", "same-origin", "User-Agent", "Mozilla/5.0"}
	var before snapshot
	for i, h := range [][]string{curl, browser, curl, browser, curl} {
		resp, page := post(t, m, f, h...)
		if i < 2 {
			if before = snap(t, m); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("upload %d with %q: %d\n%.500s", i, h, resp.StatusCode, page)
			}
			continue
		}
		httpRefused(t, resp, page, http.StatusTooManyRequests, "Too many posts")
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
			t.Fatalf("Retry-After %q, want 1 to 60 seconds", resp.Header.Get("Retry-After"))
		}
	}
	before.unchanged(t, m)
	for i, c := range []struct {
		chat int64
		want string
	}{{allowedChat, "Posted: "}, {allowedChat, "Posted: "}, {allowedChat, "Too many posts from you. Please wait "}, {9, "Posted: "}} {
		if reply := replyTo(t, tg, tg.UserPhoto(c.chat, c.chat, testutil.PNG(t, 10, 10), "burst")); !strings.HasPrefix(reply, c.want) {
			t.Errorf("photo %d from chat %d: %q, want %q...", i+1, c.chat, reply, c.want)
		}
	}
	if n := len(allPosts(t, m.Store)); n != 5 {
		t.Errorf("%d posts, want 5", n)
	}
}
