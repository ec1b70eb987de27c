package breaker

import (
	"testing"

	"github.com/sockmon/sockmon/netcore/wstest"
)

// fakeClock is an injectable Config.Now.
type fakeClock = wstest.Clock

func newFakeClock() *fakeClock { return wstest.NewClock() }

// fixedRand is an injectable Config.Rand.
func fixedRand(r float64) func() float64 { return func() float64 { return r } }

// newTestBreaker returns a breaker named "test" on a fake clock and no
// jitter unless cfg sets Rand.
func newTestBreaker(t testing.TB, cfg Config) (*Breaker, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	if cfg.Now == nil {
		cfg.Now = clk.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = fixedRand(0)
	}
	b, err := New("test", cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b, clk
}

// call runs one call through b with the given outcome: 'S' success, 'F'
// failure, 'I' ignore. It reports whether the breaker admitted it.
func call(t testing.TB, b *Breaker, o byte) bool {
	t.Helper()
	tk, err := b.Allow()
	if err != nil {
		return false
	}
	switch o {
	case 'S':
		tk.Success()
	case 'F':
		tk.Failure("test")
	case 'I':
		tk.Ignore()
	default:
		t.Fatalf("bad outcome %q", o)
	}
	return true
}

// calls runs each outcome of seq in turn and returns how many were
// admitted.
func calls(t testing.TB, b *Breaker, seq string) int {
	t.Helper()
	n := 0
	for i := 0; i < len(seq); i++ {
		if call(t, b, seq[i]) {
			n++
		}
	}
	return n
}

// trip opens b with consecutive failures.
func trip(t testing.TB, b *Breaker) {
	t.Helper()
	for range b.cfg.ConsecutiveFailures {
		call(t, b, 'F')
	}
	if s := b.State(); s != Open {
		t.Fatalf("state after %d failures = %v, want open", b.cfg.ConsecutiveFailures, s)
	}
}
