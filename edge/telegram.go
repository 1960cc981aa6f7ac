package edge

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/telegram"
	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/status"
)

// TelegramOptions configures the Telegram bot at the edge: a photo sent to
// the bot from an allowed chat becomes a post through UploadService, with
// every check of the web form, and the bot answers with the post's link or
// the reason the web page would give. Without a token there is no bot.
type TelegramOptions struct {
	// Token is the bot's token; it is never logged.
	Token string
	// APIURL is the Bot API's base URL (default telegram.DefaultAPIURL).
	APIURL string
	// AllowedChats are the chats whose photos are posted; others are
	// refused.
	AllowedChats []int64
	// PublicURL is the site's public base URL. With it, Telegram delivers
	// updates by webhook at PublicURL/telegram/webhook (the edge sets the
	// webhook at start-up); without it, the edges long-poll getUpdates,
	// one at a time (the Bot API answers a second poller 409 Conflict, so
	// the others stand by and one takes over when the active one stops).
	// Replies link to PublicURL/posts/ID, or to the edge's own address
	// when it listens on a specific one (as `extagram up` does).
	PublicURL string
	// WebhookSecret is the secret Telegram sends with each webhook call;
	// by default one derived from the token, so every edge agrees.
	WebhookSecret string
	// PollTimeout is how long one getUpdates call waits (default
	// telegram.DefaultPollTimeout).
	PollTimeout time.Duration
}

const (
	// updateTimeout bounds the handling of one update: fetching the photo
	// from Telegram, the upload, the reply.
	updateTimeout = 3 * time.Minute
	// pollWorkers is how many updates one edge handles at once.
	pollWorkers = 4
	// maxUpdateBytes bounds a webhook request's body.
	maxUpdateBytes = 1 << 20
	// defaultTelegramText is the post's text for a photo sent without a
	// caption: the site requires text, and it is the photo's alt text.
	defaultTelegramText = "Photo sent from Telegram"
)

// telegramBot is the edge's bot.
type telegramBot struct {
	e       *Edge
	client  *telegram.Client
	opts    TelegramOptions
	allowed map[int64]bool
	secret  string
	logger  *slog.Logger
	// linkBase is where posts' links point, once Serve knows it.
	linkBase atomic.Pointer[string]

	updates *prometheus.CounterVec
	polling prometheus.Gauge
	// active is whether this edge is the one receiving updates by long
	// polling, for logging the changes.
	active atomic.Int32
}

func newTelegramBot(e *Edge, opts TelegramOptions) (*telegramBot, error) {
	if opts.Token == "" {
		return nil, nil
	}
	if err := telegram.CheckWebhookSecret(opts.WebhookSecret); err != nil {
		return nil, err
	}
	pub, err := telegram.ParsePublicURL(opts.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	opts.PublicURL = pub
	tb := &telegramBot{
		e:       e,
		opts:    opts,
		allowed: map[int64]bool{},
		secret:  telegram.WebhookSecret(opts.WebhookSecret, opts.Token),
		logger:  e.logger.With("task", "telegram"),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "extagram_telegram_updates_total",
			Help: "Telegram updates handled by this edge, by outcome: posted, refused (the upload's checks or the rate limit), not_allowed (chat not allowed), help, ignored."}, []string{"outcome"}),
		polling: prometheus.NewGauge(prometheus.GaugeOpts{Name: "extagram_telegram_polling",
			Help: "1 while this edge is the one receiving the bot's updates by long polling."}),
	}
	for _, id := range opts.AllowedChats {
		tb.allowed[id] = true
	}
	// Until Serve knows the edge's address (a webhook call may come first).
	tb.linkBase.Store(&opts.PublicURL)
	if e.opts.Registry != nil {
		for _, c := range []prometheus.Collector{tb.updates, tb.polling} {
			if err := e.opts.Registry.Register(c); err != nil {
				return nil, fmt.Errorf("edge: register Telegram metrics: %w", err)
			}
		}
	}
	tb.client, err = telegram.New(telegram.Config{
		Token: opts.Token, APIURL: opts.APIURL, PollTimeout: opts.PollTimeout, Logger: tb.logger, OnPoll: tb.polled,
	},
		bot.WithDefaultHandler(func(ctx context.Context, _ *bot.Bot, u *models.Update) { tb.handle(ctx, u) }),
		bot.WithNotAsyncHandlers(),
		bot.WithWorkers(pollWorkers),
		bot.WithAllowedUpdates(bot.AllowedUpdates{"message"}),
	)
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	return tb, nil
}

// telegramRoutes adds the webhook's route when there is a bot.
func (e *Edge) telegramRoutes(mux *http.ServeMux) {
	if e.tg != nil {
		mux.Handle("POST "+telegram.WebhookPath, named("telegram", http.HandlerFunc(e.tg.serveWebhook)))
	}
}

// startTelegram starts receiving the bot's updates (setting the webhook,
// or long polling) until ctx ends; the returned function waits, at most
// for wait, for the updates being handled.
func (e *Edge) startTelegram(ctx context.Context, base string, wait time.Duration) (stop func()) {
	if e.tg == nil {
		return func() {}
	}
	return e.tg.start(ctx, base, wait)
}

func (tb *telegramBot) start(ctx context.Context, base string, wait time.Duration) (stop func()) {
	link := tb.opts.PublicURL
	if link == "" {
		if host, _, err := net.SplitHostPort(strings.TrimPrefix(base, "https://")); err == nil {
			if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil && !ip.IsUnspecified() {
				link = base
			}
		}
	}
	if link == "" {
		tb.logger.Warn("no public URL is set: the bot's replies will not link to the posts")
	}
	tb.linkBase.Store(&link)

	done := make(chan struct{})
	go func() {
		defer close(done)
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if me, err := tb.client.GetMe(mctx); err == nil {
			tb.logger.Info("Telegram bot", "username", "@"+me.Username, "allowed_chats", len(tb.allowed))
		}
		cancel()
		if tb.opts.PublicURL != "" {
			tb.setWebhook(ctx)
			return
		}
		// getUpdates is refused while a webhook is set.
		if !retry(ctx, tb.logger, "delete the webhook", func(ctx context.Context) error {
			_, err := tb.client.DeleteWebhook(ctx, &bot.DeleteWebhookParams{})
			return tb.client.Redact(err)
		}) {
			return
		}
		tb.logger.Info("receiving the bot's updates by long polling (one edge at a time)")
		tb.client.Start(ctx)
	}()
	return func() {
		select {
		case <-done:
		case <-time.After(wait):
			tb.logger.Warn("stopping with Telegram updates still being handled")
		}
	}
}

func (tb *telegramBot) setWebhook(ctx context.Context) {
	url := tb.opts.PublicURL + telegram.WebhookPath
	if retry(ctx, tb.logger, "set the webhook", func(ctx context.Context) error {
		_, err := tb.client.SetWebhook(ctx, &bot.SetWebhookParams{
			URL: url, SecretToken: tb.secret, AllowedUpdates: []string{"message"}, MaxConnections: 10,
		})
		return tb.client.Redact(err)
	}) {
		tb.logger.Info("receiving the bot's updates by webhook", "url", url)
	}
}

// retry runs call until it succeeds or ctx ends, with a growing pause; it
// reports whether it succeeded.
func retry(ctx context.Context, logger *slog.Logger, what string, call func(context.Context) error) bool {
	pause := time.Second
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := call(cctx)
		cancel()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		logger.Warn("Telegram: could not "+what+"; trying again", "err", err, "in", pause)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Minute)
	}
}

// polled follows how this edge's getUpdates calls end, to log and export
// whether it is the edge that receives the updates.
func (tb *telegramBot) polled(code int, err error) {
	switch {
	case code == http.StatusOK:
		if tb.active.Swap(1) != 1 {
			tb.polling.Set(1)
			tb.logger.Info("this edge now receives the bot's updates")
		}
	case code == http.StatusConflict:
		if tb.active.Swap(0) != 0 {
			tb.polling.Set(0)
			tb.logger.Info("another process receives the bot's updates; this edge stands by")
		}
	default:
		tb.active.Store(0)
		tb.polling.Set(0)
	}
}

// serveWebhook serves POST /telegram/webhook: an update from Telegram,
// which must carry the secret token. The update is handled before the
// answer, so that Telegram delivers it again if the edge fails first.
func (tb *telegramBot) serveWebhook(w http.ResponseWriter, r *http.Request) {
	got := r.Header.Get("X-Telegram-Bot-Api-Secret-Token")
	if subtle.ConstantTimeCompare([]byte(got), []byte(tb.secret)) != 1 {
		http.Error(w, "missing or wrong X-Telegram-Bot-Api-Secret-Token", http.StatusUnauthorized)
		return
	}
	var u models.Update
	if err := json.NewDecoder(io.LimitReader(r.Body, maxUpdateBytes)).Decode(&u); err != nil {
		http.Error(w, "the body is not a Telegram update", http.StatusBadRequest)
		return
	}
	tb.handle(r.Context(), &u)
	w.WriteHeader(http.StatusOK)
}

// handle handles one update. It runs on its own deadline: an edge that
// stops finishes the updates it has begun.
func (tb *telegramBot) handle(ctx context.Context, u *models.Update) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), updateTimeout)
	defer cancel()
	m := u.Message
	if m == nil {
		tb.updates.WithLabelValues("ignored").Inc()
		return
	}
	log := tb.logger.With("update", u.ID, "chat", m.Chat.ID)
	allowed := tb.allowed[m.Chat.ID]
	file := fileOf(m)
	switch cmd := command(m); {
	case cmd == "start" || cmd == "help":
		tb.reply(ctx, log, m, tb.help(m.Chat.ID, allowed))
		tb.updates.WithLabelValues("help").Inc()
	case file == nil:
		// In a group the bot only speaks when spoken to.
		if m.Chat.Type == models.ChatTypePrivate {
			text := "Send me a photo, with a caption if you like, and I will post it on Extagram. /help says more."
			if !allowed {
				text = tb.notAllowed(m.Chat.ID)
			}
			tb.reply(ctx, log, m, text)
		}
		tb.updates.WithLabelValues("ignored").Inc()
	case !allowed:
		log.Info("Telegram photo from a chat that is not allowed")
		tb.reply(ctx, log, m, tb.notAllowed(m.Chat.ID))
		tb.updates.WithLabelValues("not_allowed").Inc()
	default:
		tb.post(ctx, log, m, file)
	}
}

// incoming is the file of a message: a photo (which Telegram recompresses
// to JPEG) or a file sent as a document.
type incoming struct {
	fileID, name, mimeType string
	size                   int64
}

func fileOf(m *models.Message) *incoming {
	switch {
	case len(m.Photo) > 0:
		// The sizes come smallest first; the last is the photo as sent.
		p := m.Photo[len(m.Photo)-1]
		return &incoming{fileID: p.FileID, name: "telegram-photo.jpg", mimeType: "image/jpeg", size: int64(p.FileSize)}
	case m.Document != nil:
		d := m.Document
		return &incoming{fileID: d.FileID, name: d.FileName, mimeType: d.MimeType, size: d.FileSize}
	}
	return nil
}

// command returns the bot command a message starts with ("start" for
// "/start" or "/start@SomeBot"), or "".
func command(m *models.Message) string {
	text := strings.TrimSpace(m.Text)
	if !strings.HasPrefix(text, "/") {
		return ""
	}
	word, _, _ := strings.Cut(text[1:], " ")
	word, _, _ = strings.Cut(word, "@")
	return strings.ToLower(word)
}

// post turns the message's file into a post and answers with its link, or
// with the reason the web page would give.
func (tb *telegramBot) post(ctx context.Context, log *slog.Logger, m *models.Message, f *incoming) {
	refuse := func(msg string, attrs ...any) {
		log.Info("Telegram photo refused", append([]any{"reason", msg}, attrs...)...)
		tb.reply(ctx, log, m, msg)
		tb.updates.WithLabelValues("refused").Inc()
	}
	if lim := tb.e.lim; lim != nil {
		sender := m.Chat.ID
		if m.From != nil {
			sender = m.From.ID
		}
		if ok, wait := lim.allow("telegram:"+strconv.FormatInt(sender, 10), time.Now()); !ok {
			refuse(fmt.Sprintf("Too many posts from you. Please wait %s and try again.", wait.Round(time.Second)))
			return
		}
	}
	limit := tb.e.opts.MaxUploadBytes
	if f.size > limit {
		refuse(tooLarge(limit).msg, "bytes", f.size)
		return
	}
	const fetchFailed = "The photo could not be fetched from Telegram. Please send it again."
	file, err := tb.client.GetFile(ctx, &bot.GetFileParams{FileID: f.fileID})
	if err != nil {
		refuse(fetchFailed, "err", tb.client.Redact(err))
		return
	}
	body, err := tb.client.Download(ctx, file, limit)
	if errors.Is(err, telegram.ErrFileTooLarge) {
		refuse(tooLarge(limit).msg, "bytes", file.FileSize)
		return
	}
	if err != nil {
		refuse(fetchFailed, "err", err)
		return
	}
	defer body.Close()
	text := m.Caption
	if strings.TrimSpace(text) == "" {
		text = defaultTelegramText
	}
	// The message is the upload: an update delivered twice (a webhook
	// retried, a poller that took over) stores one post.
	key := fmt.Sprintf("telegram/%d/%d", m.Chat.ID, m.ID)
	post, err := tb.e.backends.createPost(ctx, text, key, &photoUpload{fileName: claim(f.name), contentType: claim(f.mimeType), body: body})
	if err != nil {
		if _, isStatus := status.FromError(err); !isStatus {
			// The download failed or went past the limit while the photo
			// was streamed on: nothing is stored.
			if errors.Is(err, telegram.ErrFileTooLarge) {
				refuse(tooLarge(limit).msg)
			} else {
				refuse(fetchFailed, "err", err)
			}
			return
		}
		refuse(userMessage(err), "status", HTTPStatus(err))
		return
	}
	// This edge's pages show the post at once, as after a web upload.
	tb.e.feed.posted(post.GetId())
	link := telegram.PostURL(*tb.linkBase.Load(), post.GetId())
	log.Info("post created from Telegram", "post", post.GetId())
	tb.updates.WithLabelValues("posted").Inc()
	if link == "" {
		tb.reply(ctx, log, m, "Posted on Extagram.")
		return
	}
	tb.reply(ctx, log, m, "Posted: "+link)
}

// reply answers a message in its chat.
func (tb *telegramBot) reply(ctx context.Context, log *slog.Logger, m *models.Message, text string) {
	_, err := tb.client.SendMessage(ctx, &bot.SendMessageParams{
		ChatID:             m.Chat.ID,
		Text:               text,
		ReplyParameters:    &models.ReplyParameters{MessageID: m.ID, AllowSendingWithoutReply: true},
		LinkPreviewOptions: &models.LinkPreviewOptions{IsDisabled: bot.True()},
	})
	if err != nil {
		log.Warn("Telegram reply not sent", "err", tb.client.Redact(err))
	}
}

func (tb *telegramBot) help(chat int64, allowed bool) string {
	site := "the Extagram photo wall"
	if link := *tb.linkBase.Load(); link != "" {
		site += " at " + link
	}
	may := fmt.Sprintf("This chat (id %d) may post.", chat)
	if !allowed {
		may = fmt.Sprintf("This chat (id %d) may not post: ask the site's operator to add its id to the allowed chats.", chat)
	}
	return fmt.Sprintf("This bot posts photos to %s.\n\n"+
		"Send a photo, with a caption if you like: it appears on the wall, and I answer with its link. "+
		"Photos are checked as on the website: JPEG, PNG, GIF or WebP, at most %s; location and camera details are removed.\n\n%s",
		site, contract.FormatBytes(tb.e.opts.MaxUploadBytes), may)
}

func (tb *telegramBot) notAllowed(chat int64) string {
	return fmt.Sprintf("This chat may not post to Extagram. Ask the site's operator to allow chat id %d.", chat)
}
