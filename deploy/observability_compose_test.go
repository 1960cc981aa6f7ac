package deploy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

const obsDir = "observability"

// The observability profile: Prometheus, Alertmanager and Grafana start
// only with --profile observability, from pinned images, as hardened as
// the rest, with the files of deploy/observability; Prometheus scrapes
// every role at the name and port where it serves its metrics.
func TestComposeObservabilityProfile(t *testing.T) {
	root := must(filepath.Abs(repoRoot))
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithEnvFiles(envExample), cli.WithDotEnv,
		cli.WithResolvedPaths(true), cli.WithProfiles([]string{"observability"}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml with --profile observability: %v", err)
	}
	base := loadComposeModel(t).p
	want := []string{"alertmanager", "grafana", "prometheus"}
	var extra []string
	for name, s := range p.Services {
		if _, ok := base.Services[name]; ok {
			check(t, len(s.Profiles) == 0, "%s is in profiles %v: the site itself needs no profile", name, s.Profiles)
			continue
		}
		extra = append(extra, name)
		check(t, slices.Equal(s.Profiles, []string{"observability"}), "%s: profiles %v, want [observability]", name, s.Profiles)
		_, tag, _ := strings.Cut(s.Image[strings.LastIndex(s.Image, "/")+1:], ":")
		check(t, tag != "" && tag != "latest", "%s: image %q is not pinned by a tag", name, s.Image)
		check(t, slices.Contains(s.CapDrop, "ALL") && slices.Contains(s.SecurityOpt, "no-new-privileges:true") && s.ReadOnly && !s.Privileged,
			"%s: want cap_drop [ALL], no-new-privileges, a read-only root", name)
		check(t, s.Restart == types.RestartPolicyUnlessStopped && s.HealthCheck != nil, "%s: want restart unless-stopped and a health check", name)
		_, onNet := s.Networks[netName]
		check(t, onNet, "%s is not on %s", name, netName)
		for _, port := range s.Ports {
			check(t, port.HostIP == "127.0.0.1", "%s publishes %s:%s on every interface; bind it to 127.0.0.1", name, port.HostIP, port.Published)
		}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			check(t, v.ReadOnly && strings.HasPrefix(v.Source, filepath.Join(root, "deploy", "observability")), "%s mounts %s: want read-only files of deploy/observability", name, v.Source)
			_, err := os.Stat(v.Source)
			check(t, err == nil, "%s mounts %s: %v", name, v.Source, err)
		}
		for _, sec := range s.Secrets {
			def := p.Secrets[sec.Source]
			rel, _ := filepath.Rel(filepath.Join(root, "deploy", "observability"), def.File)
			ignored := strings.Split(string(readFile(t, obsDir+"/.gitignore")), "\n")
			check(t, def.File != "" && slices.Contains(ignored, rel), "%s: secret %s from %q, want a file of deploy/observability that git ignores", name, sec.Source, def.File)
		}
	}
	slices.Sort(extra)
	check(t, slices.Equal(extra, want), "the profile's services are %v, want %v", extra, want)

	// Alertmanager reads the token where Compose mounts the secret.
	var am struct {
		Receivers []struct {
			TelegramConfigs []struct {
				BotTokenFile string `json:"bot_token_file"`
			} `json:"telegram_configs"`
		} `json:"receivers"`
	}
	check(t, yaml.Unmarshal(readFile(t, obsDir+"/alertmanager.yml"), &am) == nil && len(am.Receivers) > 0 && len(am.Receivers[0].TelegramConfigs) > 0, "alertmanager.yml has no telegram receiver")
	var secrets []string
	for _, sec := range p.Services["alertmanager"].Secrets {
		secrets = append(secrets, "/run/secrets/"+sec.Source)
	}
	for _, r := range am.Receivers {
		for _, tc := range r.TelegramConfigs {
			check(t, slices.Contains(secrets, tc.BotTokenFile), "alertmanager.yml reads the token from %q, but the service mounts %v", tc.BotTokenFile, secrets)
		}
	}

	// Prometheus scrapes each role by the alias the edge dials, on the port
	// of its --metrics-addr.
	var prom struct {
		ScrapeConfigs []struct {
			JobName      string `json:"job_name"`
			DNSSDConfigs []struct {
				Names []string `json:"names"`
				Port  int      `json:"port"`
			} `json:"dns_sd_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readFile(t, obsDir+"/prometheus.yml"), &prom); err != nil {
		t.Fatal(err)
	}
	jobs := map[string][]string{}
	for _, sc := range prom.ScrapeConfigs {
		for _, d := range sc.DNSSDConfigs {
			for _, n := range d.Names {
				jobs[sc.JobName] = append(jobs[sc.JobName], n+":"+itoa(d.Port))
			}
		}
	}
	for name, s := range base.Services {
		r := role(s)
		if r != "edge" && r != "feed" && r != "upload" && r != "blob" {
			continue
		}
		addr, ok := flag(s, "metrics-addr")
		check(t, ok, "%s has no --metrics-addr", name)
		if !ok {
			continue
		}
		aliases := s.Networks[netName].Aliases
		check(t, slices.ContainsFunc(jobs[r], func(target string) bool {
			host, port, _ := strings.Cut(target, ":")
			return slices.Contains(aliases, host) && port == itoa(addrPort(t, addr))
		}), "%s (%s, aliases %v, metrics on %s) is not scraped by job %s: %v", name, r, aliases, addr, r, jobs[r])
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
