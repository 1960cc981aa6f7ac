package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/extagram/extagram/internal/testutil"
	"sigs.k8s.io/yaml"
)

const obsDir = "observability"

// readYAML decodes a file as sigs.k8s.io/yaml does: through JSON, so untagged fields match keys in any case.
func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	if err := yaml.Unmarshal(readFile(t, path), v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// tool returns the path of a command of a Debian package; missing, it skips the test (fails it in CI).
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		testutil.NeedTool(t, "%s not found; install it with: apt-get install -y --no-install-recommends %s", name, pkg)
	}
	return path
}

// run runs a tool in dir and fails the test unless it succeeds.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	check(t, err == nil, "%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	return string(out)
}

// Prometheus, Alertmanager and Grafana start only with --profile observability, from pinned images, with
// read-only files of deploy/observability; Prometheus scrapes every role.
func TestComposeObservabilityProfile(t *testing.T) {
	m := loadComposeModel(t)
	obsRoot := filepath.Join(must(filepath.Abs(repoRoot)), "deploy", obsDir)
	ignored := strings.Split(string(readFile(t, obsDir+"/.gitignore")), "\n")
	var extra []string
	for name, s := range m.obs.Services {
		if _, ok := m.p.Services[name]; ok {
			check(t, len(s.Profiles) == 0, "%s is in profiles %v: the site itself needs no profile", name, s.Profiles)
			continue
		}
		extra = append(extra, name)
		_, tag, _ := strings.Cut(s.Image[strings.LastIndex(s.Image, "/")+1:], ":")
		_, onNet := s.Networks[netName]
		check(t, slices.Equal(s.Profiles, []string{"observability"}), "%s: profiles %v, want [observability]", name, s.Profiles)
		check(t, tag != "" && tag != "latest", "%s: image %q is not pinned by a tag", name, s.Image)
		check(t, onNet && s.HealthCheck != nil, "%s: want it on %s, with a health check", name, netName)
		for _, port := range s.Ports {
			check(t, port.HostIP == "127.0.0.1", "%s publishes %s:%s on every interface; bind it to 127.0.0.1", name, port.HostIP, port.Published)
		}
		for _, v := range s.Volumes {
			_, err := os.Stat(v.Source)
			check(t, v.Type != types.VolumeTypeBind || (v.ReadOnly && strings.HasPrefix(v.Source, obsRoot) && err == nil), "%s mounts %s (%v): want read-only files of deploy/observability", name, v.Source, err)
		}
		for _, sec := range s.Secrets {
			def := m.obs.Secrets[sec.Source]
			rel, _ := filepath.Rel(obsRoot, def.File)
			check(t, def.File != "" && slices.Contains(ignored, rel), "%s: secret %s from %q, want a file of deploy/observability that git ignores", name, sec.Source, def.File)
		}
	}
	slices.Sort(extra)
	check(t, slices.Equal(extra, []string{"alertmanager", "grafana", "prometheus"}), "the profile's services are %v", extra)

	// Alertmanager reads the bot's token where Compose mounts the secret (amtool checks the rest).
	var secrets []string
	for _, sec := range m.obs.Services["alertmanager"].Secrets {
		secrets = append(secrets, "/run/secrets/"+sec.Source)
	}
	var am struct {
		Receivers []struct {
			TelegramConfigs []struct {
				BotTokenFile string `json:"bot_token_file"`
			} `json:"telegram_configs"`
		}
	}
	readYAML(t, obsDir+"/alertmanager.yml", &am)
	check(t, len(am.Receivers) > 0 && len(am.Receivers[0].TelegramConfigs) > 0, "alertmanager.yml's first receiver has no telegram_configs")
	for _, r := range am.Receivers {
		for _, tc := range r.TelegramConfigs {
			check(t, slices.Contains(secrets, tc.BotTokenFile), "alertmanager.yml reads the token from %q, but the service mounts %v", tc.BotTokenFile, secrets)
		}
	}

	// Prometheus scrapes each role by the alias the edge dials, on the port of its --metrics-addr.
	var prom struct {
		ScrapeConfigs []struct {
			JobName      string `json:"job_name"`
			DNSSDConfigs []struct {
				Names []string
				Port  int
			} `json:"dns_sd_configs"`
		} `json:"scrape_configs"`
	}
	readYAML(t, obsDir+"/prometheus.yml", &prom)
	jobs := map[string][]string{}
	for _, sc := range prom.ScrapeConfigs {
		for _, d := range sc.DNSSDConfigs {
			for _, n := range d.Names {
				jobs[sc.JobName] = append(jobs[sc.JobName], n+":"+strconv.Itoa(d.Port))
			}
		}
	}
	for name, s := range m.p.Services {
		if r := role(s); slices.Contains(grpcRoles, r) {
			addr, ok := flag(s, "metrics-addr")
			aliases := s.Networks[netName].Aliases
			check(t, ok && slices.ContainsFunc(jobs[r], func(target string) bool {
				host, port, _ := strings.Cut(target, ":")
				return slices.Contains(aliases, host) && port == strconv.Itoa(addrPort(t, addr))
			}), "%s (%s, aliases %v, --metrics-addr %q) is not scraped by job %s: %v", name, r, aliases, addr, r, jobs[r])
		}
	}
}

// Prometheus in the cluster (prometheus-kubernetes.yml) keeps the pods of every gRPC role, its job named
// by their component label, which ask to be scraped on the port of their --metrics-addr.
func TestKubernetesScrapeConfig(t *testing.T) {
	var cfg struct {
		ScrapeConfigs []struct {
			RelabelConfigs []struct {
				SourceLabels  []string `json:"source_labels"`
				Regex, Action string
				TargetLabel   string `json:"target_label"`
			} `json:"relabel_configs"`
		} `json:"scrape_configs"`
	}
	readYAML(t, obsDir+"/prometheus-kubernetes.yml", &cfg)
	var jobFromComponent bool
	keptRoles := regexp.MustCompile(`^$`)
	for _, sc := range cfg.ScrapeConfigs {
		for _, rc := range sc.RelabelConfigs {
			_, err := regexp.Compile(rc.Regex)
			check(t, err == nil, "regex %q: %v", rc.Regex, err)
			if slices.Equal(rc.SourceLabels, []string{"__meta_kubernetes_pod_label_app_kubernetes_io_component"}) {
				jobFromComponent = jobFromComponent || rc.TargetLabel == "job"
				if rc.Action == "keep" {
					keptRoles = regexp.MustCompile("^(?:" + rc.Regex + ")$")
				}
			}
		}
	}
	check(t, jobFromComponent, "no relabelling names the job after app.kubernetes.io/component")
	for _, role := range grpcRoles {
		w := loadK8s(t).byRole(t, role)
		metrics, _ := flagValue(w.c.Args, "metrics-addr")
		a := w.pod.Annotations
		check(t, w.pod.Labels["app.kubernetes.io/component"] == role && keptRoles.MatchString(role), "the scrape configuration drops the %s pods", role)
		check(t, a["prometheus.io/scrape"] == "true" && a["prometheus.io/port"] == strconv.Itoa(addrPort(t, metrics)),
			"%s: the pod's annotations %v do not ask for a scrape on the --metrics-addr %s", w.key, a, metrics)
	}
}

// TestPrometheusRules: every alert is tested firing and quiet, says what is wrong and what to do, and has a
// severity to route on; promtool checks the configuration, the rules, the dashboard's queries (as recording
// rules) and the rules' unit tests. Debian's promtool lacks Kubernetes service discovery and cannot read
// prometheus-kubernetes.yml (TestKubernetesScrapeConfig checks it).
func TestPrometheusRules(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	var rules, tests []string // relative to observability/
	for _, f := range must(filepath.Glob(obsDir + "/rules/*.yml")) {
		if f = strings.TrimPrefix(f, obsDir+"/"); strings.HasSuffix(f, "_test.yml") {
			tests = append(tests, f)
		} else {
			rules = append(rules, f)
		}
	}
	tested := map[string]map[bool]bool{} // alert, fires: tested
	for _, f := range rules {
		var rf struct {
			Groups []struct {
				Rules []struct {
					Alert               string
					Labels, Annotations map[string]string
				}
			}
		}
		readYAML(t, obsDir+"/"+f, &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					tested[r.Alert] = map[bool]bool{}
					check(t, r.Labels["severity"] == "warning" || r.Labels["severity"] == "critical", "%s: severity %q, want warning or critical", r.Alert, r.Labels["severity"])
					check(t, len(r.Annotations["summary"]) >= 10 && len(r.Annotations["description"]) >= 40, "%s: want a summary and a description that says what to check", r.Alert)
				}
			}
		}
	}
	if len(tested) == 0 {
		t.Fatal("no alert in rules/")
	}
	for _, f := range tests {
		var tf struct {
			Tests []struct {
				AlertRuleTest []struct {
					Alertname string
					ExpAlerts []any `json:"exp_alerts"`
				} `json:"alert_rule_test"`
			}
		}
		readYAML(t, obsDir+"/"+f, &tf)
		for _, tc := range tf.Tests {
			for _, a := range tc.AlertRuleTest {
				if tested[a.Alertname] == nil {
					t.Errorf("%s tests %s, which no rule file defines", f, a.Alertname)
				} else {
					tested[a.Alertname][len(a.ExpAlerts) > 0] = true
				}
			}
		}
	}
	for a, fq := range tested {
		check(t, fq[true] && fq[false], "%s: want promtool tests that make it fire and that check it stays quiet; fires, quiet: %v", a, fq)
	}
	run(t, obsDir, promtool, "check", "config", "prometheus.yml")
	out, err := exec.Command(promtool, "check", "config", obsDir+"/prometheus-kubernetes.yml").CombinedOutput()
	check(t, err == nil || strings.Contains(string(out), "field kubernetes_sd_configs not found"), "promtool check config prometheus-kubernetes.yml: %v\n%s", err, out)
	run(t, obsDir, promtool, slices.Concat([]string{"check", "rules"}, rules, []string{dashboardRules(t)})...)
	run(t, obsDir, promtool, slices.Concat([]string{"test", "rules"}, tests)...)
}

// dashboardRules checks that the dashboard's panels query the provisioned data source, do not overlap on the
// 24-column grid, and query the metrics the roles export; it returns a rule file that records each query.
func dashboardRules(t *testing.T) string {
	var d struct {
		Panels []struct {
			Type, Title string
			GridPos     struct{ H, W, X, Y int }
			Datasource  struct{ UID string }
			Targets     []struct{ Expr string }
		}
	}
	var ds struct{ Datasources []struct{ UID, URL string } }
	readYAML(t, obsDir+"/grafana/dashboards/extagram.json", &d)
	readYAML(t, obsDir+"/grafana/provisioning/datasources/prometheus.yml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Fatalf("want one data source, the profile's Prometheus: %+v", ds.Datasources)
	}
	rules := "groups:\n  - name: dashboard\n    rules:\n"
	var exprs []string
	cells := map[[2]int]string{}
	for _, p := range d.Panels {
		g := p.GridPos
		check(t, g.W > 0 && g.H > 0 && g.X >= 0 && g.X+g.W <= 24, "panel %q: gridPos %+v is off the 24-column grid", p.Title, g)
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				other, ok := cells[[2]int{x, y}]
				check(t, !ok, "panels %q and %q overlap at %d,%d", p.Title, other, x, y)
				cells[[2]int{x, y}] = p.Title
			}
		}
		check(t, p.Type == "row" || (p.Datasource.UID == ds.Datasources[0].UID && len(p.Targets) > 0),
			"panel %q: data source %q with %d queries, want %q", p.Title, p.Datasource.UID, len(p.Targets), ds.Datasources[0].UID)
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
			// Grafana's $__rate_interval, as render replaces it; a JSON string is a YAML string.
			q, _ := json.Marshal(strings.ReplaceAll(tg.Expr, "$__rate_interval", "1m"))
			rules += fmt.Sprintf("      - record: dashboard:query%d\n        expr: %s\n", len(exprs), q)
		}
	}
	// Each panel the issue asks for.
	for _, want := range []string{"extagram_http_requests_total", "extagram_http_request_duration_seconds_bucket", "grpc_server_handled_total",
		"grpc_server_handling_seconds_bucket", `grpc_method="ListPosts"`, "extagram_feed_hedged_attempts_total",
		"extagram_feed_replica_ejections_total", `handler="upload"`, "extagram_blob_repairs_total", "extagram_telegram_announcements_pending"} {
		check(t, slices.ContainsFunc(exprs, func(e string) bool { return strings.Contains(e, want) }), "no panel queries %s", want)
	}
	path := filepath.Join(t.TempDir(), "dashboard.yml")
	must(0, os.WriteFile(path, []byte(rules), 0o600))
	return path
}

// amtool checks the configuration (with the token inline if it predates bot_token_file) and renders the
// Telegram message of a firing and a resolved alert, escaped for parse_mode HTML.
func TestAlertmanagerConfig(t *testing.T) {
	amtool := tool(t, "amtool", "prometheus-alertmanager")
	dir := obsDir
	if out, _ := exec.Command(amtool, "check-config", obsDir+"/alertmanager.yml").CombinedOutput(); strings.Contains(string(out), "field bot_token_file not found") {
		t.Logf("this amtool predates bot_token_file; checking with bot_token instead")
		dir = t.TempDir()
		inline := regexp.MustCompile(`(?m)bot_token_file: .*$`).ReplaceAll(readFile(t, obsDir+"/alertmanager.yml"), []byte(`bot_token: "123456:placeholder"`))
		must(0, os.WriteFile(filepath.Join(dir, "alertmanager.yml"), inline, 0o600))
		must(0, os.CopyFS(filepath.Join(dir, "templates"), os.DirFS(obsDir+"/templates")))
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
		must(0, os.WriteFile(path, data, 0o600))
		out := run(t, obsDir, amtool, "template", "render", "--template.glob=templates/*.tmpl",
			`--template.text={{ template "extagram.telegram" . }}`, "--template.data="+path)
		for _, w := range want {
			check(t, strings.Contains(out, w), "%s message %q does not contain %q", status, out, w)
		}
	}
}
