package metrics

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is an injectable Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	// Aligned to the hour so window chunks and history periods start clean.
	return &fakeClock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTestMetrics returns a Metrics on a fake clock whose process reader is
// canned, so that sampling is cheap and deterministic.
func newTestMetrics(t testing.TB, o Options) (*Metrics, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	if o.Now == nil {
		o.Now = clk.Now
	}
	m, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	m.proc.read = func() (procReading, error) {
		return procReading{cpuSeconds: 1, rssBytes: 1 << 20, threads: 4, load: [3]float64{0.5, 0.25, 0.125}}, nil
	}
	t.Cleanup(func() { m.Close() })
	return m, clk
}
