package metrics

import "time"

// Rolling windows. Each window is a ring of chunks plus their running sum:
// the 1-minute window has 12 chunks of 5 s, the 5-minute window 10 of 30 s,
// the 15-minute window 15 of 1 min. What a collect finds goes into the chunk
// of the time of the collect; when time moves to the next chunk the oldest
// chunk is subtracted from the sum and reused. A window therefore covers its
// full span minus at most one chunk, plus the current partial chunk, and
// reading it costs one pass over the sum, never a merge of chunks. Chunks are
// aligned to Unix time, so all nodes roll at the same instants. A chunk
// remembers the time of the collect before its first one: its data covers
// the time since then, which is the span the rates divide by.

// Window indexes Snapshot.Windows.
const (
	Window1m = iota
	Window5m
	Window15m
	WindowSinceStart
	NumWindows
)

// numRolling is the number of rolling windows (all but since-start).
const numRolling = WindowSinceStart

var windowSpecs = [numRolling]struct {
	name   string
	span   time.Duration
	chunks int
}{
	{"1m", time.Minute, 12},
	{"5m", 5 * time.Minute, 10},
	{"15m", 15 * time.Minute, 15},
}

var windowNames = [NumWindows]string{"1m", "5m", "15m", "start"}

type window struct {
	chunk   time.Duration
	slots   []slice
	from    []time.Time // per slot: start of the time its data covers; zero while empty
	cur     int64       // chunk number (Unix time / chunk) of the newest slot
	started bool
	last    time.Time // time of the last add
	sum     slice
}

// newWindow returns a window of span in chunks whose data starts at start.
func newWindow(span time.Duration, chunks int, start time.Time) *window {
	return &window{
		chunk: span / time.Duration(chunks),
		slots: make([]slice, chunks),
		from:  make([]time.Time, chunks),
		last:  start,
	}
}

func (w *window) chunkOf(t time.Time) int64 {
	return t.UnixNano() / int64(w.chunk)
}

// advance rolls w forward to now, dropping the chunks that fell out.
func (w *window) advance(now time.Time) {
	c := w.chunkOf(now)
	if !w.started {
		w.cur, w.started = c, true
		return
	}
	if c <= w.cur {
		return
	}
	n := int64(len(w.slots))
	if c-w.cur >= n {
		for i := range w.slots {
			w.slots[i].reset()
			w.from[i] = time.Time{}
		}
		w.sum.reset()
		w.cur = c
		return
	}
	for w.cur < c {
		w.cur++
		i := w.cur % n
		w.sum.sub(&w.slots[i])
		w.slots[i].reset()
		w.from[i] = time.Time{}
	}
}

// add puts d, collected at now, into the current chunk.
func (w *window) add(d *slice, now time.Time) {
	i := w.cur % int64(len(w.slots))
	if w.from[i].IsZero() {
		w.from[i] = w.last
	}
	w.last = now
	w.slots[i].add(d)
	w.sum.add(d)
}

// span is how much time the data of the window covers at now.
func (w *window) span(now time.Time) time.Duration {
	n := int64(len(w.slots))
	for c := w.cur - n + 1; c <= w.cur; c++ {
		if f := w.from[(c%n+n)%n]; !f.IsZero() {
			return now.Sub(f)
		}
	}
	return 0
}
