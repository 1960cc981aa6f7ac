package observability_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// tool returns the path of a command of Debian's prometheus or prometheus-alertmanager package; a missing
// tool skips the test, but fails it in CI (CI=true).
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil && os.Getenv("CI") == "true" {
		t.Fatalf("%s not found; install it with: apt-get install -y --no-install-recommends %s", name, pkg)
	} else if err != nil {
		t.Skipf("%s not found; install it with: apt-get install -y --no-install-recommends %s", name, pkg)
	}
	return path
}

// run runs a tool in dir and fails the test unless it succeeds.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err == nil {
		err = yaml.Unmarshal(b, v)
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestPromtool checks the configuration, the rules and their unit tests with promtool. Debian builds
// Prometheus without Kubernetes service discovery, so its promtool cannot read prometheus-kubernetes.yml;
// an upstream build checks it (TestKubernetesScrapeConfig of deploy checks it everywhere).
func TestPromtool(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	run(t, ".", promtool, "check", "config", "prometheus.yml")
	out, err := exec.Command(promtool, "check", "config", "prometheus-kubernetes.yml").CombinedOutput()
	if err != nil && !strings.Contains(string(out), "field kubernetes_sd_configs not found") {
		t.Errorf("promtool check config prometheus-kubernetes.yml: %v\n%s", err, out)
	}
	tests, _ := filepath.Glob("rules/*_test.yml")
	run(t, ".", promtool, slices.Concat([]string{"check", "rules"}, ruleFiles(t))...)
	run(t, ".", promtool, slices.Concat([]string{"test", "rules"}, tests)...)
}

// ruleFiles are the rule files, without their tests.
func ruleFiles(t *testing.T) []string {
	all, _ := filepath.Glob("rules/*.yml")
	files := slices.DeleteFunc(all, func(f string) bool { return strings.HasSuffix(f, "_test.yml") })
	if len(files) == 0 {
		t.Fatal("no rule file in rules/")
	}
	return files
}

// Every alert is tested both firing and quiet, and tells a human what is wrong and what to do, with a
// severity Alertmanager routes on.
func TestEveryAlertIsTested(t *testing.T) {
	alerts := map[string]bool{}
	for _, f := range ruleFiles(t) {
		var rf struct {
			Groups []struct {
				Rules []struct {
					Alert       string            `json:"alert"`
					Labels      map[string]string `json:"labels"`
					Annotations map[string]string `json:"annotations"`
				} `json:"rules"`
			} `json:"groups"`
		}
		readYAML(t, f, &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				alerts[r.Alert] = true
				if s := r.Labels["severity"]; s != "warning" && s != "critical" {
					t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
				}
				if len(r.Annotations["summary"]) < 10 || len(r.Annotations["description"]) < 40 {
					t.Errorf("%s: want a summary and a description that says what to check", r.Alert)
				}
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatal("no alert in rules/")
	}
	tested := map[string]map[bool]bool{} // alert, fires: tested
	tests, _ := filepath.Glob("rules/*_test.yml")
	for _, f := range tests {
		var tf struct {
			Tests []struct {
				AlertRuleTest []struct {
					Alertname string `json:"alertname"`
					ExpAlerts []any  `json:"exp_alerts"`
				} `json:"alert_rule_test"`
			} `json:"tests"`
		}
		readYAML(t, f, &tf)
		for _, tc := range tf.Tests {
			for _, a := range tc.AlertRuleTest {
				if !alerts[a.Alertname] {
					t.Errorf("%s tests %s, which no rule file defines", f, a.Alertname)
				}
				if tested[a.Alertname] == nil {
					tested[a.Alertname] = map[bool]bool{}
				}
				tested[a.Alertname][len(a.ExpAlerts) > 0] = true
			}
		}
	}
	for a := range alerts {
		if !tested[a][true] || !tested[a][false] {
			t.Errorf("%s: want promtool tests that make it fire and that check it stays quiet; fires, quiet: %v", a, tested[a])
		}
	}
}

// The Alertmanager configuration, and what Telegram shows for a firing and a resolved alert, with the
// annotations escaped for parse_mode HTML. Alertmanager 0.25 (Debian 12) has telegram_configs but not
// bot_token_file (0.26): such an amtool checks the file with the token inline instead.
func TestAlertmanagerConfig(t *testing.T) {
	amtool := tool(t, "amtool", "prometheus-alertmanager")
	raw, err := os.ReadFile("alertmanager.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := "."
	if out, _ := exec.Command(amtool, "check-config", "alertmanager.yml").CombinedOutput(); strings.Contains(string(out), "field bot_token_file not found") {
		t.Logf("this amtool predates bot_token_file; checking with bot_token instead")
		dir = t.TempDir()
		inline := regexp.MustCompile(`(?m)bot_token_file: .*$`).ReplaceAll(raw, []byte(`bot_token: "123456:placeholder"`))
		if err := os.WriteFile(filepath.Join(dir, "alertmanager.yml"), inline, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(filepath.Join(dir, "templates"), os.DirFS("templates")); err != nil {
			t.Fatal(err)
		}
	}
	run(t, dir, amtool, "check-config", "alertmanager.yml")

	labels := map[string]string{"alertname": "ExtagramNoFeedReplicaServing", "severity": "critical"}
	for status, want := range map[string][]string{
		"firing":   {"FIRING", "<b>ExtagramNoFeedReplicaServing</b>", "No feed replica is serving", "Start one &amp; check &lt;the database&gt;."},
		"resolved": {"RESOLVED", "<b>ExtagramNoFeedReplicaServing</b>", "No feed replica is serving: resolved"},
	} {
		data, _ := json.Marshal(map[string]any{
			"receiver": "telegram", "status": status, "groupLabels": map[string]string{"alertname": labels["alertname"]}, "commonLabels": labels,
			"alerts": []map[string]any{{"status": status, "labels": labels,
				"annotations": map[string]string{"summary": "No feed replica is serving", "description": "Start one & check <the database>."}}},
		})
		path := filepath.Join(t.TempDir(), "data.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		out := run(t, ".", amtool, "template", "render", "--template.glob=templates/*.tmpl",
			`--template.text={{ template "extagram.telegram" . }}`, "--template.data="+path)
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s message %q does not contain %q", status, out, w)
			}
		}
	}
}

// The dashboard's panels query the provisioned data source, lie on Grafana's 24-column grid without
// overlapping, and every query is valid PromQL (promtool checks each as a recording rule) over the metrics
// that the roles export.
func TestDashboard(t *testing.T) {
	var d struct {
		Panels []struct {
			Type       string `json:"type"`
			Title      string `json:"title"`
			GridPos    struct{ H, W, X, Y int }
			Datasource struct{ UID string }
			Targets    []struct{ Expr string }
		} `json:"panels"`
	}
	var ds struct {
		Datasources []struct{ UID, URL string } `json:"datasources"`
	}
	readYAML(t, "grafana/dashboards/extagram.json", &d)
	readYAML(t, "grafana/provisioning/datasources/prometheus.yml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Fatalf("want one data source, the profile's Prometheus: %+v", ds.Datasources)
	}
	var exprs []string
	cells := map[[2]int]string{}
	for _, p := range d.Panels {
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is off the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := cells[[2]int{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", p.Title, other, x, y)
				}
				cells[[2]int{x, y}] = p.Title
			}
		}
		if p.Type != "row" && (p.Datasource.UID != ds.Datasources[0].UID || len(p.Targets) == 0) {
			t.Errorf("panel %q: data source %q with %d queries, want %q", p.Title, p.Datasource.UID, len(p.Targets), ds.Datasources[0].UID)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	// Each panel the issue asks for.
	for _, want := range []string{"extagram_http_requests_total", "extagram_http_request_duration_seconds_bucket", "grpc_server_handled_total",
		"grpc_server_handling_seconds_bucket", `grpc_method="ListPosts"`, "extagram_feed_hedged_attempts_total",
		"extagram_feed_replica_ejections_total", `handler="upload"`, "extagram_blob_repairs_total", "extagram_telegram_announcements_pending"} {
		if !slices.ContainsFunc(exprs, func(e string) bool { return strings.Contains(e, want) }) {
			t.Errorf("no panel queries %s", want)
		}
	}
	rules := "groups:\n  - name: dashboard\n    rules:\n"
	for i, e := range exprs {
		// Grafana's $__rate_interval, as render replaces it; a JSON string is a YAML string.
		q, _ := json.Marshal(strings.ReplaceAll(e, "$__rate_interval", "1m"))
		rules += fmt.Sprintf("      - record: dashboard:query%d\n        expr: %s\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "dashboard.yml")
	if err := os.WriteFile(path, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, ".", tool(t, "promtool", "prometheus"), "check", "rules", path)
}
