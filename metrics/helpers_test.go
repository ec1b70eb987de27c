package metrics

import (
	"testing"

	"github.com/sockmon/sockmon/netcore/wstest"
)

// fakeClock is an injectable Options.Now.
type fakeClock = wstest.Clock

func newFakeClock() *fakeClock { return wstest.NewClock() }

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
