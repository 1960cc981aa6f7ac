package hatest

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Sample is one page load.
type Sample struct {
	Start   time.Duration // since the load began
	Latency time.Duration
	Status  int    // 0 when no answer came
	Err     string // the client's error, if any
}

func (s Sample) String() string {
	what := fmt.Sprintf("status %d", s.Status)
	if s.Err != "" {
		what = s.Err
	}
	return fmt.Sprintf("at %s after %s: %s", s.Start.Round(time.Millisecond), s.Latency.Round(time.Millisecond), what)
}

// Load is clients each loading a page in a loop, as fast as answers come.
type Load struct {
	began   time.Time
	stop    atomic.Bool
	left    atomic.Int64 // page loads still to send
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples []Sample
}

// StartLoad starts clients loading url until Stop, or until limit page
// loads if limit > 0.
func StartLoad(client *http.Client, url string, clients int, limit int64) *Load {
	l := &Load{began: time.Now()}
	l.left.Store(cmp.Or(limit, 1<<62))
	for range clients {
		l.wg.Go(func() {
			var mine []Sample
			for !l.stop.Load() && l.left.Add(-1) >= 0 {
				start := time.Now()
				// Not stopped by Stop: a running request finishes.
				code, _, _, err := get(context.Background(), client, url)
				s := Sample{Start: start.Sub(l.began), Latency: time.Since(start), Status: code}
				if err != nil {
					s.Err = err.Error()
				}
				mine = append(mine, s)
			}
			l.mu.Lock()
			l.samples = append(l.samples, mine...)
			l.mu.Unlock()
		})
	}
	return l
}

// WaitUntil waits until the load has run for d, or ctx is done.
func (l *Load) WaitUntil(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(time.Until(l.began.Add(d)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Wait waits for a limited load to end and returns its samples by start.
func (l *Load) Wait() []Sample {
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.SortFunc(l.samples, func(a, b Sample) int { return int(a.Start - b.Start) })
	return l.samples
}

// Stop lets the clients finish their requests and returns Wait's samples.
func (l *Load) Stop() []Sample {
	l.stop.Store(true)
	return l.Wait()
}

// Stats summarizes page loads.
type Stats struct {
	Sent, Failed   int
	P50, P99, Max  time.Duration
	FirstFailures  []Sample // up to 5
	FailedStatuses map[int]int
}

// Summarize summarizes the samples that started in [from, to), or from on
// if to <= 0.
func Summarize(samples []Sample, from, to time.Duration) Stats {
	st := Stats{FailedStatuses: map[int]int{}}
	var lat []time.Duration
	for _, s := range samples {
		if s.Start < from || (to > 0 && s.Start >= to) {
			continue
		}
		st.Sent++
		lat = append(lat, s.Latency)
		if s.Status != http.StatusOK {
			st.Failed++
			st.FailedStatuses[s.Status]++
			if len(st.FirstFailures) < 5 {
				st.FirstFailures = append(st.FirstFailures, s)
			}
		}
	}
	if len(lat) == 0 {
		return st
	}
	slices.Sort(lat)
	// nearest-rank percentiles
	rank := func(q float64) time.Duration {
		return lat[max(0, min(int(float64(len(lat))*q+0.999999)-1, len(lat)-1))]
	}
	st.P50, st.P99, st.Max = rank(0.50), rank(0.99), lat[len(lat)-1]
	return st
}
