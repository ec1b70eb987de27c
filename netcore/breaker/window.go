package breaker

import "math"

// window counts calls and failures over the last Config.Window, in
// Config.Buckets slices of equal span. Time is nanoseconds since the
// Breaker was created (monotonic when the clock is time.Now). Slice i of
// the ring holds the slice whose epoch (time/span) is congruent to i; a
// slice whose epoch is older than the window is stale and counts as empty.
// Not safe for concurrent use: the Breaker's mutex guards it.
type window struct {
	span  int64 // nanoseconds per slice
	slots []slot
}

type slot struct {
	epoch           int64
	calls, failures int
}

func newWindow(span int64, n int) window {
	w := window{span: span, slots: make([]slot, n)}
	w.reset()
	return w
}

// reset empties the window.
func (w *window) reset() {
	for i := range w.slots {
		w.slots[i] = slot{epoch: math.MinInt64}
	}
}

// add records one call at now.
func (w *window) add(now int64, failure bool) {
	e := now / w.span
	s := &w.slots[e%int64(len(w.slots))]
	if s.epoch != e {
		*s = slot{epoch: e}
	}
	s.calls++
	if failure {
		s.failures++
	}
}

// sum returns the calls and failures of the slices within the window that
// ends at now: the current slice and the len(slots)-1 before it.
func (w *window) sum(now int64) (calls, failures int) {
	e := now / w.span
	oldest := e - int64(len(w.slots)) + 1
	for _, s := range w.slots {
		if s.epoch >= oldest && s.epoch <= e {
			calls += s.calls
			failures += s.failures
		}
	}
	return calls, failures
}
