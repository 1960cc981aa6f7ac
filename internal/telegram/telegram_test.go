package telegram

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-telegram/bot"
)

func TestWithLink(t *testing.T) {
	link := "https://wall.example/posts/AAAAAAAAAAAAAAAAAAAAAA"
	for _, c := range []struct {
		name, text, link string
		limit            int
		want             string
	}{
		{"fits", "hello", link, CaptionLimit, "hello\n\n" + link},
		{"no link", "hello", "", CaptionLimit, "hello"},
		{"cut", strings.Repeat("a", 2000), link, 100, strings.Repeat("a", 100-2-len(link)-1) + "…\n\n" + link},
		{"no white space before the ellipsis", "aaaa bbbb", "", 6, "aaaa…"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := WithLink(c.text, c.link, c.limit); got != c.want {
				t.Errorf("WithLink = %q, want %q", got, c.want)
			}
		})
	}
	// Telegram counts UTF-16 code units: an emoji is two, and is never
	// split.
	got := WithLink(strings.Repeat("😀", 2200), link, CaptionLimit)
	if n := utf16Len(got); n > CaptionLimit || n < CaptionLimit-3 {
		t.Errorf("emoji caption is %d UTF-16 units, want just under %d", n, CaptionLimit)
	}
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "…\n\n"+link) {
		t.Errorf("emoji caption %q", got[len(got)-80:])
	}
}

func TestParseChat(t *testing.T) {
	for in, want := range map[string]any{"42": int64(42), "-1001234567890": int64(-1001234567890), " @my_wall ": "@my_wall"} {
		got, err := ParseChat(in)
		if err != nil || got != want {
			t.Errorf("ParseChat(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "@", "@bad name", "wall", "12a"} {
		if _, err := ParseChat(bad); err == nil {
			t.Errorf("ParseChat(%q) accepted", bad)
		}
	}
	ids, err := ParseChatIDs(" 7, -1001234567890,,")
	if err != nil || len(ids) != 2 || ids[0] != 7 || ids[1] != -1001234567890 {
		t.Errorf("ParseChatIDs = %v, %v", ids, err)
	}
	if ids, err := ParseChatIDs(""); err != nil || ids != nil {
		t.Errorf("ParseChatIDs(\"\") = %v, %v", ids, err)
	}
	if _, err := ParseChatIDs("7,@wall"); err == nil {
		t.Error("ParseChatIDs accepted a username")
	}
}

func TestSettings(t *testing.T) {
	for _, ok := range []string{"T", "123456:ABC-def_GHI"} {
		if err := CheckToken(ok); err != nil {
			t.Errorf("CheckToken(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "a/b", "a?b", "é", "a%2Fb"} {
		if err := CheckToken(bad); err == nil {
			t.Errorf("CheckToken(%q) accepted", bad)
		}
	}
	if u, err := ParseAPIURL(""); err != nil || u != DefaultAPIURL {
		t.Errorf("ParseAPIURL(\"\") = %q, %v", u, err)
	}
	if u, err := ParseAPIURL("http://127.0.0.1:8081/"); err != nil || u != "http://127.0.0.1:8081" {
		t.Errorf("ParseAPIURL = %q, %v", u, err)
	}
	for _, bad := range []string{"api.telegram.org", "ftp://x", "https://u:p@x", "https://x/?a=1"} {
		if _, err := ParseAPIURL(bad); err == nil {
			t.Errorf("ParseAPIURL(%q) accepted", bad)
		}
		if _, err := ParsePublicURL(bad); err == nil {
			t.Errorf("ParsePublicURL(%q) accepted", bad)
		}
	}
	if got := PostURL("https://wall.example", "abc"); got != "https://wall.example/posts/abc" {
		t.Errorf("PostURL = %q", got)
	}
	if got := PostURL("", "abc"); got != "" {
		t.Errorf("PostURL without a base = %q", got)
	}
	// The derived secret is stable for one token, differs between tokens,
	// and is what the Bot API accepts.
	a, b := WebhookSecret("", "1:a"), WebhookSecret("", "1:b")
	if a != WebhookSecret("", "1:a") || a == b || CheckWebhookSecret(a) != nil || strings.Contains(a, "1:a") {
		t.Errorf("derived secrets %q %q", a, b)
	}
	if WebhookSecret("mine", "1:a") != "mine" {
		t.Error("a configured secret is not used")
	}
	if CheckWebhookSecret("has space") == nil || CheckWebhookSecret(strings.Repeat("a", 257)) == nil {
		t.Error("CheckWebhookSecret accepted a bad secret")
	}
}

func TestRedact(t *testing.T) {
	const token = "123:SECRET"
	inner := &bot.TooManyRequestsError{Message: "too many", RetryAfter: 3}
	err := RedactToken(fmt.Errorf("GET https://api.telegram.org/bot%s/x: %w", token, inner), token)
	if strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "<token>") {
		t.Errorf("redacted: %v", err)
	}
	if d, ok := RetryAfter(err); !ok || d.Seconds() != 3 {
		t.Errorf("RetryAfter of a redacted error: %v %v", d, ok)
	}
	plain := errors.New("no token here")
	if RedactToken(plain, token) != plain || RedactToken(nil, token) != nil {
		t.Error("RedactToken changed an error without the token")
	}
}
