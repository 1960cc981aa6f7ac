package main

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// dashboard is what render reads of a Grafana dashboard.
type dashboard struct {
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit string   `json:"unit"`
			Min  *float64 `json:"min"`
			Max  *float64 `json:"max"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
}

// series is one line of a panel.
type series struct {
	name   string
	points [][2]float64 // unix seconds, value (NaN: no value)
}

type promClient struct{ url string }

var httpClient = &http.Client{Timeout: 30 * time.Second}

// queryRange runs a range query and returns its series, named by the
// target's legend format.
func (p promClient) queryRange(ctx context.Context, expr, legend string, start, end time.Time, step time.Duration) ([]series, error) {
	q := url.Values{"query": {expr}, "start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix(), 10)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/api/v1/query_range?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %q: %w", expr, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", expr, body.Error)
	}
	var out []series
	for _, r := range body.Data.Result {
		s := series{name: legendName(legend, r.Metric)}
		for _, v := range r.Values {
			t, _ := v[0].(float64)
			str, _ := v[1].(string)
			f, err := strconv.ParseFloat(str, 64)
			if err != nil {
				f = math.NaN()
			}
			s.points = append(s.points, [2]float64{t, f})
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b series) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

var legendLabel = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)

// legendName fills a Grafana legend format ({{label}}) from the labels.
func legendName(format string, labels map[string]string) string {
	if format == "" {
		var parts []string
		for k, v := range labels {
			parts = append(parts, k+"="+strconv.Quote(v))
		}
		slices.Sort(parts)
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return legendLabel.ReplaceAllStringFunc(format, func(m string) string {
		return labels[legendLabel.FindStringSubmatch(m)[1]]
	})
}

// Grafana's classic palette.
var palette = []string{"#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0", "#508642", "#CCA300", "#447EBC", "#C15C17"}

const (
	rowHeight = 30 // pixels per grid unit, as Grafana
	gap       = 8
)

// drawDashboard returns an HTML page with every panel of d drawn as SVG
// where its gridPos puts it. Stacked panels are drawn as lines.
func drawDashboard(ctx context.Context, d dashboard, prom promClient, start, end time.Time, cfg config) (string, error) {
	step := max(end.Sub(start)/300, time.Second).Truncate(time.Second)
	col := float64(cfg.width-gap) / 24
	var b strings.Builder
	height := 0
	for _, p := range d.Panels {
		height = max(height, (p.GridPos.Y+p.GridPos.H)*rowHeight)
	}
	fmt.Fprintf(&b, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>%s</title><style>
body{margin:0;background:#111217;color:#ccccdc;font:12px Inter,"Helvetica Neue",Arial,sans-serif}
header{height:40px;display:flex;align-items:center;gap:16px;padding:0 %dpx;font-size:16px;border-bottom:1px solid #2c3235}
header small{color:#8e8e99;font-size:12px}
.grid{position:relative;height:%dpx;margin:%dpx 0}
.panel,.row{position:absolute;box-sizing:border-box}
.panel{background:#181b1f;border:1px solid #2c3235;border-radius:2px}
.panel h2{margin:0;padding:6px 8px 0;font-size:13px;font-weight:500;color:#ccccdc}
.row h2{margin:6px 0 0;font-size:14px;font-weight:500;color:#ccccdc}
.legend{position:absolute;left:8px;right:8px;bottom:4px;display:flex;flex-wrap:wrap;gap:2px 12px;font-size:11px;color:#ccccdc}
.legend i{display:inline-block;width:12px;height:3px;margin-right:5px;vertical-align:middle}
svg text{fill:#8e8e99;font-size:10px}
</style></head><body><header>%s <small>%s to %s, from Prometheus</small></header><div class="grid">`,
		html.EscapeString(d.Title), gap, height, gap, html.EscapeString(d.Title), start.Format("2006-01-02 15:04"), end.Format("15:04 MST"))
	for _, p := range d.Panels {
		x := float64(gap) + float64(p.GridPos.X)*col
		y := p.GridPos.Y * rowHeight
		w := float64(p.GridPos.W)*col - gap
		h := p.GridPos.H*rowHeight - gap
		if p.Type == "row" {
			fmt.Fprintf(&b, `<div class="row" style="left:%.0fpx;top:%dpx;width:%.0fpx;height:%dpx"><h2>%s</h2></div>`, x, y, w, h, html.EscapeString(p.Title))
			continue
		}
		var all []series
		for _, t := range p.Targets {
			expr := strings.ReplaceAll(t.Expr, "$__rate_interval", model(cfg.rateInterval))
			s, err := prom.queryRange(ctx, expr, t.LegendFormat, start, end, step)
			if err != nil {
				return "", fmt.Errorf("panel %q: %w", p.Title, err)
			}
			all = append(all, s...)
		}
		fmt.Fprintf(&b, `<div class="panel" style="left:%.0fpx;top:%dpx;width:%.0fpx;height:%dpx"><h2>%s</h2>`, x, y, w, h, html.EscapeString(p.Title))
		b.WriteString(plot(p, all, start, end, w, float64(h)))
		b.WriteString(`<div class="legend">`)
		for i, s := range all {
			fmt.Fprintf(&b, `<span><i style="background:%s"></i>%s</span>`, palette[i%len(palette)], html.EscapeString(s.name))
		}
		if len(all) == 0 {
			b.WriteString(`<span>No data</span>`)
		}
		b.WriteString(`</div></div>`)
	}
	b.WriteString(`</div></body></html>`)
	return b.String(), nil
}

// model writes d as a PromQL duration.
func model(d time.Duration) string {
	if d%time.Minute == 0 {
		return strconv.Itoa(int(d/time.Minute)) + "m"
	}
	return strconv.Itoa(int(d/time.Second)) + "s"
}

// plot draws the series of a panel of width w and height h as an SVG:
// axes with the panel's unit, one polyline per series.
func plot(p panel, all []series, start, end time.Time, w, h float64) string {
	const left, top, right = 56.0, 26.0, 24.0
	// The legend's lines, wrapped as the page's flex box wraps them (about
	// 6.2 px a character at 11 px).
	legendRows, line := 1, 0.0
	for _, s := range all {
		item := 17 + 6.2*float64(len(s.name))
		if line > 0 && line+12+item > w-16 {
			legendRows, line = legendRows+1, 0
		}
		if line > 0 {
			line += 12
		}
		line += item
	}
	bottom := 20.0 + 15*float64(legendRows)
	pw, ph := w-left-right, h-top-bottom
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range all {
		for _, pt := range s.points {
			if !math.IsNaN(pt[1]) && !math.IsInf(pt[1], 0) {
				lo, hi = min(lo, pt[1]), max(hi, pt[1])
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0, 1
	}
	if d := p.FieldConfig.Defaults; d.Min != nil {
		lo = min(lo, *d.Min)
	}
	if d := p.FieldConfig.Defaults; d.Max != nil {
		hi = max(hi, *d.Max)
	}
	if hi <= lo {
		hi = lo + 1
	}
	hi = niceCeil(hi)
	t0, t1 := float64(start.Unix()), float64(end.Unix())
	px := func(t float64) float64 { return left + (t-t0)/(t1-t0)*pw }
	py := func(v float64) float64 { return top + ph - (v-lo)/(hi-lo)*ph }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%.0f" height="%.0f" style="position:absolute;left:0;top:0">`, w, h)
	for i := 0; i <= 4; i++ {
		v := lo + (hi-lo)*float64(i)/4
		y := py(v)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#2c3235"/><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`,
			left, left+pw, y, y, left-6, y+3, html.EscapeString(format(v, p.FieldConfig.Defaults.Unit)))
	}
	for i := 0; i <= 4; i++ {
		t := t0 + (t1-t0)*float64(i)/4
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, px(t), top+ph+14, time.Unix(int64(t), 0).Format("15:04:05"))
	}
	for i, s := range all {
		var path strings.Builder
		pen := false
		for _, pt := range s.points {
			if math.IsNaN(pt[1]) || math.IsInf(pt[1], 0) {
				pen = false
				continue
			}
			cmd := "L"
			if !pen {
				cmd = "M"
			}
			fmt.Fprintf(&path, "%s%.1f %.1f ", cmd, px(pt[0]), py(pt[1]))
			pen = true
		}
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.5"/>`, path.String(), palette[i%len(palette)])
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return v
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v*0.999999 {
			return m * p
		}
	}
	return 10 * p
}

// format writes v in a Grafana unit.
func format(v float64, unit string) string {
	switch unit {
	case "s":
		switch {
		case v == 0:
			return "0"
		case v < 1:
			return trim(v*1000) + " ms"
		default:
			return trim(v) + " s"
		}
	case "percentunit":
		return trim(v*100) + "%"
	case "reqps":
		return trim(v) + " req/s"
	case "ops":
		return trim(v) + " ops/s"
	}
	return trim(v)
}

func trim(v float64) string {
	switch {
	case math.Abs(v) >= 1000:
		return strconv.FormatFloat(v/1000, 'f', 1, 64) + "k"
	case v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}
