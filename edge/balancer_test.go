package edge

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestOutliersEjectAndForgive(t *testing.T) {
	o := newOutliers()
	now := time.Now()
	lost := status.Error(codes.Canceled, "lost to a hedge")
	for i := range ejectAfter - 1 {
		o.record("a", lost, now)
		if o.ejected("a", now) {
			t.Fatalf("ejected after %d failures, want %d", i+1, ejectAfter)
		}
	}
	o.record("a", lost, now)
	if !o.ejected("a", now) || o.ejected("a", now.Add(ejectBase)) {
		t.Fatalf("want ejected for %v after %d failures", ejectBase, ejectAfter)
	}
	if o.ejected("b", now) {
		t.Fatal("another replica ejected")
	}
	// Still failing after the ejection: ejected again, for longer, up to
	// ejectMax.
	at := now.Add(ejectBase)
	for _, want := range []time.Duration{2 * ejectBase, ejectMax, ejectMax} {
		for range ejectAfter {
			o.record("a", status.Error(codes.Unavailable, "refused"), at)
		}
		if !o.ejected("a", at.Add(want-time.Millisecond)) || o.ejected("a", at.Add(want)) {
			t.Fatalf("want a second ejection of %v", want)
		}
		at = at.Add(want)
	}
	// One answer, even an error answer, clears the record.
	o.record("a", status.Error(codes.NotFound, "no such post"), at)
	for range ejectAfter - 1 {
		o.record("a", lost, at)
	}
	if o.ejected("a", at) {
		t.Fatal("an answered call did not clear the failures")
	}
	o.record("a", nil, at)
	if len(o.by) != 0 {
		t.Fatalf("records left after successes: %v", o.by)
	}
}
