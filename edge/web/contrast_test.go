package web

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// cssDecl returns the value of prop in the rule whose selector is exactly
// selector in style.css.
func cssDecl(t *testing.T, selector, prop string) string {
	t.Helper()
	css := string(assets()["style.css"].body)
	rule := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(selector) + ` \{([^}]*)\}`).FindStringSubmatch(css)
	if rule == nil {
		t.Fatalf("style.css has no rule %q", selector)
	}
	decl := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(prop) + `:\s*([^;]+);`).FindStringSubmatch(rule[1])
	if decl == nil {
		t.Fatalf("style.css rule %q has no %s", selector, prop)
	}
	return strings.TrimSpace(decl[1])
}

func luminance(hex string) (float64, error) {
	if !regexp.MustCompile(`^#[0-9a-fA-F]{6}$`).MatchString(hex) {
		return 0, fmt.Errorf("not a #rrggbb color: %q", hex)
	}
	var l float64
	for i, w := range []float64{0.2126, 0.7152, 0.0722} {
		v, _ := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		c := float64(v) / 255
		if c <= 0.04045 {
			c /= 12.92
		} else {
			c = math.Pow((c+0.055)/1.055, 2.4)
		}
		l += w * c
	}
	return l, nil
}

// contrast is the WCAG 2 contrast ratio of two #rrggbb colors.
func contrast(t *testing.T, a, b string) float64 {
	t.Helper()
	la, err := luminance(a)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := luminance(b)
	if err != nil {
		t.Fatal(err)
	}
	return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)
}

func TestContrastFunction(t *testing.T) {
	t.Parallel()
	if c := contrast(t, "#000000", "#ffffff"); math.Abs(c-21) > 0.01 {
		t.Errorf("black on white %.2f, want 21", c)
	}
	// Why the Publish button is not the original's #0096f7.
	if c := contrast(t, "#ffffff", "#0096f7"); c >= 4.5 || c < 2.9 {
		t.Errorf("white on #0096f7 %.2f, expected about 3.0", c)
	}
}

// Text colors in style.css meet WCAG AA (4.5:1 for normal text, 3:1 for
// focus rings and other non-text marks).
func TestCSSContrast(t *testing.T) {
	t.Parallel()
	page := cssDecl(t, "body", "background-color")
	card := cssDecl(t, ".post", "background-color")
	input := cssDecl(t, `.upload input[type="text"]`, "background-color")
	tests := []struct {
		what   string
		fg, bg string
		min    float64
	}{
		{"body text", cssDecl(t, "body", "color"), page, 4.5},
		{"post text", cssDecl(t, "body", "color"), card, 4.5},
		{"links", cssDecl(t, "a", "color"), page, 4.5},
		{"Publish", cssDecl(t, ".publish", "color"), cssDecl(t, ".publish", "background-color"), 4.5},
		{"Publish hover", cssDecl(t, ".publish", "color"), cssDecl(t, ".publish:hover", "background-color"), 4.5},
		{"Remove photo", cssDecl(t, ".remove", "color"), cssDecl(t, ".remove", "background-color"), 4.5},
		{"typed text", cssDecl(t, `.upload input[type="text"]`, "color"), input, 4.5},
		{"placeholder", cssDecl(t, `.upload input[type="text"]::placeholder`, "color"), input, 4.5},
		{"error", cssDecl(t, ".error", "color"), cssDecl(t, ".error", "background-color"), 4.5},
		{"post time", cssDecl(t, ".post .meta", "color"), card, 4.5},
		{"empty feed", cssDecl(t, ".empty", "color"), page, 4.5},
		{"photo note", cssDecl(t, ".photo-note", "color"), cssDecl(t, ".bar", "background-color"), 4.5},
		{"focus ring on the bar", strings.Fields(cssDecl(t, ":focus-visible", "outline"))[2], cssDecl(t, ".bar", "background-color"), 3},
		{"focus ring on the page", strings.Fields(cssDecl(t, ":focus-visible", "outline"))[2], page, 3},
	}
	for _, tt := range tests {
		if c := contrast(t, tt.fg, tt.bg); c < tt.min {
			t.Errorf("%s: %s on %s is %.2f:1, want at least %.1f:1", tt.what, tt.fg, tt.bg, c, tt.min)
		}
	}
}

// Layout rules that keep a 360px phone free of horizontal scrolling.
func TestCSSResponsive(t *testing.T) {
	t.Parallel()
	css := string(assets()["style.css"].body)
	for _, want := range []string{"box-sizing: border-box", "max-width: 100%", "overflow-wrap: anywhere", "height: auto"} {
		if !strings.Contains(css, want) {
			t.Errorf("style.css lacks %q", want)
		}
	}
	if got := cssDecl(t, ".post", "max-width"); got != "600px" {
		t.Errorf(".post max-width %s, want 600px", got)
	}
	// The file input must stay focusable: display:none only for [hidden].
	if n := strings.Count(css, "display: none"); n != 1 || cssDecl(t, "[hidden]", "display") != "none !important" {
		t.Errorf("display: none used %d times; only [hidden] may use it", n)
	}
	if got := cssDecl(t, ".visually-hidden", "position"); got != "absolute" {
		t.Errorf(".visually-hidden position %s", got)
	}
}
