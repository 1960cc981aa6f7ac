package telegram

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-telegram/bot"
)

func value[T any](v T, _ error) T { return v }

func errOf[T any](f func(string) (T, error)) func(string) error {
	return func(s string) error { _, err := f(s); return err }
}

func TestSettingsAndLinks(t *testing.T) {
	badURLs := []string{"api.telegram.org", "ftp://x", "https://u:p@x", "https://x/?a=1"}
	for _, c := range []struct {
		name    string
		check   func(string) error
		ok, bad []string
	}{
		{"CheckToken", CheckToken, []string{"T", "123456:ABC-def_GHI"}, []string{"", "a b", "a/b", "a?b", "é", "a%2Fb"}},
		{"ParseChat", errOf(ParseChat), []string{"42", " @my_wall "}, []string{"", "0", "@", "@bad name", "wall", "12a"}},
		{"ParseChatIDs", errOf(ParseChatIDs), []string{"", " 7, -1,,"}, []string{"7,@wall"}},
		{"ParseAPIURL", errOf(ParseAPIURL), []string{"", "http://127.0.0.1:8081/"}, badURLs},
		{"ParsePublicURL", errOf(ParsePublicURL), []string{"", "https://wall.example"}, badURLs},
		{"CheckWebhookSecret", CheckWebhookSecret, []string{"", "A-z_09"}, []string{"has space", strings.Repeat("a", 257)}},
	} {
		for _, s := range c.ok {
			if err := c.check(s); err != nil {
				t.Errorf("%s(%q): %v", c.name, s, err)
			}
		}
		for _, s := range c.bad {
			if c.check(s) == nil {
				t.Errorf("%s(%q) accepted", c.name, s)
			}
		}
	}
	link := "https://wall.example/posts/AAAAAAAAAAAAAAAAAAAAAA"
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"ParseChat id", value(ParseChat("42")), int64(42)},
		{"ParseChat group", value(ParseChat("-1001234567890")), int64(-1001234567890)},
		{"ParseChat username", value(ParseChat(" @my_wall ")), "@my_wall"},
		{"ParseChatIDs", value(ParseChatIDs(" 7, -1001234567890,,")), []int64{7, -1001234567890}},
		{"ParseChatIDs none", value(ParseChatIDs("")), []int64(nil)},
		{"ParseAPIURL default", value(ParseAPIURL("")), DefaultAPIURL},
		{"ParseAPIURL", value(ParseAPIURL("http://127.0.0.1:8081/")), "http://127.0.0.1:8081"},
		{"PostURL", PostURL("https://wall.example", "abc"), "https://wall.example/posts/abc"},
		{"PostURL without a base", PostURL("", "abc"), ""},
		{"a configured secret", WebhookSecret("mine", "1:a"), "mine"},
		{"WithLink fits", WithLink("hello", link, CaptionLimit), "hello\n\n" + link},
		{"WithLink no link", WithLink("hello", "", CaptionLimit), "hello"},
		{"WithLink cut", WithLink(strings.Repeat("a", 2000), link, 100), strings.Repeat("a", 100-2-len(link)-1) + "…\n\n" + link},
		{"WithLink no white space before the ellipsis", WithLink("aaaa bbbb", "", 6), "aaaa…"},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	// Telegram counts UTF-16 code units: an emoji is two, never split.
	got := WithLink(strings.Repeat("😀", 2200), link, CaptionLimit)
	if n := utf16Len(got); n > CaptionLimit || n < CaptionLimit-3 {
		t.Errorf("emoji caption is %d UTF-16 units, want just under %d", n, CaptionLimit)
	}
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "…\n\n"+link) {
		t.Errorf("emoji caption %q", got[len(got)-80:])
	}
	// The derived webhook secret is stable for one token, differs between
	// tokens, and is what the Bot API accepts.
	a, b := WebhookSecret("", "1:a"), WebhookSecret("", "1:b")
	if a != WebhookSecret("", "1:a") || a == b || CheckWebhookSecret(a) != nil || strings.Contains(a, "1:a") {
		t.Errorf("derived secrets %q %q", a, b)
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
