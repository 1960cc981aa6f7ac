package deploy

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/extagram/extagram/internal/grpcsrv"
	"go.yaml.in/yaml/v3"
)

const k8sDir = "kubernetes"

// The part of the Kubernetes API that the tests look at.

type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       yaml.Node         `yaml:"spec"`

	file string
}

type podTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec podSpec `yaml:"spec"`
}

type deploymentSpec struct {
	Replicas *int `yaml:"replicas"`
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template podTemplate `yaml:"template"`
}

type jobSpec struct {
	Template podTemplate `yaml:"template"`
}

type serviceSpec struct {
	Type      string            `yaml:"type"`
	ClusterIP string            `yaml:"clusterIP"`
	Selector  map[string]string `yaml:"selector"`
	Ports     []struct {
		Name       string      `yaml:"name"`
		Port       int         `yaml:"port"`
		TargetPort intOrString `yaml:"targetPort"`
	} `yaml:"ports"`
}

type pvcSpec struct {
	AccessModes []string `yaml:"accessModes"`
}

type securityContext struct {
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	RunAsUser                *int64 `yaml:"runAsUser"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	Privileged               *bool  `yaml:"privileged"`
	Capabilities             struct {
		Drop []string `yaml:"drop"`
		Add  []string `yaml:"add"`
	} `yaml:"capabilities"`
}

type podSpec struct {
	SecurityContext securityContext `yaml:"securityContext"`
	Containers      []container     `yaml:"containers"`
	InitContainers  []container     `yaml:"initContainers"`
	Volumes         []struct {
		Name                  string `yaml:"name"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"persistentVolumeClaim"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

type probe struct {
	GRPC *struct {
		Port    int     `yaml:"port"`
		Service *string `yaml:"service"`
	} `yaml:"grpc"`
	HTTPGet *struct {
		Path   string      `yaml:"path"`
		Port   intOrString `yaml:"port"`
		Scheme string      `yaml:"scheme"`
	} `yaml:"httpGet"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name      string  `yaml:"name"`
		Value     *string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe  *probe          `yaml:"readinessProbe"`
	LivenessProbe   *probe          `yaml:"livenessProbe"`
	SecurityContext securityContext `yaml:"securityContext"`
	Resources       struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

// intOrString is a port given by number or by name.
type intOrString string

func (p *intOrString) UnmarshalYAML(n *yaml.Node) error {
	*p = intOrString(n.Value)
	return nil
}

// role is the extagram subcommand the container runs.
func (c *container) role() string {
	if len(c.Args) == 0 {
		return ""
	}
	return c.Args[0]
}

// port resolves a numbered or named container port.
func (c *container) port(p intOrString) int {
	if n, err := strconv.Atoi(string(p)); err == nil {
		return n
	}
	for _, cp := range c.Ports {
		if cp.Name == string(p) {
			return cp.ContainerPort
		}
	}
	return 0
}

type kustomization struct {
	Resources       []string `yaml:"resources"`
	SecretGenerator []struct {
		Name     string   `yaml:"name"`
		Literals []string `yaml:"literals"`
		Files    []string `yaml:"files"`
		Envs     []string `yaml:"envs"`
	} `yaml:"secretGenerator"`
	Images []struct {
		Name string `yaml:"name"`
	} `yaml:"images"`
}

// workload is a Deployment or a Job with its pod template.
type workload struct {
	obj      *k8sObject
	replicas int
	selector map[string]string
	pod      podTemplate
}

type k8sBase struct {
	kust      kustomization
	objects   []*k8sObject
	workloads map[string]*workload // by kind/name
	services  map[string]serviceSpec
	pvcs      map[string]pvcSpec
}

// decodeAll reads every document of a YAML stream.
func decodeAll(t *testing.T, path string) []*k8sObject {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, path)))
	var out []*k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if o.Kind == "" {
			continue
		}
		o.file = path
		out = append(out, &o)
	}
}

func loadK8s(t *testing.T) *k8sBase {
	t.Helper()
	b := &k8sBase{workloads: map[string]*workload{}, services: map[string]serviceSpec{}, pvcs: map[string]pvcSpec{}}
	if err := yaml.Unmarshal(readFile(t, k8sDir+"/kustomization.yaml"), &b.kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	for _, r := range b.kust.Resources {
		b.objects = append(b.objects, decodeAll(t, filepath.Join(k8sDir, r))...)
	}
	for _, o := range b.objects {
		key := o.Kind + "/" + o.Metadata.Name
		switch o.Kind {
		case "Deployment":
			var s deploymentSpec
			if err := o.Spec.Decode(&s); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			n := 1
			if s.Replicas != nil {
				n = *s.Replicas
			}
			b.workloads[key] = &workload{obj: o, replicas: n, selector: s.Selector.MatchLabels, pod: s.Template}
		case "Job":
			var s jobSpec
			if err := o.Spec.Decode(&s); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			b.workloads[key] = &workload{obj: o, replicas: 1, pod: s.Template}
		case "Service":
			var s serviceSpec
			if err := o.Spec.Decode(&s); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			b.services[o.Metadata.Name] = s
		case "PersistentVolumeClaim":
			var s pvcSpec
			if err := o.Spec.Decode(&s); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			b.pvcs[o.Metadata.Name] = s
		}
	}
	return b
}

// byRole returns the workload whose (single) container runs role.
func (b *k8sBase) byRole(t *testing.T, role string) (*workload, *container) {
	t.Helper()
	var found *workload
	var c *container
	for _, w := range b.workloads {
		for i := range w.pod.Spec.Containers {
			if w.pod.Spec.Containers[i].role() == role {
				if found != nil {
					t.Fatalf("two workloads run %s", role)
				}
				found, c = w, &w.pod.Spec.Containers[i]
			}
		}
	}
	if found == nil {
		t.Fatalf("no workload runs extagram %s", role)
	}
	return found, c
}

func subset(small, big map[string]string) bool {
	if len(small) == 0 {
		return false
	}
	for k, v := range small {
		if big[k] != v {
			return false
		}
	}
	return true
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	b := loadK8s(t)
	entries, err := os.ReadDir(k8sDir)
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || n == "kustomization.yaml" || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			continue
		}
		// Examples and the local copies made from them hold secrets: never
		// resources of the base.
		if strings.HasSuffix(n, ".example.yaml") || strings.HasSuffix(n, ".local.yaml") {
			if slices.Contains(b.kust.Resources, n) {
				t.Errorf("kustomization.yaml lists %s", n)
			}
			continue
		}
		onDisk = append(onDisk, n)
	}
	listed := slices.Clone(b.kust.Resources)
	slices.Sort(listed)
	slices.Sort(onDisk)
	if !slices.Equal(listed, onDisk) {
		t.Errorf("kustomization.yaml lists %v, the folder has %v", listed, onDisk)
	}
	for _, r := range b.kust.Resources {
		if strings.Contains(r, "://") || strings.Contains(r, "/") {
			t.Errorf("resource %s is not a file of this folder", r)
		}
	}
	if _, err := os.Stat(filepath.Join(k8sDir, "secret.example.yaml")); err != nil {
		t.Errorf("secret.example.yaml is missing: %v", err)
	}
	for _, g := range b.kust.SecretGenerator {
		if len(g.Literals) > 0 {
			t.Errorf("secretGenerator %s has literals: secrets written in the base", g.Name)
		}
	}
	if len(b.kust.Images) == 0 || b.kust.Images[0].Name != "extagram" {
		t.Error("kustomization.yaml does not let overlays set the extagram image")
	}
	kinds := map[string]int{}
	for _, o := range b.objects {
		kinds[o.Kind]++
		if o.APIVersion == "" || o.Metadata.Name == "" {
			t.Errorf("%s: an object without apiVersion or name", o.file)
		}
	}
	for kind, n := range map[string]int{"Deployment": 4, "Service": 4, "PersistentVolumeClaim": 1, "Job": 1} {
		if kinds[kind] != n {
			t.Errorf("%d %s objects, want %d", kinds[kind], kind, n)
		}
	}
}

func TestKubernetesNoSecretsInBase(t *testing.T) {
	b := loadK8s(t)
	for _, o := range b.objects {
		if o.Kind == "Secret" && (len(o.Data) > 0 || len(o.StringData) > 0) {
			t.Errorf("%s: Secret %s with data in the base", o.file, o.Metadata.Name)
		}
	}
	for key, w := range b.workloads {
		for _, c := range append(slices.Clone(w.pod.Spec.Containers), w.pod.Spec.InitContainers...) {
			for _, e := range c.Env {
				if secretName.MatchString(e.Name) {
					if e.Value != nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
						t.Errorf("%s: %s must come from a secretKeyRef", key, e.Name)
					}
				}
			}
			for _, a := range append(slices.Clone(c.Command), c.Args...) {
				if strings.Contains(a, "mysql-dsn") || strings.Contains(a, "@tcp(") {
					t.Errorf("%s: a DSN on the command line: %q", key, a)
				}
			}
		}
	}
	// The example is an example: placeholders only.
	for _, o := range decodeAll(t, filepath.Join(k8sDir, "secret.example.yaml")) {
		for k, v := range o.StringData {
			if !strings.Contains(v, "change-me") {
				t.Errorf("secret.example.yaml: %s = %q, want a change-me placeholder", k, v)
			}
		}
		for k := range o.Data {
			t.Errorf("secret.example.yaml: %s in data (base64 hides what it holds); use stringData placeholders", k)
		}
	}
	gitignore := string(readFile(t, filepath.Join(k8sDir, ".gitignore")))
	if !strings.Contains(gitignore, "*.local.yaml") {
		t.Error("kubernetes/.gitignore does not keep *.local.yaml (real secrets) out of git")
	}
}

func TestKubernetesWorkloadsAreHardened(t *testing.T) {
	b := loadK8s(t)
	image := ""
	for key, w := range b.workloads {
		pod := w.pod.Spec
		if w.obj.Kind == "Deployment" && !subset(w.selector, w.pod.Metadata.Labels) {
			t.Errorf("%s: selector %v does not match its pods' labels %v", key, w.selector, w.pod.Metadata.Labels)
		}
		if len(pod.Containers) != 1 {
			t.Errorf("%s: %d containers, want 1", key, len(pod.Containers))
		}
		for _, c := range append(slices.Clone(pod.Containers), pod.InitContainers...) {
			name := key + "/" + c.Name
			nonRoot := c.SecurityContext.RunAsNonRoot
			if nonRoot == nil {
				nonRoot = pod.SecurityContext.RunAsNonRoot
			}
			if nonRoot == nil || !*nonRoot {
				t.Errorf("%s: runAsNonRoot is not true", name)
			}
			for _, uid := range []*int64{pod.SecurityContext.RunAsUser, c.SecurityContext.RunAsUser} {
				if uid != nil && *uid == 0 {
					t.Errorf("%s: runAsUser 0", name)
				}
			}
			sc := c.SecurityContext
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: readOnlyRootFilesystem is not true", name)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation is not false", name)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s is privileged", name)
			}
			if !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: capabilities drop %v add %v, want drop [ALL] and nothing added", name, sc.Capabilities.Drop, sc.Capabilities.Add)
			}
			for _, r := range []string{"cpu", "memory"} {
				if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
					t.Errorf("%s: no %s request and limit", name, r)
				}
			}
			if image == "" {
				image = c.Image
			}
			if c.Image != image || len(c.Command) > 0 {
				t.Errorf("%s: image %q command %v, want the one image %q and its entrypoint", name, c.Image, c.Command, image)
			}
			// With a read-only root, every folder the binary writes must
			// be a volume.
			for _, f := range []string{"data-dir", "uploads-dir"} {
				dir, ok := flagValue(c.Args, f)
				if !ok {
					continue
				}
				mounted := false
				for _, m := range c.VolumeMounts {
					if !m.ReadOnly && (dir == m.MountPath || strings.HasPrefix(dir, strings.TrimSuffix(m.MountPath, "/")+"/")) {
						mounted = true
					}
				}
				if !mounted {
					t.Errorf("%s: --%s %s is on the read-only root file system", name, f, dir)
				}
			}
			if w.obj.Kind != "Deployment" {
				continue
			}
			if c.ReadinessProbe == nil || c.LivenessProbe == nil {
				t.Errorf("%s: want readiness and liveness probes", name)
				continue
			}
			switch c.role() {
			case "edge":
				https, _ := flagValue(c.Args, "https-addr")
				for kind, p := range map[string]*probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
					g := p.HTTPGet
					if g == nil || g.Path != kind || g.Scheme != "HTTPS" || c.port(g.Port) != addrPort(t, https) {
						t.Errorf("%s: want an HTTPS GET %s on --https-addr %s", name, kind, https)
					}
				}
			default:
				addr, ok := flagValue(c.Args, "grpc-addr")
				if !ok {
					t.Errorf("%s: no --grpc-addr", name)
					continue
				}
				for _, p := range []*probe{c.ReadinessProbe, c.LivenessProbe} {
					if p.GRPC == nil || p.GRPC.Port != addrPort(t, addr) {
						t.Errorf("%s: want native gRPC probes on --grpc-addr %s", name, addr)
					}
				}
				// Readiness follows the database (the server's overall
				// status); liveness must not, or an outage restarts every pod.
				if g := c.ReadinessProbe.GRPC; g != nil && g.Service != nil && *g.Service != "" {
					t.Errorf("%s: readiness probe checks service %q, want the server's overall status", name, *g.Service)
				}
				if g := c.LivenessProbe.GRPC; g != nil && (g.Service == nil || *g.Service != grpcsrv.LivenessService) {
					t.Errorf("%s: liveness probe must check the %q health service", name, grpcsrv.LivenessService)
				}
			}
		}
	}
}

// The edge dials dns:///NAME:PORT for each service; NAME must be a Service
// that selects the pods running that role, on PORT, and the feed's must be
// headless so that the name resolves to every pod.
func TestKubernetesEdgeTargetsReachEveryReplica(t *testing.T) {
	b := loadK8s(t)
	_, edge := b.byRole(t, "edge")
	for _, tc := range []struct {
		flag, role string
		headless   bool
		replicas   int
	}{
		{"feed-target", "feed", true, 2},
		{"upload-target", "upload", false, 1},
		{"blob-target", "blob", false, 1},
	} {
		t.Run(tc.role, func(t *testing.T) {
			target, ok := flagValue(edge.Args, tc.flag)
			if !ok {
				t.Fatalf("edge has no --%s", tc.flag)
			}
			host, port := parseDNSTarget(t, target)
			svcName, _, _ := strings.Cut(host, ".")
			svc, ok := b.services[svcName]
			if !ok {
				t.Fatalf("%s names Service %q, which does not exist", target, svcName)
			}
			if tc.headless && svc.ClusterIP != "None" {
				t.Errorf("Service %s is not headless (clusterIP: None): its name would be one virtual IP, not every replica", svcName)
			}
			w, c := b.byRole(t, tc.role)
			if !subset(svc.Selector, w.pod.Metadata.Labels) {
				t.Errorf("Service %s selects %v, not the %s pods %v", svcName, svc.Selector, tc.role, w.pod.Metadata.Labels)
			}
			for key, other := range b.workloads {
				if other != w && other.obj.Kind == "Deployment" && subset(svc.Selector, other.pod.Metadata.Labels) {
					t.Errorf("Service %s also selects %s", svcName, key)
				}
			}
			addr, _ := flagValue(c.Args, "grpc-addr")
			found := false
			for _, p := range svc.Ports {
				if p.Port == port {
					found = true
					if got := c.port(p.TargetPort); got != addrPort(t, addr) {
						t.Errorf("Service %s port %d goes to %d, but %s listens on %s", svcName, port, got, tc.role, addr)
					}
				}
			}
			if !found {
				t.Errorf("Service %s has no port %d", svcName, port)
			}
			if w.replicas < tc.replicas {
				t.Errorf("%s has %d replicas, want at least %d", tc.role, w.replicas, tc.replicas)
			}
			if _, ok := flagValue(c.Args, "max-connection-age"); !ok {
				t.Errorf("%s has no --max-connection-age: the edge would never see new pods", tc.role)
			}
			if v, _ := flagValue(c.Args, "auto-migrate"); v != "false" {
				t.Errorf("%s: --auto-migrate=%q; the migrate Job owns the schema", tc.role, v)
			}
		})
	}
	// The edge Service publishes 443 and 80 onto --https-addr and --http-addr.
	svc := b.services["edge"]
	https, _ := flagValue(edge.Args, "https-addr")
	http, _ := flagValue(edge.Args, "http-addr")
	want := map[int]int{443: addrPort(t, https), 80: addrPort(t, http)}
	for _, p := range svc.Ports {
		if w, ok := want[p.Port]; ok && edge.port(p.TargetPort) == w {
			delete(want, p.Port)
		}
	}
	if len(want) > 0 {
		t.Errorf("Service edge does not map %v", want)
	}
	if rp, _ := flagValue(edge.Args, "redirect-port"); rp != "443" {
		t.Errorf("edge --redirect-port %q, want 443", rp)
	}
}

func TestKubernetesUploadsClaimShared(t *testing.T) {
	b := loadK8s(t)
	if len(b.pvcs) != 1 {
		t.Fatalf("%d PersistentVolumeClaims, want the one uploads claim", len(b.pvcs))
	}
	for name, pvc := range b.pvcs {
		if !slices.Contains(pvc.AccessModes, "ReadWriteMany") {
			t.Errorf("claim %s is %v: upload and blob pods on different nodes need ReadWriteMany", name, pvc.AccessModes)
		}
		for _, role := range []string{"upload", "blob"} {
			w, c := b.byRole(t, role)
			dir, ok := flagValue(c.Args, "uploads-dir")
			if !ok {
				t.Errorf("%s has no --uploads-dir", role)
				continue
			}
			vol := ""
			for _, v := range w.pod.Spec.Volumes {
				if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == name && !v.PersistentVolumeClaim.ReadOnly {
					vol = v.Name
				}
			}
			mounted := false
			for _, m := range c.VolumeMounts {
				if m.Name == vol && m.MountPath == dir && !m.ReadOnly {
					mounted = true
				}
			}
			if vol == "" || !mounted {
				t.Errorf("%s does not mount claim %s read-write at its --uploads-dir %s", role, name, dir)
			}
		}
		for key, w := range b.workloads {
			r := w.pod.Spec.Containers[0].role()
			if r == "upload" || r == "blob" {
				continue
			}
			for _, v := range w.pod.Spec.Volumes {
				if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == name {
					t.Errorf("%s mounts the uploads claim too", key)
				}
			}
		}
	}
}

func TestKubernetesSecretsAndMigration(t *testing.T) {
	b := loadK8s(t)
	dsnSecret := func(role string) (string, string) {
		_, c := b.byRole(t, role)
		for _, e := range c.Env {
			if e.Name == "EXTAGRAM_MYSQL_DSN" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				return e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key
			}
		}
		t.Errorf("%s: EXTAGRAM_MYSQL_DSN does not come from a Secret", role)
		return "", ""
	}
	w, _ := b.byRole(t, "migrate")
	if w.obj.Kind != "Job" {
		t.Errorf("migrate runs in a %s, want a Job", w.obj.Kind)
	}
	secret, migrateKey := dsnSecret("migrate")
	for _, role := range []string{"feed", "upload", "blob"} {
		s, k := dsnSecret(role)
		if s != secret {
			t.Errorf("%s reads Secret %q, migrate %q", role, s, secret)
		}
		if k == migrateKey {
			t.Errorf("%s uses the migrate account (%s): the services get the data-only one", role, k)
		}
	}
	_, edge := b.byRole(t, "edge")
	for _, e := range edge.Env {
		if e.Name == "EXTAGRAM_MYSQL_DSN" {
			t.Error("the edge gets database credentials")
		}
	}
	// The edge's certificate comes from a Secret volume.
	ew, _ := b.byRole(t, "edge")
	tlsVolume := ""
	for _, v := range ew.pod.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName != "" {
			tlsVolume = v.Name
		}
	}
	var tlsDir string
	for _, m := range edge.VolumeMounts {
		if m.Name == tlsVolume {
			tlsDir = m.MountPath
		}
	}
	for _, f := range []string{"tls-cert", "tls-key"} {
		p, ok := flagValue(edge.Args, f)
		if !ok || tlsDir == "" || !strings.HasPrefix(p, tlsDir+"/") {
			t.Errorf("edge --%s %q is not in the TLS Secret's mount %q", f, p, tlsDir)
		}
	}
	// The example Secret has the keys the workloads read.
	keys := map[string]bool{}
	for _, o := range decodeAll(t, filepath.Join(k8sDir, "secret.example.yaml")) {
		if o.Kind == "Secret" && o.Metadata.Name == secret {
			for k := range o.StringData {
				keys[k] = true
			}
		}
	}
	_, appKey := dsnSecret("feed")
	for _, k := range []string{appKey, migrateKey} {
		if !keys[k] {
			t.Errorf("secret.example.yaml has no %s key in Secret %s", k, secret)
		}
	}
}

// Compose and Kubernetes start each role with the same flags, but for the
// certificate files that only Kubernetes mounts.
func TestComposeAndKubernetesAgree(t *testing.T) {
	p, b := loadComposeModel(t).p, loadK8s(t)
	for _, r := range []string{"edge", "feed", "upload", "blob", "migrate"} {
		_, kc := b.byRole(t, r)
		k := flagSet(kc.Args, "tls-cert", "tls-key")
		for _, s := range p.Services {
			if c := flagSet(s.Command, "tls-cert", "tls-key"); role(s) == r {
				check(t, maps.Equal(c, k), "%s: compose runs %v, kubernetes %v", r, c, k)
			}
		}
	}
}
