package hatest_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/extagram/extagram/hatest"
	"github.com/extagram/extagram/internal/telegram/telegramtest"
	"sigs.k8s.io/yaml"
)

const (
	obsDir      = "../deploy/observability"
	alertToken  = "4242:alerts-token"
	alertChatID = -1001234500042
)

// requireMonitoring returns the paths of prometheus and Alertmanager:
// skipped without them, but in CI, where they must be installed.
func requireMonitoring(t *testing.T) (prometheus, alertmanager string) {
	t.Helper()
	var missing []string
	prometheus, err := exec.LookPath("prometheus")
	if err != nil {
		missing = append(missing, "prometheus")
	}
	alertmanager, err = exec.LookPath("prometheus-alertmanager")
	if err != nil {
		if alertmanager, err = exec.LookPath("alertmanager"); err != nil {
			missing = append(missing, "prometheus-alertmanager")
		}
	}
	if len(missing) > 0 {
		msg := "%v not found; install with: apt-get install -y --no-install-recommends prometheus prometheus-alertmanager"
		if os.Getenv("CI") == "true" {
			t.Fatalf(msg, missing)
		}
		t.Skipf(msg, missing)
	}
	return prometheus, alertmanager
}

// The alert rules and Alertmanager configuration of deploy/observability,
// with the real servers: every feed replica killed, and the "no feed
// replica serving" alert reaches Telegram (the stand-in); one replica
// started again, and its resolution does.
//
// The test's copies differ from the deployed files only in time and
// place: evaluation every second, the alerts' "for" cut to 5s, Alertmanager
// grouping within a second, and the Telegram receiver pointed at the
// stand-in.
func TestAlertNoFeedReplicaServing(t *testing.T) {
	promBin, amBin := requireMonitoring(t)
	c := startCluster(t, hatest.Options{})
	tg := telegramtest.Start(t, alertToken)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	rules := filepath.Join(dir, "extagram.yml")
	writeTestFile(t, rules, shortFor(t, readTestFile(t, filepath.Join(obsDir, "rules", "extagram.yml"))))
	amConfig := filepath.Join(dir, "alertmanager.yml")
	writeTestFile(t, amConfig, alertmanagerForTest(t, amBin, dir, tg.URL))

	am, err := hatest.StartAlertmanager(ctx, amBin, dir, amConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopMonitor(t, am.Proc) })
	prom, err := hatest.StartPrometheus(ctx, hatest.PrometheusOptions{
		Bin: promBin, Dir: dir, Targets: c.MetricsTargets(), RuleFiles: []string{rules}, Alertmanager: strings.TrimPrefix(am.URL, "http://"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopMonitor(t, prom.Proc) })

	// Both replicas scraped: the alert's condition is false.
	waitQuery(ctx, t, prom, `count(up{job="feed"} == 1) == 2`)
	before := len(tg.Calls(""))

	start := time.Now()
	for _, f := range c.Feeds {
		if err := f.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	firing := waitMessage(ctx, t, tg, before, "FIRING", "ExtagramNoFeedReplicaServing")
	t.Logf("firing message %s after the kill:\n%s", time.Since(start).Round(time.Millisecond), firing.Params["text"])
	if !strings.Contains(firing.Params["text"], "No feed replica is serving") || firing.Params["chat_id"] != "-1001234500042" || firing.Params["parse_mode"] != "HTML" {
		t.Errorf("firing message: %v", firing.Params)
	}

	start = time.Now()
	if err := c.Feeds[0].Start(); err != nil {
		t.Fatal(err)
	}
	resolved := waitMessage(ctx, t, tg, before, "RESOLVED", "ExtagramNoFeedReplicaServing")
	t.Logf("resolved message %s after the restart:\n%s", time.Since(start).Round(time.Millisecond), resolved.Params["text"])
}

// shortFor cuts every alert's "for" to 5s.
func shortFor(t *testing.T, rules []byte) []byte {
	t.Helper()
	out := regexp.MustCompile(`(?m)^(\s+for: )\S+$`).ReplaceAll(rules, []byte("${1}5s"))
	if string(out) == string(rules) {
		t.Fatal("the rules have no for: to shorten")
	}
	return out
}

// alertmanagerForTest returns deploy/observability/alertmanager.yml with
// its timers shortened, the Telegram receiver pointed at apiURL and the
// token in a file of dir (inline for an Alertmanager before 0.26, which
// has no bot_token_file), the templates where they are.
func alertmanagerForTest(t *testing.T, bin, dir, apiURL string) []byte {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal(readTestFile(t, filepath.Join(obsDir, "alertmanager.yml")), &cfg); err != nil {
		t.Fatal(err)
	}
	route := cfg["route"].(map[string]any)
	route["group_wait"], route["group_interval"] = "1s", "1s"
	tmpl, err := filepath.Abs(filepath.Join(obsDir, "templates", "*.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	cfg["templates"] = []string{tmpl}
	tokenFile := filepath.Join(dir, "telegram-token")
	writeTestFile(t, tokenFile, []byte(alertToken))
	out, _ := exec.Command(bin, "--version").CombinedOutput()
	old := regexp.MustCompile(`version 0\.(1\d|2[0-5])\.`).Match(out)
	var receivers int
	for _, r := range cfg["receivers"].([]any) {
		for _, tc := range r.(map[string]any)["telegram_configs"].([]any) {
			tc := tc.(map[string]any)
			tc["api_url"], tc["chat_id"] = apiURL, alertChatID
			if old {
				delete(tc, "bot_token_file")
				tc["bot_token"] = alertToken
			} else {
				tc["bot_token_file"] = tokenFile
			}
			receivers++
		}
	}
	if receivers == 0 {
		t.Fatal("alertmanager.yml has no telegram_configs")
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitQuery waits until the instant query has a result.
func waitQuery(ctx context.Context, t *testing.T, prom *hatest.Prometheus, query string) {
	t.Helper()
	for {
		res, err := prom.Query(ctx, query)
		if err == nil && len(res) > 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: no result (last error %v)\n%s", query, err, prom.Log(2000))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitMessage waits for a message sent after the first skip calls whose
// text has every one of words.
func waitMessage(ctx context.Context, t *testing.T, tg *telegramtest.Server, skip int, words ...string) telegramtest.Call {
	t.Helper()
	match := func(c telegramtest.Call) bool {
		if c.Method != "sendMessage" || !c.Delivered {
			return false
		}
		for _, w := range words {
			if !strings.Contains(c.Params["text"], w) {
				return false
			}
		}
		return true
	}
	calls, err := tg.Wait(ctx, func(calls []telegramtest.Call) bool {
		for _, c := range calls[min(skip, len(calls)):] {
			if match(c) {
				return true
			}
		}
		return false
	})
	if err != nil {
		var texts []string
		for _, c := range calls {
			texts = append(texts, c.Method+": "+c.Params["text"])
		}
		t.Fatalf("no message with %q: %v; calls:\n%s", words, err, strings.Join(texts, "\n"))
	}
	for _, c := range calls[skip:] {
		if match(c) {
			return c
		}
	}
	panic("unreachable")
}

func stopMonitor(t *testing.T, p *hatest.Proc) {
	_ = p.Kill()
	if t.Failed() {
		t.Logf("%s log:\n%s", p.Name, p.Log(4000))
	}
}

func readTestFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeTestFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
