package deploy

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// peer is one end of a connection: a pod of the base by its labels, or
// something outside the namespace (nil labels: a browser, MySQL).
type peer map[string]string

func component(c string) peer {
	return peer{"app.kubernetes.io/name": "extagram", "app.kubernetes.io/component": c}
}

// allowed reports whether the base's NetworkPolicies let from open a TCP
// connection to port of to: the egress rules of the policies selecting
// from (when from is a pod of the namespace) and the ingress rules of
// those selecting to (when to is one) must both allow it. A pod that no
// policy of a direction selects is open in that direction, as Kubernetes
// has it.
func allowed(policies []*networkingv1.NetworkPolicy, from, to peer, port int) bool {
	side := func(pod, other peer, kind networkingv1.PolicyType) bool {
		if pod == nil {
			return true // not in the namespace: not ours to say
		}
		selected := false
		for _, p := range policies {
			sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
			if err != nil || !sel.Matches(labels.Set(pod)) || !hasType(p, kind) {
				continue
			}
			selected = true
			if kind == networkingv1.PolicyTypeIngress {
				for _, r := range p.Spec.Ingress {
					if peersMatch(r.From, other) && portsMatch(r.Ports, port) {
						return true
					}
				}
			} else {
				for _, r := range p.Spec.Egress {
					if peersMatch(r.To, other) && portsMatch(r.Ports, port) {
						return true
					}
				}
			}
		}
		return !selected
	}
	return side(from, to, networkingv1.PolicyTypeEgress) && side(to, from, networkingv1.PolicyTypeIngress)
}

func hasType(p *networkingv1.NetworkPolicy, kind networkingv1.PolicyType) bool {
	for _, t := range p.Spec.PolicyTypes {
		if t == kind {
			return true
		}
	}
	return false
}

// peersMatch: an empty list is everyone; a pod selector matches pods of
// the namespace only (the base uses no namespace or IP selectors).
func peersMatch(peers []networkingv1.NetworkPolicyPeer, other peer) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if p.PodSelector == nil || p.NamespaceSelector != nil || p.IPBlock != nil || other == nil {
			continue
		}
		if sel, err := metav1.LabelSelectorAsSelector(p.PodSelector); err == nil && sel.Matches(labels.Set(other)) {
			return true
		}
	}
	return false
}

func portsMatch(ports []networkingv1.NetworkPolicyPort, port int) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if (p.Protocol == nil || *p.Protocol == "TCP") && (p.Port == nil || p.Port.IntValue() == port) {
			return true
		}
	}
	return false
}

// TestKubernetesNetworkPolicies: only the edge reaches the services, only
// the services and the migrate Job reach MySQL, the edge faces the
// browsers, metrics can be scraped, the edge and feed reach Telegram's
// HTTPS and every role a trace collector; nothing else gets through.
func TestKubernetesNetworkPolicies(t *testing.T) {
	b := loadK8s(t)
	check(t, len(b.policies) > 0, "the base has no NetworkPolicy")
	edge, feed, upload, blob, migrate := component("edge"), component("feed"), component("upload"), component("blob"), component("migrate")
	stranger := peer{"app": "something-else"} // another pod of the namespace
	var outside peer                          // a browser, MySQL, Prometheus elsewhere
	for _, c := range []struct {
		name     string
		from, to peer
		port     int
		want     bool
	}{
		{"edge to feed", edge, feed, 50051, true},
		{"edge to upload", edge, upload, 50051, true},
		{"edge to blob", edge, blob, 50051, true},
		{"a browser to the edge's HTTPS", outside, edge, 8443, true},
		{"a browser to the edge's HTTP", outside, edge, 8080, true},
		{"feed to MySQL", feed, outside, 3306, true},
		{"upload to MySQL", upload, outside, 3306, true},
		{"blob to MySQL", blob, outside, 3306, true},
		{"migrate to MySQL", migrate, outside, 3306, true},
		{"a scrape of the edge's metrics", outside, edge, 9090, true},
		{"a scrape of feed's metrics", outside, feed, 9090, true},
		{"the edge to MySQL", edge, outside, 3306, false},
		{"a browser to feed", outside, feed, 50051, false},
		{"another pod to feed", stranger, feed, 50051, false},
		{"another pod to blob", stranger, blob, 50051, false},
		{"feed to blob", feed, blob, 50051, false},
		{"upload to feed", upload, feed, 50051, false},
		{"migrate to upload", migrate, upload, 50051, false},
		{"a browser to migrate", outside, migrate, 50051, false},
		// The Telegram Bot API, at addresses no policy can name.
		{"the edge to Telegram", edge, outside, 443, true},
		{"feed to Telegram", feed, outside, 443, true},
		{"upload to elsewhere", upload, outside, 443, false},
		{"blob to elsewhere", blob, outside, 443, false},
		{"migrate to elsewhere", migrate, outside, 443, false},
		{"feed to elsewhere", feed, outside, 8080, false},
		// Spans to an OTLP collector.
		{"the edge to a trace collector", edge, outside, 4317, true},
		{"upload to a trace collector", upload, outside, 4317, true},
		{"a stranger to a trace collector", stranger, outside, 4317, false},
	} {
		if got := allowed(b.policies, c.from, c.to, c.port); got != c.want {
			t.Errorf("%s on port %d: allowed %v, want %v", c.name, c.port, got, c.want)
		}
	}
}
