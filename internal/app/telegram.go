package app

import (
	"github.com/extagram/extagram/internal/telegram"
	"github.com/extagram/extagram/internal/telegram/announce"
)

// TelegramConfig configures the feed role's announcements of new posts in
// a Telegram chat. Without a token and a chat there are none, and the
// outbox's rows are left alone (see store.Outbox).
type TelegramConfig struct {
	// Token is the bot's token; it is never logged.
	Token string
	// APIURL is the Bot API's base URL (default telegram.DefaultAPIURL).
	APIURL string
	// Chat is the chat to announce in: a chat id or a channel's @username.
	Chat string
	// PublicURL is the site's base URL, for the posts' links.
	PublicURL string
	// Timings tunes the announcer (tests shorten them); zero values are
	// the defaults.
	Timings announce.Timings
}

// announceTelegram makes the announcer of new posts a background task of
// the feed role s, when a bot and a chat are configured.
func (s *Service) announceTelegram(cfg ServiceConfig) error {
	tc := cfg.Telegram
	if tc.Token == "" {
		return nil
	}
	if tc.Chat == "" {
		s.logger.Info("a Telegram bot is configured but no chat: new posts are not announced")
		return nil
	}
	logger := s.logger.With("service", "feed")
	client, err := telegram.New(telegram.Config{Token: tc.Token, APIURL: tc.APIURL, Logger: logger})
	if err != nil {
		return err
	}
	a, err := announce.New(announce.Config{
		Store: cfg.Store, Client: client, Chat: tc.Chat, PublicURL: tc.PublicURL,
		Logger: logger, Registry: s.reg, Timings: tc.Timings,
	})
	if err != nil {
		return err
	}
	s.background = a.Run
	return nil
}
