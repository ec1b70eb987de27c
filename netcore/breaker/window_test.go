package breaker

import (
	"testing"
	"time"
)

func TestWindowRollOver(t *testing.T) {
	const s = int64(time.Second)
	w := newWindow(s, 10) // 10 s in 1 s slices
	w.add(0, true)        // slice 0
	w.add(s/2, false)     // slice 0
	w.add(3*s, true)      // slice 3
	w.add(9*s+s/2, false) // slice 9
	tests := []struct {
		at              int64
		calls, failures int
		what            string
	}{
		{9 * s, 4, 2, "all four inside"},
		{10*s - 1, 4, 2, "last instant of slice 9: slice 0 still in"},
		{10 * s, 2, 1, "slice 10 starts: slice 0 leaves"},
		{13*s - 1, 2, 1, "slice 3 still in"},
		{13 * s, 1, 0, "slice 3 leaves"},
		{19 * s, 0, 0, "slice 9 leaves"},
	}
	for _, tt := range tests {
		c, f := w.sum(tt.at)
		if c != tt.calls || f != tt.failures {
			t.Errorf("%s: sum(%v) = %d calls, %d failures; want %d, %d", tt.what, time.Duration(tt.at), c, f, tt.calls, tt.failures)
		}
	}

	// A slot reused by a later epoch starts from zero.
	w.add(20*s, true)
	if c, f := w.sum(20 * s); c != 1 || f != 1 {
		t.Errorf("after reuse: %d calls, %d failures; want 1, 1", c, f)
	}
	w.reset()
	if c, f := w.sum(20 * s); c != 0 || f != 0 {
		t.Errorf("after reset: %d calls, %d failures; want 0, 0", c, f)
	}
}
