package observability_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// skipOrFail skips outside CI and fails in CI (CI=true), where a missing
// tool is a failure rather than a reason to skip.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// tool returns the path of a command from Debian's prometheus or
// prometheus-alertmanager package.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		skipOrFail(t, "%s not found; install it with: apt-get install -y --no-install-recommends %s", name, pkg)
	}
	return path
}

func run(t *testing.T, dir, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// ruleFiles are the rule files, without their tests.
func ruleFiles(t *testing.T) []string {
	t.Helper()
	all, _ := filepath.Glob("rules/*.yml")
	files := slices.DeleteFunc(all, func(f string) bool { return strings.HasSuffix(f, "_test.yml") })
	if len(files) == 0 {
		t.Fatal("no rule file in rules/")
	}
	return files
}

func TestPrometheusConfig(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	out, err := run(t, ".", promtool, "check", "config", "prometheus.yml")
	if err != nil {
		t.Errorf("promtool check config prometheus.yml: %v\n%s", err, out)
	}
	// Debian builds Prometheus without Kubernetes service discovery, so
	// its promtool cannot read kubernetes_sd_configs; an upstream build
	// checks the file.
	out, err = run(t, ".", promtool, "check", "config", "prometheus-kubernetes.yml")
	switch {
	case err != nil && strings.Contains(out, "field kubernetes_sd_configs not found"):
		t.Logf("this promtool has no Kubernetes service discovery; prometheus-kubernetes.yml is checked by TestKubernetesScrapeConfig only")
	case err != nil:
		t.Errorf("promtool check config prometheus-kubernetes.yml: %v\n%s", err, out)
	}
}

// The Kubernetes scrape configuration finds the pods that deploy/kubernetes
// runs: each role's pod asks to be scraped on the port of its
// --metrics-addr, and the role is the component label the relabelling
// turns into the job.
func TestKubernetesScrapeConfig(t *testing.T) {
	var cfg struct {
		ScrapeConfigs []struct {
			JobName        string `json:"job_name"`
			RelabelConfigs []struct {
				SourceLabels []string `json:"source_labels"`
				Regex        string   `json:"regex"`
				Action       string   `json:"action"`
				TargetLabel  string   `json:"target_label"`
			} `json:"relabel_configs"`
		} `json:"scrape_configs"`
	}
	var loose map[string]any // the whole file, for what the struct leaves out
	readYAML(t, "prometheus-kubernetes.yml", &loose)
	b, _ := json.Marshal(loose)
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	var jobFromComponent bool
	var keptRoles *regexp.Regexp
	for _, sc := range cfg.ScrapeConfigs {
		for _, rc := range sc.RelabelConfigs {
			if _, err := regexp.Compile(rc.Regex); err != nil {
				t.Errorf("%s: regex %q: %v", sc.JobName, rc.Regex, err)
			}
			component := slices.Equal(rc.SourceLabels, []string{"__meta_kubernetes_pod_label_app_kubernetes_io_component"})
			if component && rc.TargetLabel == "job" {
				jobFromComponent = true
			}
			if component && rc.Action == "keep" {
				keptRoles = regexp.MustCompile("^(?:" + rc.Regex + ")$")
			}
		}
	}
	if !jobFromComponent || keptRoles == nil {
		t.Fatal("no relabelling keeps the roles' pods and names the job after app.kubernetes.io/component")
	}
	// The pods of each role, as the manifests declare them.
	pod := regexp.MustCompile(`(?s)app\.kubernetes\.io/component: (\w+)\s+annotations:\s+prometheus\.io/scrape: "true"\s+prometheus\.io/port: "(\d+)"`)
	for _, role := range []string{"edge", "feed", "upload", "blob"} {
		manifest, err := os.ReadFile(filepath.Join("..", "kubernetes", role+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		m := pod.FindStringSubmatch(string(manifest))
		metrics := regexp.MustCompile(`--metrics-addr=:(\d+)`).FindStringSubmatch(string(manifest))
		switch {
		case m == nil || m[1] != role:
			t.Errorf("kubernetes/%s.yaml: the pod template has no prometheus.io/scrape and prometheus.io/port annotations", role)
		case metrics == nil || metrics[1] != m[2]:
			t.Errorf("kubernetes/%s.yaml: prometheus.io/port %s is not the --metrics-addr port %v", role, m[2], metrics)
		case !keptRoles.MatchString(role):
			t.Errorf("the scrape configuration drops the %s pods", role)
		}
	}
}

func TestRules(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	if out, err := run(t, ".", promtool, slices.Concat([]string{"check", "rules"}, ruleFiles(t))...); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	tests, _ := filepath.Glob("rules/*_test.yml")
	if out, err := run(t, ".", promtool, slices.Concat([]string{"test", "rules"}, tests)...); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Record      string            `json:"record"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

type ruleTestFile struct {
	RuleFiles          []string `json:"rule_files"`
	EvaluationInterval string   `json:"evaluation_interval"`
	Tests              []struct {
		Interval    string `json:"interval"`
		InputSeries []struct {
			Series string `json:"series"`
			Values string `json:"values"`
		} `json:"input_series"`
		AlertRuleTest []struct {
			EvalTime  string `json:"eval_time"`
			Alertname string `json:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `json:"exp_labels"`
				ExpAnnotations map[string]string `json:"exp_annotations"`
			} `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// Every alert is tested both firing and quiet, and tells a human what is
// wrong and what to do, with a severity Alertmanager routes on.
func TestEveryAlertIsTested(t *testing.T) {
	alerts := map[string]bool{}
	for _, f := range ruleFiles(t) {
		var rf ruleFile
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
	fires, quiet := map[string]bool{}, map[string]bool{}
	tests, _ := filepath.Glob("rules/*_test.yml")
	for _, f := range tests {
		var tf ruleTestFile
		readYAML(t, f, &tf)
		for _, tc := range tf.Tests {
			for _, a := range tc.AlertRuleTest {
				if !alerts[a.Alertname] {
					t.Errorf("%s tests %s, which no rule file defines", f, a.Alertname)
				}
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
				} else {
					quiet[a.Alertname] = true
				}
			}
		}
	}
	for a := range alerts {
		if !fires[a] {
			t.Errorf("%s: no promtool test makes it fire", a)
		}
		if !quiet[a] {
			t.Errorf("%s: no promtool test checks that it stays quiet", a)
		}
	}
}

// The Alertmanager configuration, with Debian's amtool. Alertmanager 0.25
// (Debian 12) has telegram_configs but not bot_token_file (0.26): with
// such an amtool the file is checked with the token inline instead.
func TestAlertmanagerConfig(t *testing.T) {
	amtool := tool(t, "amtool", "prometheus-alertmanager")
	out, err := run(t, ".", amtool, "check-config", "alertmanager.yml")
	if err != nil && strings.Contains(out, "field bot_token_file not found") {
		t.Logf("this amtool predates bot_token_file; checking with bot_token instead")
		dir := t.TempDir()
		raw, rerr := os.ReadFile("alertmanager.yml")
		if rerr != nil {
			t.Fatal(rerr)
		}
		inline := regexp.MustCompile(`(?m)bot_token_file: .*$`).ReplaceAll(raw, []byte(`bot_token: "123456:placeholder"`))
		if err := os.WriteFile(filepath.Join(dir, "alertmanager.yml"), inline, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(filepath.Join(dir, "templates"), os.DirFS("templates")); err != nil {
			t.Fatal(err)
		}
		out, err = run(t, dir, amtool, "check-config", "alertmanager.yml")
	}
	if err != nil {
		t.Fatalf("amtool check-config: %v\n%s", err, out)
	}

	// The message template: what Telegram shows for a firing and a
	// resolved alert, with the annotations escaped for parse_mode HTML.
	data := func(status string) string {
		return writeJSON(t, map[string]any{
			"receiver": "telegram", "status": status,
			"alerts": []map[string]any{{
				"status":      status,
				"labels":      map[string]string{"alertname": "ExtagramNoFeedReplicaServing", "severity": "critical"},
				"annotations": map[string]string{"summary": "No feed replica is serving", "description": "Start one & check <the database>."},
			}},
			"groupLabels":  map[string]string{"alertname": "ExtagramNoFeedReplicaServing"},
			"commonLabels": map[string]string{"alertname": "ExtagramNoFeedReplicaServing", "severity": "critical"},
		})
	}
	for status, want := range map[string][]string{
		"firing":   {"FIRING", "<b>ExtagramNoFeedReplicaServing</b>", "No feed replica is serving", "Start one &amp; check &lt;the database&gt;."},
		"resolved": {"RESOLVED", "<b>ExtagramNoFeedReplicaServing</b>", "No feed replica is serving: resolved"},
	} {
		out, err := run(t, ".", amtool, "template", "render", "--template.glob=templates/*.tmpl",
			`--template.text={{ template "extagram.telegram" . }}`, "--template.data="+data(status))
		if err != nil {
			t.Fatalf("amtool template render: %v\n%s", err, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s message %q does not contain %q", status, out, w)
			}
		}
	}
}

func writeJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "data.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Dashboard is the part of a Grafana dashboard that render and the tests
// read.
type dashboard struct {
	UID    string `json:"uid"`
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		GridPos struct {
			H, W, X, Y int
		} `json:"gridPos"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// The dashboard's panels query the provisioned data source, lie on
// Grafana's 24-column grid without overlapping, and every query is valid
// PromQL (promtool checks each as a recording rule) over metrics that the
// roles export.
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile("grafana/dashboards/extagram.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	var ds struct {
		Datasources []struct {
			UID string `json:"uid"`
			URL string `json:"url"`
		} `json:"datasources"`
	}
	b, err := os.ReadFile("grafana/provisioning/datasources/prometheus.yml")
	if err == nil {
		err = yaml.Unmarshal(b, &ds) // Grafana's fields beyond these are not checked
	}
	if err != nil {
		t.Fatal(err)
	}
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
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != ds.Datasources[0].UID || len(p.Targets) == 0 {
			t.Errorf("panel %q: data source %q with %d queries, want %q", p.Title, p.Datasource.UID, len(p.Targets), ds.Datasources[0].UID)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	// Each panel the issue asks for.
	for _, want := range []string{"extagram_http_requests_total", "extagram_http_request_duration_seconds_bucket", "grpc_server_handled_total", "grpc_server_handling_seconds_bucket",
		`grpc_method="ListPosts"`, "extagram_feed_hedged_attempts_total", "extagram_feed_replica_ejections_total", `handler="upload"`, "extagram_blob_repairs_total", "extagram_telegram_announcements_pending"} {
		if !slices.ContainsFunc(exprs, func(e string) bool { return strings.Contains(e, want) }) {
			t.Errorf("no panel queries %s", want)
		}
	}

	promtool := tool(t, "promtool", "prometheus")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		// Grafana's $__rate_interval, as render replaces it.
		e = strings.ReplaceAll(e, "$__rate_interval", "1m")
		q, _ := json.Marshal(e) // a JSON string is a YAML string
		rules.WriteString("      - record: dashboard:query" + string(rune('a'+i%26)) + "\n        expr: " + string(q) + "\n")
	}
	path := filepath.Join(t.TempDir(), "dashboard.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, ".", promtool, "check", "rules", path); err != nil {
		t.Errorf("a dashboard query is not valid PromQL: %v\n%s", err, out)
	}
}
