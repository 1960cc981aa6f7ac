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
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/extagram/extagram/edge"
	"github.com/extagram/extagram/internal/app"
	"github.com/extagram/extagram/internal/meshtls"
	"github.com/extagram/extagram/internal/telegram/telegramtest"
	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
	"github.com/extagram/extagram/store"
	"github.com/extagram/extagram/store/storetest"
	"github.com/go-telegram/bot/models"
)

// The Telegram integration end to end: meshes whose feed replicas announce
// new posts in chat 42 and whose edge takes photos from chat 7, against a
// stand-in for the Bot API.

const (
	tgToken       = "5151:e2e-token"
	announceChat  = "42"
	allowedChat   = 7
	forbiddenChat = 8
)

func telegramMesh(t *testing.T, st store.Store, tg *telegramtest.Server, opts testmesh.Options) *testmesh.Mesh {
	t.Helper()
	opts.Store = st
	opts.Telegram = app.TelegramConfig{Token: tgToken, APIURL: tg.URL, Chat: announceChat}
	if opts.EdgeTelegram.AllowedChats == nil {
		opts.EdgeTelegram.AllowedChats = []int64{allowedChat}
	}
	opts.EdgeTelegram.Token, opts.EdgeTelegram.APIURL = tgToken, tg.URL
	opts.EdgeTelegram.PollTimeout = 5 * time.Second
	return testmesh.Start(t, opts)
}

// waitSent waits, at most for d, for a message the bot sent to chat that
// satisfies ok, and returns it.
func waitSent(t *testing.T, tg *telegramtest.Server, d time.Duration, chat string, ok func(telegramtest.Call) bool) telegramtest.Call {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	var found telegramtest.Call
	if _, err := tg.Wait(ctx, func([]telegramtest.Call) bool {
		for _, c := range tg.Sent() {
			if c.Params["chat_id"] == chat && ok(c) {
				found = c
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("no such message to chat %s within %s; sent: %+v", chat, d, tg.Sent())
	}
	return found
}

// replyTo waits, at most 15 s, for the bot's answer to the user's message
// of update u, and returns its text.
func replyTo(t *testing.T, tg *telegramtest.Server, u models.Update) string {
	t.Helper()
	m := u.Message
	return waitSent(t, tg, 15*time.Second, strconv.FormatInt(m.Chat.ID, 10), func(c telegramtest.Call) bool {
		return strings.Contains(c.Params["reply_parameters"], `"message_id":`+strconv.Itoa(m.ID)+`,`)
	}).Params["text"]
}

// fetched reports whether the bot asked for the file of update u.
func fetched(tg *telegramtest.Server, u models.Update) bool {
	id := ""
	if m := u.Message; len(m.Photo) > 0 {
		id = m.Photo[0].FileID
	} else if m.Document != nil {
		id = m.Document.FileID
	}
	for _, c := range tg.Calls("getFile") {
		if c.Params["file_id"] == id {
			return true
		}
	}
	return false
}

var errorRE = regexp.MustCompile(`<p class="error" id="upload-error" role="alert">(.*?)</p>`)

// webRefusal uploads a file through the web form and returns the message
// the page shows.
func webRefusal(t *testing.T, m *testmesh.Mesh, name, contentType string, data []byte) string {
	t.Helper()
	body, ct := testutil.Form(t, [][2]string{{"post", "compare"}}, testutil.Photo(name, contentType, data))
	resp, page := post(t, m, body, ct)
	g := errorRE.FindStringSubmatch(page)
	if resp.StatusCode < 400 || g == nil {
		t.Fatalf("web upload of %s: %d, no message", name, resp.StatusCode)
	}
	return html.UnescapeString(g[1])
}

// richJPEG is a phone's JPEG: EXIF with an orientation, a GPS position
// and a maker note, XMP, a comment and IPTC.
func richJPEG(t *testing.T, orientation int) []byte {
	plain := testutil.JPEG(t, 64, 48)
	rich := append([]byte{0xFF, 0xD8}, bytes.Join([][]byte{
		testutil.JPEGSegment(0xE1, []byte("Exif\x00\x00"), testutil.TIFF(binary.BigEndian, orientation)),
		testutil.JPEGSegment(0xE1, []byte("http://ns.adobe.com/xap/1.0/\x00"), []byte(testutil.XMP)),
		testutil.JPEGSegment(0xFE, []byte("SECRET-COMMENT")),
		testutil.JPEGSegment(0xED, []byte("Photoshop 3.0\x00SECRET-IPTC")),
	}, nil)...)
	return append(rich, plain[2:]...)
}

// TestTelegram runs a mesh per store whose edge has a public URL, so that
// it takes its updates by webhook. Announcing a post depends on the store;
// the bot's cases run once, on the embedded store.
func TestTelegram(t *testing.T) {
	for _, s := range []struct {
		name string
		open func(testing.TB) store.Store
	}{{"mysql", storetest.MySQL}, {"embedded", storetest.Embedded}} {
		t.Run(s.name, func(t *testing.T) {
			tg := telegramtest.Start(t, tgToken)
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			public := "https://" + lis.Addr().String()
			m := telegramMesh(t, s.open(t), tg, testmesh.Options{MaxUploadBytes: 64 << 10, HTTPSListener: lis,
				EdgeTelegram: edge.TelegramOptions{PublicURL: public}})
			t.Run("announces uploads", func(t *testing.T) { announcesUploads(t, m, tg, public) })
			if s.name == "embedded" {
				t.Run("webhook", func(t *testing.T) { webhook(t, m, tg, public) })
				t.Run("photos become posts", func(t *testing.T) { photosBecomePosts(t, m, tg, public) })
			}
		})
	}
}

// announcesUploads: a photo uploaded on the site is announced once, within
// 5 s, in the configured chat: the stripped photo, the text and the post's
// link as caption. The link serves the post's page.
func announcesUploads(t *testing.T, m *testmesh.Mesh, tg *telegramtest.Server, public string) {
	uploadPhoto(t, m, "harbour at dawn", testutil.Photo("IMG_0001.JPG", "image/jpeg", richJPEG(t, 1)))
	p := newest(t, m)[0]
	link := public + "/posts/" + p.ID
	c := waitSent(t, tg, 5*time.Second, announceChat, func(c telegramtest.Call) bool { return c.Method == "sendPhoto" })
	if c.Params["caption"] != "harbour at dawn\n\n"+link {
		t.Errorf("caption %q, want the text and %s", c.Params["caption"], link)
	}
	photo := c.Files["photo"].Data
	testutil.NoSecrets(t, photo, "SECRET", "ns.adobe.com/xap", "xmpmeta")
	if bytes.Contains(photo, []byte("Exif")) || bytes.Contains(photo, []byte("xmpmeta")) {
		t.Error("the announced photo still has EXIF or XMP")
	}
	if _, served := get(t, m, "/storage/"+p.Image.ID); served != string(photo) {
		t.Error("the announced photo is not the stored one")
	}
	resp, page := get(t, m, "/posts/"+p.ID)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "harbour at dawn") || !strings.Contains(page, `src="/storage/`+p.Image.ID+`"`) {
		t.Errorf("GET %s: %d, without the post", link, resp.StatusCode)
	}
	// Once, though both replicas run an announcer, and the counter follows
	// the record.
	var rec store.AnnouncementRecord
	testutil.Eventually(t, 10*time.Second, "announcement sent", func() bool {
		var err error
		rec, err = m.Store.GetAnnouncement(t.Context(), mustID(t, p.ID))
		return err == nil && rec.State == store.AnnouncementSent
	})
	if n := len(tg.Sent()); n != 1 || rec.MessageID != int64(c.MessageID) {
		t.Errorf("%d messages sent, record %+v; want one, recorded as message %d", n, rec, c.MessageID)
	}
	waitMetric(t, 5*time.Second, "extagram_telegram_announcements_sent_total", 1, m.Metrics["feed-1"], m.Metrics["feed-2"])
}

// webhook: the edge sets the webhook at its public URL and Telegram
// delivers the updates there, with the secret: a photo becomes a post. A
// request without the secret, or with another, is refused with 401 and
// changes nothing.
func webhook(t *testing.T, m *testmesh.Mesh, tg *telegramtest.Server, public string) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := tg.Wait(ctx, func([]telegramtest.Call) bool { u, _ := tg.Webhook(); return u != "" }); err != nil {
		t.Fatal("the edge set no webhook")
	}
	hook, secret := tg.Webhook()
	if hook != public+"/telegram/webhook" || secret == "" || strings.Contains(secret, tgToken) {
		t.Fatalf("webhook %q with secret %q", hook, secret)
	}
	before, sent := snap(t, m), len(tg.Sent())
	update := []byte(`{"update_id": 1, "message": {"message_id": 1, "date": 1, "chat": {"id": 7, "type": "private"}, "text": "/start"}}`)
	for _, secret := range []string{"", "wrong-secret", secret + "x"} {
		h := []string{"Content-Type", "application/json"}
		if secret != "" {
			h = append(h, "X-Telegram-Bot-Api-Secret-Token", secret)
		}
		if resp, _ := send(t, m, http.MethodPost, "/telegram/webhook", update, h...); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("webhook with secret %q: %d, want 401", secret, resp.StatusCode)
		}
	}
	if after := snap(t, m); after != before || len(tg.Sent()) != sent {
		t.Errorf("a refused webhook call changed something: %s, %d messages", after, len(tg.Sent())-sent)
	}
	reply := replyTo(t, tg, tg.UserPhoto(allowedChat, allowedChat, testutil.PNG(t, 30, 30), "by webhook"))
	if p := newest(t, m)[0]; !strings.HasPrefix(reply, "Posted: "+public+"/posts/") || p.Text != "by webhook" {
		t.Errorf("reply %q; newest post %+v", reply, p)
	}
	if n := len(tg.Calls("getUpdates")); n != 0 {
		t.Errorf("%d getUpdates calls with a webhook set", n)
	}
}

// photosBecomePosts: photos sent to the bot from the allowed chat become
// posts, with a reply with the link; from another chat, a refusal and
// nothing stored; a file that is not an image, or over the size limit, the
// web page's own message and nothing stored; /start explains the bot.
func photosBecomePosts(t *testing.T, m *testmesh.Mesh, tg *telegramtest.Server, public string) {
	unchanged := func(t *testing.T, before snapshot) {
		t.Helper()
		if after := snap(t, m); after != before {
			t.Errorf("stored: %s, was %s", after, before)
		}
	}
	t.Run("allowed", func(t *testing.T) {
		reply := replyTo(t, tg, tg.UserPhoto(allowedChat, allowedChat, testutil.PNG(t, 40, 30), "from my phone"))
		id, ok := strings.CutPrefix(reply, "Posted: "+public+"/posts/")
		if !ok {
			t.Fatalf("reply %q, want the post's link", reply)
		}
		if p := newest(t, m)[0]; p.ID != id || p.Text != "from my phone" || p.Image == nil || p.Image.Width != 40 {
			t.Errorf("newest post %+v, want the photo from Telegram (%s)", p, id)
		}
		if resp, page := get(t, m, "/posts/"+id); resp.StatusCode != 200 || !strings.Contains(page, "from my phone") {
			t.Errorf("the reply's link: %d", resp.StatusCode)
		}
		replyTo(t, tg, tg.UserPhoto(allowedChat, allowedChat, testutil.PNG(t, 20, 20), ""))
		if p := newest(t, m)[0]; p.Text != "Photo sent from Telegram" {
			t.Errorf("a photo without caption became %q", p.Text)
		}
	})
	t.Run("not allowed", func(t *testing.T) {
		before := snap(t, m)
		u := tg.UserPhoto(forbiddenChat, forbiddenChat, testutil.PNG(t, 40, 30), "sneaky")
		if reply := replyTo(t, tg, u); !strings.Contains(reply, "may not post") || !strings.Contains(reply, "chat id 8") {
			t.Errorf("reply %q", reply)
		}
		unchanged(t, before)
		if fetched(tg, u) {
			t.Error("the photo of a chat not allowed was fetched")
		}
	})
	t.Run("not an image", func(t *testing.T) {
		data := []byte("just some notes, not a picture\n")
		want, before := webRefusal(t, m, "notes.png", "image/png", data), snap(t, m)
		if reply := replyTo(t, tg, tg.UserFile(allowedChat, allowedChat, "notes.png", "image/png", data, "notes")); reply != want {
			t.Errorf("reply %q, want the web page's %q", reply, want)
		}
		unchanged(t, before)
	})
	t.Run("too large", func(t *testing.T) {
		data := make([]byte, 64<<10+1)
		_, _ = rand.Read(data)
		want, before := webRefusal(t, m, "big.jpg", "image/jpeg", data), snap(t, m)
		u := tg.UserFile(allowedChat, allowedChat, "big.jpg", "image/jpeg", data, "big")
		if reply := replyTo(t, tg, u); reply != want {
			t.Errorf("reply %q, want the web page's %q", reply, want)
		}
		if fetched(tg, u) {
			t.Error("a file whose message says it is too large was fetched")
		}
		// A file whose message does not say its size is stopped at the
		// limit while it is read.
		msg := tg.UserMessage(allowedChat, allowedChat)
		fileID := tg.AddFile(data)
		msg.Document = &models.Document{FileID: fileID, FileUniqueID: "u" + fileID, FileName: "big.jpg", MimeType: "image/jpeg"}
		u = models.Update{Message: msg}
		u.ID = tg.PushUpdate(u)
		if reply := replyTo(t, tg, u); reply != want {
			t.Errorf("reply %q, want the web page's %q", reply, want)
		}
		unchanged(t, before)
	})
	t.Run("help", func(t *testing.T) {
		reply := replyTo(t, tg, tg.UserText(forbiddenChat, forbiddenChat, "/start"))
		if !strings.Contains(reply, "posts photos") || !strings.Contains(reply, "id 8") || !strings.Contains(reply, "may not post") {
			t.Errorf("/start: %q", reply)
		}
		reply = replyTo(t, tg, tg.UserText(allowedChat, allowedChat, "/help@extagram_test_bot"))
		if !strings.Contains(reply, "64 KiB") || !strings.Contains(reply, "may post") {
			t.Errorf("/help: %q", reply)
		}
	})
}

// extraEdge runs another edge in front of m's services, with a bot, until
// the returned function stops it; it returns the edge's metrics URL.
func extraEdge(t *testing.T, m *testmesh.Mesh, tg *telegramtest.Server) (metrics string, stop func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e, err := app.NewEdge(edge.Options{
		DataDir: t.TempDir(), HTTPSListener: lis, Logger: storetest.Logger(t),
		FeedTarget: strings.Join(m.FeedAddrs, ","), UploadTarget: m.UploadAddr, BlobTarget: m.BlobAddr,
		Mesh:     meshtls.DefaultFiles(m.MeshDir, meshtls.Edge),
		Telegram: edge.TelegramOptions{Token: tgToken, APIURL: tg.URL, AllowedChats: []int64{allowedChat}, PollTimeout: 5 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx, ml) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("edge: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return "http://" + ml.Addr().String() + "/metrics", stop
}

// waitMetric waits for a metric's sum over urls to reach want.
func waitMetric(t *testing.T, d time.Duration, name string, want float64, urls ...string) {
	t.Helper()
	testutil.Eventually(t, d, fmt.Sprintf("%s = %v at %s", name, want, urls), func() bool {
		sum := 0.0
		for _, u := range urls {
			sum += testutil.Metric(t, u, name)
		}
		return sum == want
	})
}

// TestTelegramOnePoller: without a public URL, two edges long-poll: one
// receives the updates, the other is answered 409 and stands by, and takes
// over when the first stops. Every update is handled once.
func TestTelegramOnePoller(t *testing.T) {
	tg := telegramtest.Start(t, tgToken)
	m := testmesh.Start(t, testmesh.Options{Store: storetest.Embedded(t)})
	aMetrics, stopA := extraEdge(t, m, tg)
	waitMetric(t, 15*time.Second, "extagram_telegram_polling", 1, aMetrics)
	bMetrics, _ := extraEdge(t, m, tg)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if _, err := tg.Wait(ctx, func(calls []telegramtest.Call) bool {
		for _, c := range calls {
			if c.Method == "getUpdates" && c.Status == http.StatusConflict {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal("the second edge was never answered 409")
	}
	if testutil.Metric(t, bMetrics, "extagram_telegram_polling") != 0 {
		t.Error("the second edge says it polls")
	}
	replyTo(t, tg, tg.UserPhoto(allowedChat, allowedChat, testutil.PNG(t, 10, 10), "first"))
	waitMetric(t, 15*time.Second, `extagram_telegram_updates_total{outcome="posted"}`, 1, aMetrics)
	stopA()
	replyTo(t, tg, tg.UserPhoto(allowedChat, allowedChat, testutil.PNG(t, 10, 10), "second"))
	waitMetric(t, 15*time.Second, `extagram_telegram_updates_total{outcome="posted"}`, 1, bMetrics)
	waitMetric(t, 15*time.Second, "extagram_telegram_polling", 1, bMetrics)
	if n := len(allPosts(t, m.Store)); n != 2 {
		t.Errorf("%d posts, want 2: each update handled once", n)
	}
	if n := len(tg.Sent()); n != 2 {
		t.Errorf("%d replies, want 2", n)
	}
}

// TestRateLimits: past its budget (two a minute) a web client gets 429
// with Retry-After and nothing is stored; scripted clients (curl -F: no
// Origin, no Sec-Fetch-* headers) and same-origin browsers pass CSRF
// protection. Each Telegram user has a budget of their own.
func TestRateLimits(t *testing.T) {
	tg := telegramtest.Start(t, tgToken)
	m := telegramMesh(t, storetest.Embedded(t), tg, testmesh.Options{UploadRate: 2, EdgeTelegram: edge.TelegramOptions{AllowedChats: []int64{allowedChat, 9}}})
	png := testutil.PNG(t, 8, 8)
	upload := func(text string, browser bool) (*http.Response, string) {
		body, ct := testutil.Form(t, [][2]string{{"post", text}}, pngFile("a.png", png))
		if browser {
			return post(t, m, body, ct, "Origin", m.URL, "Sec-Fetch-Site", "same-origin", "User-Agent", "Mozilla/5.0")
		}
		return post(t, m, body, ct, "User-Agent", "curl/8.5.0")
	}
	if resp, page := upload("curl style", false); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("curl-style upload: %d\n%.500s", resp.StatusCode, page)
	}
	if resp, page := upload("same-origin browser", true); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("same-origin upload: %d\n%.500s", resp.StatusCode, page)
	}
	before := snap(t, m)
	for i := range 3 {
		resp, page := upload(fmt.Sprintf("over the limit %d", i), i%2 == 0)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("upload past the limit: %d, want 429", resp.StatusCode)
		}
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
			t.Fatalf("Retry-After %q, want 1 to 60 seconds", resp.Header.Get("Retry-After"))
		}
		if !strings.Contains(page, "Too many posts") || !strings.Contains(page, `role="alert"`) {
			t.Fatalf("429 page does not explain:\n%.2000s", page)
		}
	}
	if after := snap(t, m); after != before {
		t.Fatalf("refused uploads stored something:\nbefore %s\nafter  %s", before, after)
	}

	photo := func(chat int64, text string) string {
		return replyTo(t, tg, tg.UserPhoto(chat, chat, testutil.PNG(t, 10, 10), text))
	}
	for i := range 2 {
		if reply := photo(allowedChat, "burst"); !strings.HasPrefix(reply, "Posted: ") {
			t.Fatalf("photo %d: %q", i+1, reply)
		}
	}
	if reply := photo(allowedChat, "one too many"); !strings.HasPrefix(reply, "Too many posts from you. Please wait ") {
		t.Errorf("third photo in a minute: %q", reply)
	}
	if reply := photo(9, "another user"); !strings.HasPrefix(reply, "Posted: ") {
		t.Errorf("another user: %q", reply)
	}
	if n := len(allPosts(t, m.Store)); n != 5 {
		t.Errorf("%d posts, want 5", n)
	}
}
