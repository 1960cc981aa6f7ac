// Package telegram is Extagram's client of the Telegram Bot API, built on
// github.com/go-telegram/bot, and the rules its two users share: the feed
// role's announcer (internal/telegram/announce) and the edge, which turns
// photos sent to the bot into posts. It says where the API is, keeps the
// bot token out of every log line and error, parses chat settings, and
// writes a post's link and caption. It builds only on the standard library,
// the bot library and internal/contract, so that the edge may use it.
package telegram

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
)

// DefaultAPIURL is the Bot API's base URL.
const DefaultAPIURL = "https://api.telegram.org"

// Telegram's limits on what a message carries, in UTF-16 code units.
const (
	CaptionLimit = 1024
	MessageLimit = 4096
)

// DefaultPollTimeout is how long one getUpdates call waits for updates.
const DefaultPollTimeout = 25 * time.Second

// requestTimeout bounds every call to the Bot API, a long poll or a photo
// upload included; callers set shorter deadlines of their own.
const requestTimeout = 2 * time.Minute

// Config configures a client.
type Config struct {
	// Token is the bot's token from BotFather. It is a secret: it is never
	// logged, and errors have it replaced.
	Token string
	// APIURL is the Bot API's base URL (DefaultAPIURL when empty); tests
	// point it at a stand-in.
	APIURL string
	// PollTimeout is how long one getUpdates call waits (default
	// DefaultPollTimeout).
	PollTimeout time.Duration
	Logger      *slog.Logger
	// OnPoll, when set, is told how each getUpdates call ended: the HTTP
	// status (409 when another process polls), or the error.
	OnPoll func(status int, err error)
}

// Client is a bot, with the token kept out of its errors.
type Client struct {
	*bot.Bot
	token  string
	apiURL string
	http   *http.Client
	logger *slog.Logger
}

// New returns a client of the bot; it makes no call (the API may be out of
// reach when a role starts). opts are passed on to the bot library, after
// the client's own.
func New(cfg Config, opts ...bot.Option) (*Client, error) {
	if err := CheckToken(cfg.Token); err != nil {
		return nil, err
	}
	api, err := ParseAPIURL(cfg.APIURL)
	if err != nil {
		return nil, err
	}
	if cfg.PollTimeout <= 0 {
		cfg.PollTimeout = DefaultPollTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = cfg.PollTimeout + 15*time.Second
	var rt http.RoundTripper = tr
	if cfg.OnPoll != nil {
		rt = pollObserver{next: tr, report: cfg.OnPoll}
	}
	c := &Client{token: cfg.Token, apiURL: api, logger: cfg.Logger,
		http: &http.Client{Timeout: requestTimeout, Transport: rt}}
	all := append([]bot.Option{
		bot.WithServerURL(api),
		bot.WithSkipGetMe(),
		bot.WithHTTPClient(cfg.PollTimeout, c.http),
		bot.WithErrorsHandler(c.libraryError),
		bot.WithDebugHandler(func(string, ...any) {}),
	}, opts...)
	b, err := bot.New(cfg.Token, all...)
	if err != nil {
		return nil, c.Redact(fmt.Errorf("telegram: %w", err))
	}
	c.Bot = b
	return c, nil
}

// pollObserver reports how getUpdates calls end.
type pollObserver struct {
	next   http.RoundTripper
	report func(status int, err error)
}

func (p pollObserver) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := p.next.RoundTrip(r)
	if strings.HasSuffix(r.URL.Path, "/getUpdates") {
		if err != nil {
			p.report(0, err)
		} else {
			p.report(resp.StatusCode, nil)
		}
	}
	return resp, err
}

// libraryError logs what the library reports from its getUpdates loop. A
// conflict is how the Bot API tells a second poller that another process
// polls already: this one stands by, which is no error.
func (c *Client) libraryError(err error) {
	err = c.Redact(err)
	if errors.Is(err, bot.ErrorConflict) {
		c.logger.Debug("telegram: another process receives the bot's updates; standing by", "err", err)
		return
	}
	c.logger.Warn("telegram: receiving updates", "err", err)
}

// CheckToken refuses a token that could not be a path segment of the API's
// URLs. (The form BotFather gives is 123456:ABC-..., but stand-ins take
// any.)
func CheckToken(token string) error {
	if token == "" {
		return errors.New("telegram: no bot token")
	}
	for _, r := range token {
		if r <= ' ' || r == 0x7f || strings.ContainsRune("/?#%\\", r) || r > 0x7e {
			return errors.New("telegram: the bot token holds a character that cannot be part of a URL path (a space, '/', '?', '#', '%' or a non-ASCII character)")
		}
	}
	return nil
}

// ParseAPIURL checks a Bot API base URL ("" is DefaultAPIURL) and returns
// it without a trailing slash.
func ParseAPIURL(s string) (string, error) {
	if s == "" {
		return DefaultAPIURL, nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("telegram: the API URL %q is not an http(s)://host[:port][/path] URL", s)
	}
	return strings.TrimRight(s, "/"), nil
}

// ParsePublicURL checks the site's public base URL ("" is none) and
// returns it without a trailing slash.
func ParsePublicURL(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("the public URL %q is not an http(s)://host[:port][/path] URL", s)
	}
	return strings.TrimRight(s, "/"), nil
}

// Redact replaces the token in err's message, keeping err for errors.Is
// and errors.As. The library hides it in the URLs of its own errors; this
// also covers file downloads and anything else that quotes a URL.
func (c *Client) Redact(err error) error {
	return RedactToken(err, c.token)
}

// RedactToken replaces token in err's message (see Client.Redact).
func RedactToken(err error, token string) error {
	if err == nil || token == "" || !strings.Contains(err.Error(), token) {
		return err
	}
	return redacted{msg: strings.ReplaceAll(err.Error(), token, "<token>"), err: err}
}

type redacted struct {
	msg string
	err error
}

func (r redacted) Error() string { return r.msg }
func (r redacted) Unwrap() error { return r.err }

// RetryAfter returns how long the Bot API asked to wait before the next
// call (a 429 with parameters.retry_after).
func RetryAfter(err error) (time.Duration, bool) {
	var tm *bot.TooManyRequestsError
	if errors.As(err, &tm) {
		return time.Duration(max(tm.RetryAfter, 1)) * time.Second, true
	}
	return 0, false
}

// ErrFileTooLarge is returned by the reader of Download past its limit.
var ErrFileTooLarge = errors.New("telegram: the file is larger than the limit")

// Download opens a file the bot received (from GetFile), reading at most
// limit bytes: the reader fails with ErrFileTooLarge before it hands out a
// byte more.
func (c *Client) Download(ctx context.Context, f *models.File, limit int64) (io.ReadCloser, error) {
	if f == nil || f.FilePath == "" {
		return nil, errors.New("telegram: the file has no path to download it from")
	}
	if f.FileSize > limit {
		return nil, ErrFileTooLarge
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.FileDownloadLink(f), nil)
	if err != nil {
		return nil, c.Redact(fmt.Errorf("telegram: download: %w", err))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.Redact(fmt.Errorf("telegram: download: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("telegram: download: %s", resp.Status)
	}
	if resp.ContentLength > limit {
		resp.Body.Close()
		return nil, ErrFileTooLarge
	}
	return &limitedBody{body: resp.Body, left: limit, c: c}, nil
}

type limitedBody struct {
	body io.ReadCloser
	left int64
	c    *Client
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.body.Read(p)
	if int64(n) > l.left {
		return 0, ErrFileTooLarge
	}
	l.left -= int64(n)
	if err != nil && err != io.EOF {
		err = l.c.Redact(fmt.Errorf("telegram: download: %w", err))
	}
	return n, err
}

func (l *limitedBody) Close() error { return l.body.Close() }

// ParseChat parses the chat to announce in: a chat id such as
// -1001234567890 or a public channel's @username. It returns the value for
// the API's chat_id.
func ParseChat(s string) (any, error) {
	s = strings.TrimSpace(s)
	if id, err := strconv.ParseInt(s, 10, 64); err == nil && id != 0 {
		return id, nil
	}
	if len(s) > 1 && len(s) <= 100 && s[0] == '@' {
		ok := true
		for _, r := range s[1:] {
			ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_')
		}
		if ok {
			return s, nil
		}
	}
	return nil, fmt.Errorf("telegram: the chat %q is neither a chat id (such as -1001234567890) nor a channel's @username", s)
}

// ParseChatIDs parses a comma-separated list of chat ids ("" is none).
func ParseChatIDs(s string) ([]int64, error) {
	var ids []int64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		id, err := strconv.ParseInt(f, 10, 64)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("telegram: %q in the allowed chats is not a chat id (such as 123456789 or -1001234567890)", f)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// PostURL is the link to a post on the site at base ("" without a base).
func PostURL(base, postID string) string {
	if base == "" {
		return ""
	}
	return base + "/posts/" + url.PathEscape(postID)
}

// WebhookPath is where the edge receives the bot's updates.
const WebhookPath = "/telegram/webhook"

// WebhookSecret returns the secret Telegram sends with each webhook
// request: the configured one, else one derived from the bot token, so
// that every edge of one bot agrees on it without another setting.
func WebhookSecret(configured, token string) string {
	if configured != "" {
		return configured
	}
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("extagram telegram webhook secret"))
	return hex.EncodeToString(m.Sum(nil))
}

// CheckWebhookSecret checks a configured secret against the Bot API's
// rule: 1 to 256 characters of A-Z, a-z, 0-9, '_' and '-'.
func CheckWebhookSecret(s string) error {
	if s == "" {
		return nil
	}
	ok := len(s) <= 256
	for _, r := range s {
		ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}
	if !ok {
		return errors.New("telegram: the webhook secret must be 1 to 256 characters of A-Z, a-z, 0-9, '_' and '-'")
	}
	return nil
}

// WithLink returns text and link on separate lines, the text shortened
// (ending in "…") so that the whole fits limit UTF-16 code units, the unit
// in which Telegram counts. The link is never cut.
func WithLink(text, link string, limit int) string {
	sep := "\n\n"
	if link == "" {
		sep = ""
	}
	room := limit - utf16Len(sep+link)
	if utf16Len(text) > room {
		text = shorten(text, room-1) + "…"
	}
	return text + sep + link
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// shorten returns the longest prefix of s of at most n UTF-16 code units,
// cut at a rune boundary and without trailing white space.
func shorten(s string, n int) string {
	used := 0
	for i, r := range s {
		if used+utf16.RuneLen(r) > n {
			return strings.TrimRightFunc(s[:i], unicode.IsSpace)
		}
		used += utf16.RuneLen(r)
	}
	return s
}
