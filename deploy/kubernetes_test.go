package deploy

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

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

// k8sDecoder decodes the kinds that the base may hold, strictly: an unknown
// kind or apiVersion, and an unknown or duplicated field, are errors.
var k8sDecoder = func() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, policyv1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
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

type k8sBase struct {
	fs        filesys.FileSystem // the base's folder at /base
	kust      kusttypes.Kustomization
	objects   []runtime.Object
	workloads []*workload
	services  map[string]*corev1.Service
	pvcs      map[string]*corev1.PersistentVolumeClaim
	policies  []*networkingv1.NetworkPolicy
}

// kustomize builds the kustomization at dir of fs, as `kustomize build`,
// and decodes every object.
func kustomize(fs filesys.FileSystem, dir string) ([]runtime.Object, error) {
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, dir)
	if err != nil {
		return nil, err
	}
	var out []runtime.Object
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err == nil {
			var obj runtime.Object
			obj, _, err = k8sDecoder.Decode(y, nil, nil)
			out = append(out, obj)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.CurId(), err)
		}
	}
	return out, nil
}

// The base is built from a copy of its folder's files in memory: it can use
// nothing outside that folder.
var k8sOnce = sync.OnceValues(func() (*k8sBase, error) {
	b := &k8sBase{fs: filesys.MakeFsInMemory(), services: map[string]*corev1.Service{}, pvcs: map[string]*corev1.PersistentVolumeClaim{}}
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
	for _, o := range b.objects {
		switch o := o.(type) {
		case *corev1.Service:
			b.services[o.Name] = o
		case *corev1.PersistentVolumeClaim:
			b.pvcs[o.Name] = o
		case *networkingv1.NetworkPolicy:
			b.policies = append(b.policies, o)
		}
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
	var found []*workload
	for _, w := range b.workloads {
		if w.c.Args[0] == role {
			found = append(found, w)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d workloads run extagram %s, want 1", len(found), role)
	}
	return found[0]
}

// selects reports whether a non-empty selector matches the pod labels.
func selects(sel labels.Selector, pod map[string]string) bool {
	return !sel.Empty() && sel.Matches(labels.Set(pod))
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

func TestKustomizationListsEveryManifest(t *testing.T) {
	b := loadK8s(t)
	var onDisk []string
	for _, e := range must(os.ReadDir(k8sDir)) {
		n := e.Name()
		switch {
		case e.IsDir() || n == "kustomization.yaml" || (filepath.Ext(n) != ".yaml" && filepath.Ext(n) != ".yml"):
		case strings.HasSuffix(n, ".example.yaml") || strings.HasSuffix(n, ".local.yaml"):
			// Examples and their local copies hold secrets: never resources.
			check(t, !slices.Contains(b.kust.Resources, n), "kustomization.yaml lists %s", n)
		default:
			onDisk = append(onDisk, n)
		}
	}
	listed := slices.Sorted(slices.Values(b.kust.Resources))
	check(t, slices.Equal(listed, onDisk), "kustomization.yaml lists %v, the folder has %v", listed, onDisk)
	_, err := os.Stat(filepath.Join(k8sDir, "secret.example.yaml"))
	check(t, err == nil, "secret.example.yaml is missing: %v", err)
	kinds := map[string]int{}
	for _, o := range b.objects {
		kinds[o.GetObjectKind().GroupVersionKind().Kind]++
		check(t, o.(metav1.Object).GetName() != "", "an object without a name: %v", o.GetObjectKind())
	}
	for kind, n := range map[string]int{"Deployment": 4, "Service": 4, "PersistentVolumeClaim": 1, "Job": 1} {
		check(t, kinds[kind] == n, "%d %s objects, want %d", kinds[kind], kind, n)
	}
	// An overlay sets the image of every workload by the name "extagram".
	check(t, slices.ContainsFunc(b.kust.Images, func(i kusttypes.Image) bool { return i.Name == "extagram" }), "kustomization.yaml does not name the extagram image")
	if err := b.fs.WriteFile("/overlay/kustomization.yaml", []byte("resources: [../base]\nimages: [{name: extagram, newName: registry.example/extagram, newTag: v9}]\n")); err != nil {
		t.Fatal(err)
	}
	objects, err := kustomize(b.fs, "/overlay")
	overlaid, err2 := workloads(objects)
	check(t, err == nil && err2 == nil && len(overlaid) == len(b.workloads), "overlay: %v %v", err, err2)
	for _, w := range overlaid {
		check(t, w.c.Image == "registry.example/extagram:v9", "an overlay cannot set the image of %s", w.key)
	}
}

func TestKubernetesSecrets(t *testing.T) {
	b := loadK8s(t)
	for _, o := range b.objects {
		if s, ok := o.(*corev1.Secret); ok {
			check(t, len(s.Data) == 0 && len(s.StringData) == 0, "Secret %s with data in the base", s.Name)
		}
	}
	for _, w := range b.workloads {
		for _, c := range slices.Concat(w.pod.Spec.Containers, w.pod.Spec.InitContainers) {
			for _, e := range c.Env {
				check(t, !secretName.MatchString(e.Name) || (e.Value == "" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil), "%s: %s must come from a secretKeyRef", w.key, e.Name)
			}
			for _, a := range slices.Concat(c.Command, c.Args) {
				check(t, !strings.Contains(a, "mysql-dsn") && !strings.Contains(a, "@tcp("), "%s: a DSN on the command line: %q", w.key, a)
			}
		}
	}
	// The services read the data-only account and migrate (a Job) the DDL
	// one, from one Secret; the edge gets no database credentials.
	dsn := map[string]*corev1.SecretKeySelector{}
	for _, w := range b.workloads {
		for _, e := range w.c.Env {
			if e.Name == "EXTAGRAM_MYSQL_DSN" && e.ValueFrom != nil {
				dsn[w.c.Args[0]] = e.ValueFrom.SecretKeyRef
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
	// The example has the keys the workloads read, with placeholders only.
	o, _, err := k8sDecoder.Decode(readFile(t, k8sDir+"/secret.example.yaml"), nil, nil)
	example, ok := o.(*corev1.Secret)
	if err != nil || !ok {
		t.Fatalf("secret.example.yaml: want one Secret: %v", err)
	}
	for k, v := range example.StringData {
		check(t, strings.Contains(v, "change-me"), "secret.example.yaml: %s = %q, want a change-me placeholder", k, v)
	}
	_, hasApp := example.StringData[app.Key]
	_, hasMigrate := example.StringData[migrate.Key]
	check(t, example.Name == migrate.Name && hasApp && hasMigrate, "secret.example.yaml has no %s and %s keys in Secret %s", app.Key, migrate.Key, migrate.Name)
	check(t, len(example.Data) == 0, "secret.example.yaml has data (base64 hides what it holds); use stringData placeholders")
	check(t, strings.Contains(string(readFile(t, k8sDir+"/.gitignore")), "*.local.yaml"), "kubernetes/.gitignore does not keep *.local.yaml (real secrets) out of git")
}

// secretMount returns where a workload mounts the Secret name, and the
// volume.
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

// meshFlags are the mesh flags a role's files are named by.
func meshFiles(dir, role string) map[string]string {
	return map[string]string{"mesh-ca": dir + "/ca.pem", "mesh-cert": dir + "/" + role + ".pem", "mesh-key": dir + "/" + role + "-key.pem"}
}

// TestKubernetesMeshTLS: each gRPC role mounts its own mesh identity, and
// only it, from a Secret with cert-manager's keys, read-only and readable
// by its user's group only; its flags point at those files.
func TestKubernetesMeshTLS(t *testing.T) {
	b := loadK8s(t)
	for _, role := range []string{"edge", "feed", "upload", "blob"} {
		w := b.byRole(t, role)
		dir, v := secretMount(w, "extagram-mesh-"+role)
		if v == nil {
			t.Errorf("%s mounts no Secret extagram-mesh-%s read-only", w.key, role)
			continue
		}
		paths := map[string]string{}
		for _, it := range v.Secret.Items {
			paths[it.Key] = dir + "/" + it.Path
		}
		files := meshFiles(dir, role)
		check(t, paths["ca.crt"] == files["mesh-ca"] && paths["tls.crt"] == files["mesh-cert"] && paths["tls.key"] == files["mesh-key"] && len(paths) == 3,
			"%s: the Secret's keys land at %v, want ca.crt, tls.crt and tls.key at %v", w.key, paths, files)
		psc := ptr.Deref(w.pod.Spec.SecurityContext, corev1.PodSecurityContext{})
		check(t, ptr.Deref(v.Secret.DefaultMode, 0o644) == 0o440 && ptr.Deref(psc.FSGroup, 0) == ptr.Deref(psc.RunAsGroup, -1),
			"%s: the key is mode %o with fsGroup %v, want 0440 for the process's group only", w.key, ptr.Deref(v.Secret.DefaultMode, 0o644), psc.FSGroup)
		for f, want := range files {
			got, _ := flagValue(w.c.Args, f)
			check(t, got == want, "%s: --%s %q, want %q", w.key, f, got, want)
		}
		_, insecure := flagValue(w.c.Args, "mesh-insecure")
		check(t, !insecure, "%s runs with --mesh-insecure", w.key)
		for _, other := range []string{"edge", "feed", "upload", "blob", "operator"} {
			if _, v := secretMount(w, "extagram-mesh-"+other); other != role {
				check(t, v == nil, "%s also mounts the %s identity", w.key, other)
			}
		}
	}
}

func TestKubernetesWorkloadsAreHardened(t *testing.T) {
	b, liveness := loadK8s(t), livenessService(t)
	for _, w := range b.workloads {
		pod, psc := w.pod.Spec, ptr.Deref(w.pod.Spec.SecurityContext, corev1.PodSecurityContext{})
		if w.selector != nil {
			sel, err := metav1.LabelSelectorAsSelector(w.selector)
			check(t, err == nil && selects(sel, w.pod.Labels), "%s: selector %v does not match its pods' labels %v", w.key, w.selector, w.pod.Labels)
		}
		check(t, len(pod.Containers) == 1, "%s: %d containers, want 1", w.key, len(pod.Containers))
		check(t, !ptr.Deref(pod.AutomountServiceAccountToken, true), "%s mounts a service account token", w.key)
		check(t, psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault, "%s: want the RuntimeDefault seccomp profile", w.key)
		for _, c := range slices.Concat(pod.Containers, pod.InitContainers) {
			name, sc := w.key+"/"+c.Name, ptr.Deref(c.SecurityContext, corev1.SecurityContext{})
			caps := ptr.Deref(sc.Capabilities, corev1.Capabilities{})
			check(t, ptr.Deref(sc.RunAsNonRoot, ptr.Deref(psc.RunAsNonRoot, false)) && ptr.Deref(psc.RunAsUser, 1) != 0 && ptr.Deref(sc.RunAsUser, 1) != 0, "%s: runAsNonRoot is not true, or runAsUser is 0", name)
			check(t, ptr.Deref(sc.ReadOnlyRootFilesystem, false), "%s: readOnlyRootFilesystem is not true", name)
			check(t, !ptr.Deref(sc.AllowPrivilegeEscalation, true) && !ptr.Deref(sc.Privileged, false), "%s: allowPrivilegeEscalation is not false, or it is privileged", name)
			check(t, slices.Contains(caps.Drop, "ALL") && len(caps.Add) == 0, "%s: capabilities drop %v add %v, want drop [ALL] and nothing added", name, caps.Drop, caps.Add)
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
				check(t, !req.IsZero() && !lim.IsZero(), "%s: no %s request and limit", name, r)
			}
			image := b.workloads[0].c.Image
			check(t, c.Image == image && len(c.Command) == 0, "%s: image %q command %v, want the one image %q and its entrypoint", name, c.Image, c.Command, image)
			// With a read-only root, every folder the binary writes is a volume.
			for _, f := range []string{"data-dir", "uploads-dir"} {
				dir, ok := flagValue(c.Args, f)
				check(t, !ok || slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
					return !m.ReadOnly && (dir == m.MountPath || strings.HasPrefix(dir, strings.TrimSuffix(m.MountPath, "/")+"/"))
				}), "%s: --%s %s is on the read-only root file system", name, f, dir)
			}
		}
		if w.selector == nil {
			continue // a Job: no probes
		}
		ready, live := w.c.ReadinessProbe, w.c.LivenessProbe
		if ready == nil || live == nil {
			t.Errorf("%s: want readiness and liveness probes", w.key)
		} else if w.c.Args[0] == "edge" {
			https, _ := flagValue(w.c.Args, "https-addr")
			for path, p := range map[string]*corev1.Probe{"/readyz": ready, "/healthz": live} {
				g := p.HTTPGet
				check(t, g != nil && g.Path == path && g.Scheme == corev1.URISchemeHTTPS && containerPort(w.c, g.Port) == addrPort(t, https), "%s: want an HTTPS GET %s on --https-addr %s", w.key, path, https)
			}
		} else {
			// Readiness follows the database (the server's overall status);
			// liveness must not, or an outage restarts every pod. The
			// services speak only mutual TLS, which the kubelet's gRPC probes
			// cannot: the binary probes them, as the pod's own identity.
			addr, _ := flagValue(w.c.Args, "grpc-addr")
			dir, _ := secretMount(w, "extagram-mesh-"+w.c.Args[0])
			for service, p := range map[string]*corev1.Probe{"": ready, liveness: live} {
				if p.Exec == nil || len(p.Exec.Command) < 3 || !slices.Equal(p.Exec.Command[:2], []string{"/extagram", "health"}) {
					t.Errorf("%s: probe %v, want /extagram health", w.key, p.ProbeHandler)
					continue
				}
				cmd := p.Exec.Command[1:]
				target, _ := flagValue(cmd, "grpc-addr")
				svc, _ := flagValue(cmd, "service")
				check(t, target != "" && addrPort(t, target) == addrPort(t, addr) && svc == service, "%s: probe %q, want --grpc-addr on the port of %s and the health service %q", w.key, cmd, addr, service)
				for f, want := range meshFiles(dir, w.c.Args[0]) {
					got, _ := flagValue(cmd, f)
					check(t, got == want, "%s: probe --%s %q, want the pod's own %q", w.key, f, got, want)
				}
			}
		}
	}
}

// livenessService returns grpcsrv.LivenessService, the health service that
// reports SERVING while the process runs whatever the database does, read
// from the package's source so that the test does not build the gRPC stack.
func livenessService(t *testing.T) string {
	t.Helper()
	for _, path := range must(filepath.Glob(repoRoot + "/internal/grpcsrv/*.go")) {
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for n := range ast.Preorder(f) {
			if v, ok := n.(*ast.ValueSpec); ok && len(v.Names) == 1 && v.Names[0].Name == "LivenessService" && len(v.Values) == 1 {
				if lit, ok := v.Values[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					return must(strconv.Unquote(lit.Value))
				}
			}
		}
	}
	t.Fatal("internal/grpcsrv declares no LivenessService constant")
	return ""
}

// The edge dials dns:///NAME:PORT for each service; NAME must be a Service
// that selects the pods running that role, on PORT, and the feed's must be
// headless so that the name resolves to every pod. Their flags are the
// Compose file's (TestComposeAndKubernetesAgree).
func TestKubernetesEdgeTargetsReachEveryReplica(t *testing.T) {
	b := loadK8s(t)
	edge := b.byRole(t, "edge").c
	for role, replicas := range map[string]int32{"feed": 2, "upload": 1, "blob": 1} {
		target, _ := flagValue(edge.Args, role+"-target")
		host, port := parseDNSTarget(t, target)
		name, _, _ := strings.Cut(host, ".")
		svc, ok := b.services[name]
		if !ok {
			t.Errorf("%s names Service %q, which does not exist", target, name)
			continue
		}
		check(t, role != "feed" || svc.Spec.ClusterIP == corev1.ClusterIPNone, "Service %s is not headless (clusterIP: None): its name would be one virtual IP, not every replica", name)
		w := b.byRole(t, role)
		for _, other := range b.workloads {
			check(t, selects(labels.SelectorFromSet(svc.Spec.Selector), other.pod.Labels) == (other == w), "Service %s selects %v: want the %s pods and no other (%s)", name, svc.Spec.Selector, role, other.key)
		}
		addr, _ := flagValue(w.c.Args, "grpc-addr")
		check(t, slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
			return int(p.Port) == port && containerPort(w.c, p.TargetPort) == addrPort(t, addr)
		}), "Service %s has no port %d onto --grpc-addr %s of %s", name, port, addr, role)
		check(t, w.replicas >= replicas, "%s has %d replicas, want at least %d", role, w.replicas, replicas)
	}
	// The edge Service publishes 443 and 80 onto --https-addr and --http-addr.
	https, _ := flagValue(edge.Args, "https-addr")
	http, _ := flagValue(edge.Args, "http-addr")
	want := map[int]int{443: addrPort(t, https), 80: addrPort(t, http)}
	for _, p := range b.services["edge"].Spec.Ports {
		if to, ok := want[int(p.Port)]; ok && containerPort(edge, p.TargetPort) == to {
			delete(want, int(p.Port))
		}
	}
	check(t, len(want) == 0, "Service edge does not map %v", want)
}

func TestKubernetesUploadsClaimShared(t *testing.T) {
	b := loadK8s(t)
	if len(b.pvcs) != 1 {
		t.Fatalf("%d PersistentVolumeClaims, want the one uploads claim", len(b.pvcs))
	}
	for name, pvc := range b.pvcs {
		check(t, slices.Contains(pvc.Spec.AccessModes, corev1.ReadWriteMany), "claim %s is %v: upload and blob pods on different nodes need ReadWriteMany", name, pvc.Spec.AccessModes)
		for _, w := range b.workloads {
			dir, hasDir := flagValue(w.c.Args, "uploads-dir")
			var vols []string // those of the claim, and those read-write
			for _, v := range w.pod.Spec.Volumes {
				if claim := v.PersistentVolumeClaim; claim != nil && claim.ClaimName == name {
					vols = append(vols, v.Name)
					check(t, !claim.ReadOnly, "%s mounts claim %s read-only", w.key, name)
				}
			}
			if r := w.c.Args[0]; r == "upload" || r == "blob" {
				check(t, hasDir && slices.ContainsFunc(w.c.VolumeMounts, func(m corev1.VolumeMount) bool {
					return slices.Contains(vols, m.Name) && m.MountPath == dir && !m.ReadOnly
				}),
					"%s does not mount claim %s read-write at its --uploads-dir %q", r, name, dir)
			} else {
				check(t, len(vols) == 0, "%s mounts the uploads claim too", w.key)
			}
		}
	}
}

// Compose and Kubernetes start each role with the same flags, but for the
// certificate files that only Kubernetes mounts.
func TestComposeAndKubernetesAgree(t *testing.T) {
	p, b := loadComposeModel(t).p, loadK8s(t)
	for _, r := range []string{"edge", "feed", "upload", "blob", "migrate"} {
		k := flagSet(b.byRole(t, r).c.Args, "tls-cert", "tls-key")
		for _, s := range p.Services {
			if c := flagSet(s.Command, "tls-cert", "tls-key"); role(s) == r {
				check(t, maps.Equal(c, k), "%s: compose runs %v, kubernetes %v", r, c, k)
			}
		}
	}
}
