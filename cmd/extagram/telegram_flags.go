package main

import (
	"flag"

	"github.com/extagram/extagram/edge"
	"github.com/extagram/extagram/internal/app"
	"github.com/extagram/extagram/internal/telegram"
)

// telegramFlags are the Telegram bot's flags, on the commands that need
// them: the feed role announces new posts in --telegram-chat, the edge
// turns photos sent from --telegram-allowed-chats into posts; up does both.
type telegramFlags struct {
	token, apiURL, publicURL string
	chat                     string // feed, up
	allowedChats             string // edge, up
	webhookSecret            string // edge, up
}

func (f *telegramFlags) register(fs *flag.FlagSet, feed, edge bool) {
	fs.StringVar(&f.token, "telegram-token", "", "Telegram bot token from BotFather (prefer EXTAGRAM_TELEGRAM_TOKEN: flags show in the process list); without it nothing of Telegram runs")
	fs.StringVar(&f.apiURL, "telegram-api-url", telegram.DefaultAPIURL, "base URL of the Telegram Bot API")
	publicHelp := "the site's public base URL, e.g. https://photos.example.org, for the links to posts in Telegram"
	if edge {
		publicHelp += "; with it the edge receives the bot's updates by webhook at <public-url>/telegram/webhook, without it by long polling"
	}
	fs.StringVar(&f.publicURL, "public-url", "", publicHelp)
	if feed {
		fs.StringVar(&f.chat, "telegram-chat", "", "the chat new posts are announced in: a chat id (e.g. -1001234567890) or a channel's @username")
	}
	if edge {
		fs.StringVar(&f.allowedChats, "telegram-allowed-chats", "", "comma-separated ids of the chats whose photos sent to the bot become posts")
		fs.StringVar(&f.webhookSecret, "telegram-webhook-secret", "", "secret Telegram sends with each webhook call (A-Z, a-z, 0-9, _ and -); default: derived from the token, the same on every edge")
	}
}

// check refuses malformed settings before anything starts.
func (f *telegramFlags) check() error {
	if f.token == "" {
		return nil
	}
	if err := telegram.CheckToken(f.token); err != nil {
		return usageError{err}
	}
	if _, err := telegram.ParseAPIURL(f.apiURL); err != nil {
		return usageError{err}
	}
	if _, err := telegram.ParsePublicURL(f.publicURL); err != nil {
		return usageError{err}
	}
	if f.chat != "" {
		if _, err := telegram.ParseChat(f.chat); err != nil {
			return usageError{err}
		}
	}
	if _, err := telegram.ParseChatIDs(f.allowedChats); err != nil {
		return usageError{err}
	}
	if err := telegram.CheckWebhookSecret(f.webhookSecret); err != nil {
		return usageError{err}
	}
	return nil
}

// feed is the feed role's configuration.
func (f *telegramFlags) feed() app.TelegramConfig {
	return app.TelegramConfig{Token: f.token, APIURL: f.apiURL, Chat: f.chat, PublicURL: f.publicURL}
}

// edge is the edge's configuration (after check).
func (f *telegramFlags) edge() edge.TelegramOptions {
	ids, _ := telegram.ParseChatIDs(f.allowedChats)
	return edge.TelegramOptions{Token: f.token, APIURL: f.apiURL, AllowedChats: ids, PublicURL: f.publicURL, WebhookSecret: f.webhookSecret}
}
