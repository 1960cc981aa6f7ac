// Package announce announces new posts in a Telegram chat, from the
// store's outbox of announcements (see store.Outbox), as the original
// design's feed servers did. Every feed replica with a bot configured runs
// an Announcer; they share the work through the outbox's claims, so each
// post is sent once: a photo post as sendPhoto with the (already stripped)
// image and the text as caption, a text post as sendMessage, both with the
// post's link.
//
// Delivery is at least once with a bounded repeat. A claim holds a post
// for a lease (Config.Lease) that the announcer extends while it sends;
// only the holder records the outcome. An announcer that dies mid-send
// (kill -9) leaves a claim whose lease runs out, and another announcer
// takes the post over: if the dead one's message had already reached
// Telegram, the post is announced twice. That is at most one repeat per
// announcer and crash, since each sends one post at a time. A graceful
// shutdown finishes the send in flight first.
//
// Failures are retried with a backoff shared by the announcer's posts (a
// Telegram outage is not one post's problem), a 429 waits the retry_after
// it names, and a post not announced within Config.MaxAge of its creation
// is marked failed, logged and counted, never tried again. Posts made
// before the bot was connected to the chat (store.Outbox.AnnounceSince)
// are skipped.
package announce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/extagram/extagram/internal/telegram"
	"github.com/extagram/extagram/store"
	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config's timings.
const (
	DefaultPoll       = 500 * time.Millisecond
	DefaultLease      = 10 * time.Second
	DefaultAttempt    = time.Minute
	DefaultMaxAge     = 24 * time.Hour
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 15 * time.Second
	// shutdownGrace is how long a send in flight may go on once the
	// announcer is asked to stop: an abandoned send may have reached
	// Telegram, and would be sent again by another replica.
	shutdownGrace = 5 * time.Second
)

// Config configures an announcer.
type Config struct {
	Store  store.Store
	Client *telegram.Client
	// Chat is where posts are announced: a chat id or a channel's
	// @username (see telegram.ParseChat).
	Chat string
	// PublicURL is the site's base URL for the posts' links; without it
	// announcements carry no link.
	PublicURL string
	Logger    *slog.Logger
	// Registry, when set, receives the announcer's metrics.
	Registry prometheus.Registerer
	Timings
}

// Timings tune an announcer; zero values are the defaults.
type Timings struct {
	// Poll is how often the outbox is looked at when nothing is due.
	Poll time.Duration
	// Lease is how long a claim holds a post without being renewed; it
	// bounds how soon another replica takes over from one that died.
	Lease time.Duration
	// Attempt bounds one send.
	Attempt time.Duration
	// MaxAge is how long after its creation a post may still be announced.
	MaxAge time.Duration
	// MinBackoff and MaxBackoff bound the pause after a failed send, which
	// doubles with each failure in a row.
	MinBackoff, MaxBackoff time.Duration
}

// Announcer sends the outbox's announcements.
type Announcer struct {
	cfg     Config
	chat    any    // chat_id for the API
	chatKey string // the chat in the store
	logger  *slog.Logger
	m       metrics
	// created is when the announcer was made: if it is the first for its
	// chat, the chat's announcements begin then.
	created time.Time

	// failures counts failed sends in a row, for the backoff.
	failures int
	// dbErr and dbErrLogged keep store errors from being logged at every
	// poll.
	dbErr       string
	dbErrLogged time.Time
}

type metrics struct {
	pending, oldest               prometheus.Gauge
	sent, failed, skipped, errors prometheus.Counter
}

// New returns an announcer; Run starts it.
func New(cfg Config) (*Announcer, error) {
	if cfg.Store == nil || cfg.Client == nil {
		return nil, errors.New("announce: no store or no bot")
	}
	chat, err := telegram.ParseChat(cfg.Chat)
	if err != nil {
		return nil, err
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&cfg.Poll, DefaultPoll}, {&cfg.Lease, DefaultLease}, {&cfg.Attempt, DefaultAttempt},
		{&cfg.MaxAge, DefaultMaxAge}, {&cfg.MinBackoff, DefaultMinBackoff}, {&cfg.MaxBackoff, DefaultMaxBackoff},
	} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &Announcer{cfg: cfg, chat: chat, logger: cfg.Logger.With("task", "telegram-announce"), created: time.Now()}
	switch c := chat.(type) {
	case int64:
		a.chatKey = strconv.FormatInt(c, 10)
	case string:
		a.chatKey = strings.ToLower(c) // usernames ignore case
	}
	a.m = metrics{
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "extagram_telegram_announcements_pending",
			Help: "Posts whose Telegram announcement is not sent yet (the same figure on every feed replica)."}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{Name: "extagram_telegram_announcements_oldest_pending_age_seconds",
			Help: "Age of the oldest post whose announcement is not sent yet; 0 when none is pending."}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "extagram_telegram_announcements_sent_total",
			Help: "Announcements this replica sent."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "extagram_telegram_announcements_failed_total",
			Help: "Announcements this replica gave up on: not sent within the time bound after the post."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "extagram_telegram_announcements_skipped_total",
			Help: "Announcements not sent because their posts were made before the bot was connected to the chat."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "extagram_telegram_announcement_errors_total",
			Help: "Sends that failed and were tried again later (Telegram unreachable, 429, 5xx, ...)."}),
	}
	if cfg.Registry != nil {
		for _, c := range []prometheus.Collector{a.m.pending, a.m.oldest, a.m.sent, a.m.failed, a.m.skipped, a.m.errors} {
			if err := cfg.Registry.Register(c); err != nil {
				return nil, fmt.Errorf("announce: register metrics: %w", err)
			}
		}
	}
	return a, nil
}

// Run announces posts until ctx ends; a send in flight then gets a short
// grace to finish, so that it is recorded rather than sent again.
func (a *Announcer) Run(ctx context.Context) {
	if a.cfg.PublicURL == "" {
		a.logger.Warn("no public URL is set: announcements will carry no link to the post")
	}
	a.logger.Info("announcing new posts in Telegram", "chat", a.chatKey)
	var since time.Time
	for {
		var err error
		if since, err = a.cfg.Store.AnnounceSince(ctx, a.chatKey, a.created); err == nil {
			break
		}
		a.storeError(err)
		if !sleep(ctx, a.cfg.Poll) {
			return
		}
	}
	swept := false
	var pauseUntil time.Time
	for ctx.Err() == nil {
		now := time.Now()
		if !swept {
			n, err := a.cfg.Store.SkipAnnouncements(ctx, since, now, "posted before the bot was connected to the chat")
			if err != nil {
				a.storeError(err)
			} else {
				swept = true
				if n > 0 {
					a.m.skipped.Add(float64(n))
					a.logger.Info("skipped the announcements of posts made before the bot was connected to the chat", "posts", n, "since", since)
				}
			}
		}
		stats, err := a.cfg.Store.AnnouncementStats(ctx)
		if err != nil {
			a.storeError(err)
			sleep(ctx, a.cfg.Poll)
			continue
		}
		a.m.pending.Set(float64(stats.Pending))
		if stats.Pending > 0 {
			a.m.oldest.Set(max(0, now.Sub(stats.OldestPending).Seconds()))
		} else {
			a.m.oldest.Set(0)
		}
		if now.Before(pauseUntil) {
			sleep(ctx, min(pauseUntil.Sub(now), a.cfg.Poll))
			continue
		}
		if stats.Pending > 0 && !stats.NextDue.After(now) {
			claimed, err := a.cfg.Store.ClaimAnnouncements(ctx, now, now.Add(a.cfg.Lease), 1)
			if err != nil {
				a.storeError(err)
				sleep(ctx, a.cfg.Poll)
				continue
			}
			if len(claimed) == 1 {
				if pause := a.deliver(ctx, claimed[0], since); pause > 0 {
					pauseUntil = time.Now().Add(pause)
				}
				continue
			}
		}
		wait := a.cfg.Poll
		if stats.Pending > 0 {
			wait = min(wait, max(stats.NextDue.Sub(now), time.Millisecond))
		}
		sleep(ctx, wait)
	}
}

// deliver sends one claimed announcement and records the outcome. It
// returns how long the announcer should pause before its next send.
func (a *Announcer) deliver(ctx context.Context, ann store.Announcement, since time.Time) (pause time.Duration) {
	log := a.logger.With("post", ann.PostID.String(), "attempt", ann.Attempts)
	now := time.Now()
	switch {
	case ann.PostedAt.Before(since):
		a.finish(ctx, log, ann, store.AnnouncementOutcome{State: store.AnnouncementSkipped, Error: "posted before the bot was connected to the chat"})
		a.m.skipped.Inc()
		return 0
	case now.Sub(ann.PostedAt) > a.cfg.MaxAge:
		why := "not announced within " + a.cfg.MaxAge.String() + " of the post"
		if ann.LastError != "" {
			why += "; last error: " + ann.LastError
		}
		a.giveUp(ctx, log, ann, why)
		return 0
	}

	// The send survives ctx for shutdownGrace, bounded by Attempt.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.Attempt)
	defer cancel()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(shutdownGrace, cancel) })
	defer stopGrace()
	stopRenew := a.renew(sctx, cancel, log, ann)
	msgID, err := a.send(sctx, ann)
	stopRenew()

	if err == nil {
		a.failures = 0
		a.finish(ctx, log, ann, store.AnnouncementOutcome{State: store.AnnouncementSent, MessageID: int64(msgID)})
		a.m.sent.Inc()
		log.Info("post announced in Telegram", "message_id", msgID)
		return 0
	}
	a.m.errors.Inc()
	if wait, ok := telegram.RetryAfter(err); ok {
		// Telegram's rate limit concerns the bot, not this post: the
		// whole announcer waits.
		pause = wait
	} else {
		a.failures++
		pause = a.backoff()
	}
	retryAt := time.Now().Add(pause)
	if retryAt.Sub(ann.PostedAt) > a.cfg.MaxAge {
		a.giveUp(ctx, log, ann, "not announced within "+a.cfg.MaxAge.String()+" of the post; last error: "+err.Error())
		return pause
	}
	log.Warn("announcement not sent; will try again", "err", err, "retry_in", pause.Round(time.Millisecond))
	a.finish(ctx, log, ann, store.AnnouncementOutcome{State: store.AnnouncementPending, RetryAt: retryAt, Error: err.Error()})
	return pause
}

func (a *Announcer) giveUp(ctx context.Context, log *slog.Logger, ann store.Announcement, why string) {
	log.Error("announcement failed: giving up", "reason", why, "posted_at", ann.PostedAt)
	a.finish(ctx, log, ann, store.AnnouncementOutcome{State: store.AnnouncementFailed, Error: why})
	a.m.failed.Inc()
}

// backoff is the pause after a.failures failures in a row, with jitter so
// that replicas do not retry in step.
func (a *Announcer) backoff() time.Duration {
	d := a.cfg.MinBackoff << min(a.failures-1, 20)
	if d <= 0 || d > a.cfg.MaxBackoff {
		d = a.cfg.MaxBackoff
	}
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// renew extends the claim's lease while the send runs. A claim found lost
// (another replica took the post after this one could not renew) cancels
// the send. It returns a function that stops renewing.
func (a *Announcer) renew(ctx context.Context, cancelSend context.CancelFunc, log *slog.Logger, ann store.Announcement) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(a.cfg.Lease / 4)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			rctx, cancel := context.WithTimeout(ctx, a.cfg.Lease/4)
			err := a.cfg.Store.RenewAnnouncement(rctx, ann, time.Now().Add(a.cfg.Lease))
			cancel()
			if errors.Is(err, store.ErrClaimLost) {
				log.Error("lost the claim on the announcement while sending it; it may be announced twice")
				cancelSend()
				return
			}
			if err != nil {
				log.Warn("could not extend the claim on the announcement", "err", err)
			}
		}
	}()
	return func() { close(done); <-finished }
}

// finish records an outcome, trying again for a while when the store
// fails: an outcome lost leaves the claim to run out, and a sent post
// would be sent again.
func (a *Announcer) finish(ctx context.Context, log *slog.Logger, ann store.Announcement, o store.AnnouncementOutcome) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.Lease)
	defer cancel()
	delay := 100 * time.Millisecond
	for {
		err := a.cfg.Store.FinishAnnouncement(fctx, ann, time.Now(), o)
		if err == nil {
			return
		}
		if errors.Is(err, store.ErrClaimLost) || fctx.Err() != nil {
			log.Error("could not record the announcement's outcome; it may be sent again", "outcome", o.State.String(), "err", err)
			return
		}
		log.Warn("recording the announcement's outcome", "err", err)
		if !sleep(fctx, delay) {
			continue // the next FinishAnnouncement reports the deadline
		}
		delay = min(2*delay, time.Second)
	}
}

// send announces the post and returns the message's id.
func (a *Announcer) send(ctx context.Context, ann store.Announcement) (int, error) {
	post, err := a.cfg.Store.GetPost(ctx, ann.PostID)
	if err != nil {
		return 0, fmt.Errorf("read the post: %w", err)
	}
	link := telegram.PostURL(a.cfg.PublicURL, post.ID.String())
	if post.Image != nil {
		im, data, err := a.cfg.Store.ImageData(ctx, post.Image.ID)
		if err != nil {
			return 0, fmt.Errorf("read the image: %w", err)
		}
		msg, err := a.cfg.Client.SendPhoto(ctx, &bot.SendPhotoParams{
			ChatID:  a.chat,
			Photo:   &models.InputFileUpload{Filename: im.ID.String() + extension(im.ContentType), Data: bytes.NewReader(data)},
			Caption: telegram.WithLink(post.Text, link, telegram.CaptionLimit),
		})
		if err == nil {
			return msg.ID, nil
		}
		if !errors.Is(err, bot.ErrorBadRequest) {
			return 0, a.cfg.Client.Redact(err)
		}
		// Telegram refuses some photos it cannot show (extreme sides,
		// say): the post is announced in words instead.
		a.logger.Warn("Telegram refused the photo; announcing the post as text", "post", post.ID.String(), "err", a.cfg.Client.Redact(err))
	}
	msg, err := a.cfg.Client.SendMessage(ctx, &bot.SendMessageParams{
		ChatID:             a.chat,
		Text:               telegram.WithLink(post.Text, link, telegram.MessageLimit),
		LinkPreviewOptions: &models.LinkPreviewOptions{IsDisabled: bot.True()},
	})
	if err != nil {
		return 0, a.cfg.Client.Redact(err)
	}
	return msg.ID, nil
}

func extension(contentType string) string {
	switch contentType {
	case "image/jpeg":
		return ".jpg"
	case "image/png":
		return ".png"
	case "image/gif":
		return ".gif"
	case "image/webp":
		return ".webp"
	}
	return ""
}

// storeError logs a store error, once per minute while it repeats.
func (a *Announcer) storeError(err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	msg := err.Error()
	if msg == a.dbErr && time.Since(a.dbErrLogged) < time.Minute {
		return
	}
	a.dbErr, a.dbErrLogged = msg, time.Now()
	a.logger.Warn("announcements: the store failed; trying again", "err", err)
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
