package deploy

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/extagram/extagram/internal/grpcsrv"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const k8sDir = "kubernetes"

// k8sDecoder decodes the kinds the base may hold, strictly: an unknown kind, apiVersion or field is an error.
var k8sDecoder = func() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, policyv1.AddToScheme, networkingv1.AddToScheme} {
		must(0, add(scheme))
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}()

// workload is a Deployment or a Job.
type workload struct {
	key      string // Kind/name
	replicas int32
	selector *metav1.LabelSelector // nil for a Job
	pod      *corev1.PodTemplateSpec
	c        *corev1.Container // the first (and only) container
}

func (w *workload) role() string { return w.c.Args[0] }

type k8sBase struct {
	fs        filesys.FileSystem // the base's folder at /base
	kust      kusttypes.Kustomization
	objects   []runtime.Object
	workloads []*workload
}

// kustomize builds the kustomization at dir of fs, as `kustomize build`, and decodes every object.
func kustomize(fs filesys.FileSystem, dir string) ([]runtime.Object, error) {
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, dir)
	if err != nil {
		return nil, err
	}
	var out []runtime.Object
	for _, r := range rm.Resources() {
		obj, _, err := k8sDecoder.Decode(must(r.AsYAML()), nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.CurId(), err)
		}
		out = append(out, obj)
	}
	return out, nil
}

// The base is built from an in-memory copy of its folder: it can use nothing outside it.
var k8sOnce = sync.OnceValues(func() (*k8sBase, error) {
	b := &k8sBase{fs: filesys.MakeFsInMemory()}
	files, err := filepath.Glob(k8sDir + "/*.y*ml")
	for _, f := range files {
		data, err2 := os.ReadFile(f)
		err = errors.Join(err, err2, b.fs.WriteFile("/base/"+filepath.Base(f), data))
	}
	if err != nil {
		return nil, err
	}
	if err := b.kust.Unmarshal(must(b.fs.ReadFile("/base/kustomization.yaml"))); err != nil {
		return nil, err
	}
	if b.objects, err = kustomize(b.fs, "/base"); err != nil {
		return nil, err
	}
	b.workloads, err = workloads(b.objects)
	return b, err
})

// workloads returns the Deployments and Jobs among objects.
func workloads(objects []runtime.Object) (out []*workload, err error) {
	for _, o := range objects {
		var w *workload
		switch o := o.(type) {
		case *appsv1.Deployment:
			w = &workload{key: "Deployment/" + o.Name, replicas: ptr.Deref(o.Spec.Replicas, 1), selector: o.Spec.Selector, pod: &o.Spec.Template}
		case *batchv1.Job:
			w = &workload{key: "Job/" + o.Name, replicas: 1, pod: &o.Spec.Template}
		default:
			continue
		}
		if len(w.pod.Spec.Containers) == 0 || len(w.pod.Spec.Containers[0].Args) == 0 {
			return nil, fmt.Errorf("%s runs no extagram role", w.key)
		}
		w.c = &w.pod.Spec.Containers[0]
		out = append(out, w)
	}
	return out, nil
}

// objectsOf returns the objects of type T by name.
func objectsOf[T interface {
	runtime.Object
	GetName() string
}](b *k8sBase) map[string]T {
	out := map[string]T{}
	for _, o := range b.objects {
		if o, ok := o.(T); ok {
			out[o.GetName()] = o
		}
	}
	return out
}

func loadK8s(t *testing.T) *k8sBase {
	t.Helper()
	b, err := k8sOnce()
	if err != nil {
		t.Fatalf("kustomize build %s: %v", k8sDir, err)
	}
	return b
}

// byRole returns the one workload whose container runs extagram role.
func (b *k8sBase) byRole(t *testing.T, role string) *workload {
	t.Helper()
	found := slices.DeleteFunc(slices.Clone(b.workloads), func(w *workload) bool { return w.role() != role })
	if len(found) != 1 {
		t.Fatalf("%d workloads run extagram %s, want 1", len(found), role)
	}
	return found[0]
}

// containerPort resolves a numbered or named container port.
func containerPort(c *corev1.Container, p intstr.IntOrString) int {
	for _, cp := range c.Ports {
		if p.Type == intstr.String && cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return p.IntValue()
}

// secretMount returns where a workload mounts the Secret name read-only, and the volume.
func secretMount(w *workload, name string) (string, *corev1.Volume) {
	for i, v := range w.pod.Spec.Volumes {
		for _, m := range w.c.VolumeMounts {
			if v.Secret != nil && v.Secret.SecretName == name && m.Name == v.Name && m.ReadOnly {
				return m.MountPath, &w.pod.Spec.Volumes[i]
			}
		}
	}
	return "", nil
}

// Every manifest of the folder but the secret examples is a resource, and an overlay can set the image.
func TestKustomization(t *testing.T) {
	b := loadK8s(t)
	var onDisk []string
	for _, e := range must(os.ReadDir(k8sDir)) {
		n := e.Name()
		switch {
		case e.IsDir() || n == "kustomization.yaml" || (filepath.Ext(n) != ".yaml" && filepath.Ext(n) != ".yml"):
		case strings.HasSuffix(n, ".example.yaml") || strings.HasSuffix(n, ".local.yaml"):
			check(t, !slices.Contains(b.kust.Resources, n), "kustomization.yaml lists %s, which holds secrets", n)
		default:
			onDisk = append(onDisk, n)
		}
	}
	listed := slices.Sorted(slices.Values(b.kust.Resources))
	check(t, slices.Equal(listed, onDisk), "kustomization.yaml lists %v, the folder has %v", listed, onDisk)
	must(0, b.fs.WriteFile("/overlay/kustomization.yaml", []byte("resources: [../base]\nimages: [{name: extagram, newName: registry.example/extagram, newTag: v9}]\n")))
	objects, err := kustomize(b.fs, "/overlay")
	overlaid, err2 := workloads(objects)
	check(t, err == nil && err2 == nil && len(overlaid) == len(b.workloads), "overlay: %v %v", err, err2)
	for _, w := range overlaid {
		check(t, w.c.Image == "registry.example/extagram:v9", "an overlay cannot set the image of %s", w.key)
	}
}

func TestKubernetesSecrets(t *testing.T) {
	b := loadK8s(t)
	for _, s := range objectsOf[*corev1.Secret](b) {
		check(t, len(s.Data) == 0 && len(s.StringData) == 0, "Secret %s with data in the base", s.Name)
	}
	// One Secret: data-only for the services, DDL for migrate (a Job), nothing for the edge; no literals.
	dsn := map[string]*corev1.SecretKeySelector{}
	for _, w := range b.workloads {
		for _, c := range slices.Concat(w.pod.Spec.Containers, w.pod.Spec.InitContainers) {
			for _, e := range c.Env {
				check(t, !secretName.MatchString(e.Name) || (e.Value == "" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil), "%s: %s must come from a secretKeyRef", w.key, e.Name)
				if e.Name == "EXTAGRAM_MYSQL_DSN" && e.ValueFrom != nil {
					dsn[w.role()] = e.ValueFrom.SecretKeyRef
				}
			}
		}
	}
	migrate, app := ptr.Deref(dsn["migrate"], corev1.SecretKeySelector{}), ptr.Deref(dsn["feed"], corev1.SecretKeySelector{})
	check(t, strings.HasPrefix(b.byRole(t, "migrate").key, "Job/"), "migrate runs in %s, want a Job", b.byRole(t, "migrate").key)
	check(t, len(dsn) == 4 && dsn["edge"] == nil && migrate.Name != "" && app.Key != migrate.Key, "EXTAGRAM_MYSQL_DSN from Secrets %v: want migrate's and the services' own keys of one Secret, none for the edge", dsn)
	for _, r := range []string{"feed", "upload", "blob"} {
		check(t, dsn[r] != nil && *dsn[r] == app && app.Name == migrate.Name, "%s reads the DSN from %v, want the data-only %v of migrate's Secret", r, dsn[r], app)
	}
	// The edge's certificate comes from its TLS Secret's volume.
	edge := b.byRole(t, "edge")
	tlsDir, _ := secretMount(edge, "extagram-edge-tls")
	for _, f := range []string{"tls-cert", "tls-key"} {
		p, ok := flagValue(edge.c.Args, f)
		check(t, ok && tlsDir != "" && strings.HasPrefix(p, tlsDir+"/"), "edge --%s %q is not in the TLS Secret's mount %q", f, p, tlsDir)
	}
	// The example has the keys the workloads read, with placeholders only (base64 data would hide them).
	o, _, err := k8sDecoder.Decode(readFile(t, k8sDir+"/secret.example.yaml"), nil, nil)
	example, ok := o.(*corev1.Secret)
	if err != nil || !ok {
		t.Fatalf("secret.example.yaml: want one Secret: %v", err)
	}
	for k, v := range example.StringData {
		check(t, strings.Contains(v, "change-me"), "secret.example.yaml: %s = %q, want a change-me placeholder", k, v)
	}
	check(t, example.Name == migrate.Name && example.StringData[app.Key] != "" && example.StringData[migrate.Key] != "" && len(example.Data) == 0,
		"secret.example.yaml: want stringData with %s and %s in Secret %s, and no data", app.Key, migrate.Key, migrate.Name)
	check(t, strings.Contains(string(readFile(t, k8sDir+"/.gitignore")), "*.local.yaml"), "kubernetes/.gitignore does not keep *.local.yaml (real secrets) out of git")
}

// TestKubernetesWorkloads: least privilege for every workload; each gRPC role mounts its own mesh identity
// (only it) from a Secret with cert-manager's keys, readable by its group only, at the files its flags name;
// probes reach each role's listener.
func TestKubernetesWorkloads(t *testing.T) {
	b := loadK8s(t)
	image := b.workloads[0].c.Image
	for _, w := range b.workloads {
		pod, psc := w.pod.Spec, ptr.Deref(w.pod.Spec.SecurityContext, corev1.PodSecurityContext{})
		if w.selector != nil {
			sel, err := metav1.LabelSelectorAsSelector(w.selector)
			check(t, err == nil && !sel.Empty() && sel.Matches(labels.Set(w.pod.Labels)), "%s: selector %v does not match its pods' labels %v", w.key, w.selector, w.pod.Labels)
		}
		check(t, len(pod.Containers) == 1, "%s: %d containers, want 1", w.key, len(pod.Containers))
		check(t, !ptr.Deref(pod.AutomountServiceAccountToken, true), "%s mounts a service account token", w.key)
		check(t, psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault, "%s: want the RuntimeDefault seccomp profile", w.key)
		for _, c := range slices.Concat(pod.Containers, pod.InitContainers) {
			name, sc := w.key+"/"+c.Name, ptr.Deref(c.SecurityContext, corev1.SecurityContext{})
			caps := ptr.Deref(sc.Capabilities, corev1.Capabilities{})
			root := !ptr.Deref(sc.RunAsNonRoot, ptr.Deref(psc.RunAsNonRoot, false)) || ptr.Deref(psc.RunAsUser, 1) == 0 || ptr.Deref(sc.RunAsUser, 1) == 0
			checkLeastPrivilege(t, name, privileges{dropsAll: slices.Contains(caps.Drop, "ALL"), added: len(caps.Add), root: root,
				noNewPrivileges: !ptr.Deref(sc.AllowPrivilegeEscalation, true), privileged: ptr.Deref(sc.Privileged, false),
				readOnlyRoot: ptr.Deref(sc.ReadOnlyRootFilesystem, false), cmdline: slices.Concat(c.Command, c.Args),
				flag: func(f string) (string, bool) { return flagValue(c.Args, f) }, writable: func(dir string) bool {
					return slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return !m.ReadOnly && under(dir, m.MountPath) })
				}})
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
				check(t, !req.IsZero() && !lim.IsZero(), "%s: no %s request and limit", name, r)
			}
			check(t, c.Image == image && len(c.Command) == 0, "%s: image %q command %v, want the one image %q and its entrypoint", name, c.Image, c.Command, image)
		}
		for _, other := range []string{"edge", "feed", "upload", "blob", "operator"} {
			_, v := secretMount(w, "extagram-mesh-"+other)
			check(t, other == w.role() || v == nil, "%s also mounts the %s identity", w.key, other)
		}
		if !slices.Contains(grpcRoles, w.role()) {
			continue
		}
		dir, v := secretMount(w, "extagram-mesh-"+w.role())
		if v == nil {
			t.Errorf("%s mounts no Secret extagram-mesh-%s read-only", w.key, w.role())
			continue
		}
		paths, files := map[string]string{}, map[string]string{}
		for _, it := range v.Secret.Items {
			paths[it.Key] = dir + "/" + it.Path
		}
		for key, f := range map[string]string{"ca.crt": "mesh-ca", "tls.crt": "mesh-cert", "tls.key": "mesh-key"} {
			files[key], _ = flagValue(w.c.Args, f)
		}
		check(t, maps.Equal(paths, files), "%s: the Secret's keys land at %v, its --mesh-ca, --mesh-cert and --mesh-key are %v", w.key, paths, files)
		check(t, ptr.Deref(v.Secret.DefaultMode, 0o644) == 0o440 && ptr.Deref(psc.FSGroup, 0) == ptr.Deref(psc.RunAsGroup, -1),
			"%s: the key is mode %o with fsGroup %v, want 0440 for the process's group only", w.key, ptr.Deref(v.Secret.DefaultMode, 0o644), psc.FSGroup)
		ready, live := w.c.ReadinessProbe, w.c.LivenessProbe
		if ready == nil || live == nil {
			t.Errorf("%s: want readiness and liveness probes", w.key)
		} else if w.role() == "edge" {
			https, _ := flagValue(w.c.Args, "https-addr")
			for path, p := range map[string]*corev1.Probe{"/readyz": ready, "/healthz": live} {
				g := p.HTTPGet
				check(t, g != nil && g.Path == path && g.Scheme == corev1.URISchemeHTTPS && containerPort(w.c, g.Port) == addrPort(t, https), "%s: want an HTTPS GET %s on --https-addr %s", w.key, path, https)
			}
		} else {
			// Readiness follows the database, liveness not (an outage would restart every pod); the binary
			// probes, as the pod's own identity: the kubelet's gRPC probes cannot speak mutual TLS.
			addr, _ := flagValue(w.c.Args, "grpc-addr")
			for service, p := range map[string]*corev1.Probe{"": ready, grpcsrv.LivenessService: live} {
				if p.Exec == nil || len(p.Exec.Command) < 3 || !slices.Equal(p.Exec.Command[:2], []string{"/extagram", "health"}) {
					t.Errorf("%s: probe %v, want /extagram health", w.key, p.ProbeHandler)
					continue
				}
				cmd := p.Exec.Command[1:]
				target, _ := flagValue(cmd, "grpc-addr")
				svc, _ := flagValue(cmd, "service")
				check(t, target != "" && addrPort(t, target) == addrPort(t, addr) && svc == service, "%s: probe %q, want --grpc-addr on the port of %s and the health service %q", w.key, cmd, addr, service)
				for _, f := range []string{"mesh-ca", "mesh-cert", "mesh-key"} {
					got, _ := flagValue(cmd, f)
					want, _ := flagValue(w.c.Args, f)
					check(t, got == want, "%s: probe --%s %q, want the pod's own %q", w.key, f, got, want)
				}
			}
		}
	}
}

// TestKubernetesTopology: each edge target dns:///NAME:PORT is a Service of that role's pods only (the feed's
// headless: every pod); the edge publishes 443 and 80; one ReadWriteMany claim holds the uploads of upload and
// blob; each role runs with Compose's flags but the certificate files.
func TestKubernetesTopology(t *testing.T) {
	b, services := loadK8s(t), objectsOf[*corev1.Service](loadK8s(t))
	edge := b.byRole(t, "edge").c
	for role, replicas := range map[string]int32{"feed": 2, "upload": 1, "blob": 1} {
		target, _ := flagValue(edge.Args, role+"-target")
		host, port := parseDNSTarget(t, target)
		name, _, _ := strings.Cut(host, ".")
		svc, ok := services[name]
		if !ok {
			t.Errorf("%s names Service %q, which does not exist", target, name)
			continue
		}
		check(t, role != "feed" || svc.Spec.ClusterIP == corev1.ClusterIPNone, "Service %s is not headless (clusterIP: None): its name would be one virtual IP, not every replica", name)
		w := b.byRole(t, role)
		for _, other := range b.workloads {
			sel := labels.SelectorFromSet(svc.Spec.Selector)
			check(t, (!sel.Empty() && sel.Matches(labels.Set(other.pod.Labels))) == (other == w), "Service %s selects %v: want the %s pods and no other (%s)", name, svc.Spec.Selector, role, other.key)
		}
		addr, _ := flagValue(w.c.Args, "grpc-addr")
		check(t, slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
			return int(p.Port) == port && containerPort(w.c, p.TargetPort) == addrPort(t, addr)
		}), "Service %s has no port %d onto --grpc-addr %s of %s", name, port, addr, role)
		check(t, w.replicas >= replicas, "%s has %d replicas, want at least %d", role, w.replicas, replicas)
	}
	https, _ := flagValue(edge.Args, "https-addr")
	http, _ := flagValue(edge.Args, "http-addr")
	want := map[int]int{443: addrPort(t, https), 80: addrPort(t, http)}
	for _, p := range services["edge"].Spec.Ports {
		if to, ok := want[int(p.Port)]; ok && containerPort(edge, p.TargetPort) == to {
			delete(want, int(p.Port))
		}
	}
	check(t, len(want) == 0, "Service edge does not map %v", want)

	pvcs := objectsOf[*corev1.PersistentVolumeClaim](b)
	if len(pvcs) != 1 {
		t.Fatalf("%d PersistentVolumeClaims, want the one uploads claim", len(pvcs))
	}
	for name, pvc := range pvcs {
		check(t, slices.Contains(pvc.Spec.AccessModes, corev1.ReadWriteMany), "claim %s is %v: pods on different nodes need ReadWriteMany", name, pvc.Spec.AccessModes)
		for _, w := range b.workloads {
			dir, hasDir := flagValue(w.c.Args, "uploads-dir")
			var vols []string
			for _, v := range w.pod.Spec.Volumes {
				if claim := v.PersistentVolumeClaim; claim != nil && claim.ClaimName == name {
					vols = append(vols, v.Name)
					check(t, !claim.ReadOnly, "%s mounts claim %s read-only", w.key, name)
				}
			}
			mounted := hasDir && slices.ContainsFunc(w.c.VolumeMounts, func(m corev1.VolumeMount) bool {
				return slices.Contains(vols, m.Name) && m.MountPath == dir && !m.ReadOnly
			})
			r := w.role()
			check(t, mounted || (r != "upload" && r != "blob"), "%s does not mount claim %s read-write at its --uploads-dir %q", r, name, dir)
			check(t, len(vols) == 0 || r == "upload" || r == "blob", "%s mounts the uploads claim too", w.key)
		}
	}

	p := loadComposeModel(t).p
	for _, r := range []string{"edge", "feed", "upload", "blob", "migrate"} {
		k := flagSet(b.byRole(t, r).c.Args, "tls-cert", "tls-key")
		for _, s := range p.Services {
			if c := flagSet(s.Command, "tls-cert", "tls-key"); role(s) == r {
				check(t, maps.Equal(c, k), "%s: compose runs %v, kubernetes %v", r, c, k)
			}
		}
	}
}

// allowed reports whether the NetworkPolicies let from open a TCP connection to port of to (a peer: a pod's
// labels, or nil outside the namespace): from's egress and to's ingress must allow it, as Kubernetes has it.
func allowed(policies map[string]*networkingv1.NetworkPolicy, from, to map[string]string, port int) bool {
	// matches: an empty list is everyone; the base selects pods of the namespace only (no namespace or IP).
	matches := func(peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort, other map[string]string) bool {
		peerOK := len(peers) == 0 || slices.ContainsFunc(peers, func(p networkingv1.NetworkPolicyPeer) bool {
			sel, err := metav1.LabelSelectorAsSelector(p.PodSelector)
			return p.PodSelector != nil && p.NamespaceSelector == nil && p.IPBlock == nil && other != nil && err == nil && sel.Matches(labels.Set(other))
		})
		return peerOK && (len(ports) == 0 || slices.ContainsFunc(ports, func(p networkingv1.NetworkPolicyPort) bool {
			return (p.Protocol == nil || *p.Protocol == "TCP") && (p.Port == nil || p.Port.IntValue() == port)
		}))
	}
	side := func(pod, other map[string]string, kind networkingv1.PolicyType) bool {
		if pod == nil {
			return true // not in the namespace: not ours to say
		}
		selected := false
		for _, p := range policies {
			sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
			if err != nil || !sel.Matches(labels.Set(pod)) || !slices.Contains(p.Spec.PolicyTypes, kind) {
				continue
			}
			selected = true
			ok := slices.ContainsFunc(p.Spec.Ingress, func(r networkingv1.NetworkPolicyIngressRule) bool { return matches(r.From, r.Ports, other) })
			if kind == networkingv1.PolicyTypeEgress {
				ok = slices.ContainsFunc(p.Spec.Egress, func(r networkingv1.NetworkPolicyEgressRule) bool { return matches(r.To, r.Ports, other) })
			}
			if ok {
				return true
			}
		}
		return !selected
	}
	return side(from, to, networkingv1.PolicyTypeEgress) && side(to, from, networkingv1.PolicyTypeIngress)
}

// Only the edge reaches the services, the services and migrate MySQL, the browsers the edge; metrics, Telegram
// (edge, feed) and trace collectors are reachable; nothing else gets through.
func TestKubernetesNetworkPolicies(t *testing.T) {
	policies := objectsOf[*networkingv1.NetworkPolicy](loadK8s(t))
	check(t, len(policies) > 0, "the base has no NetworkPolicy")
	peers := map[string]map[string]string{
		"stranger": {"app": "something-else"}, // another pod of the namespace
		"outside":  nil,                       // a browser, MySQL, Prometheus, Telegram, a trace collector
	}
	for _, c := range []string{"edge", "feed", "upload", "blob", "migrate"} {
		peers[c] = map[string]string{"app.kubernetes.io/name": "extagram", "app.kubernetes.io/component": c}
	}
	for _, c := range []struct {
		from, to string
		port     int
		want     bool
	}{
		{"edge", "feed", 50051, true}, {"edge", "upload", 50051, true}, {"edge", "blob", 50051, true},
		{"outside", "edge", 8443, true}, {"outside", "edge", 8080, true},
		{"feed", "outside", 3306, true}, {"upload", "outside", 3306, true}, {"blob", "outside", 3306, true},
		{"migrate", "outside", 3306, true}, {"edge", "outside", 3306, false},
		{"outside", "edge", 9090, true}, {"outside", "feed", 9090, true}, // metrics scrapes
		{"outside", "feed", 50051, false}, {"stranger", "feed", 50051, false}, {"stranger", "blob", 50051, false},
		{"feed", "blob", 50051, false}, {"upload", "feed", 50051, false}, {"migrate", "upload", 50051, false},
		{"outside", "migrate", 50051, false},
		// The Telegram Bot API, at addresses no policy can name.
		{"edge", "outside", 443, true}, {"feed", "outside", 443, true}, {"upload", "outside", 443, false},
		{"blob", "outside", 443, false}, {"migrate", "outside", 443, false}, {"feed", "outside", 8080, false},
		// Spans to an OTLP collector.
		{"edge", "outside", 4317, true}, {"upload", "outside", 4317, true}, {"stranger", "outside", 4317, false},
	} {
		if got := allowed(policies, peers[c.from], peers[c.to], c.port); got != c.want {
			t.Errorf("%s to %s on port %d: allowed %v, want %v", c.from, c.to, c.port, got, c.want)
		}
	}
}
