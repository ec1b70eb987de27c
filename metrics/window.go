package metrics

import "time"

// Rolling windows. Each window is a ring of chunks plus their running sum:
// the 1-minute window has 12 chunks of 5 s, the 5-minute window 10 of 30 s,
// the 15-minute window 15 of 1 min. What a collect finds goes into the chunk
// of the time of the collect; when time moves to the next chunk the oldest
// chunk is subtracted from the sum and reused. A window therefore covers its
// full span minus at most one chunk, plus the current partial chunk, and
// reading it costs one pass over the sum, never a merge of chunks. Chunks are
// aligned to Unix time, so all nodes roll at the same instants.

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
	cur     int64 // chunk number (Unix time / chunk) of the newest slot
	started bool
	sum     slice
}

func newWindow(span time.Duration, chunks int) *window {
	return &window{chunk: span / time.Duration(chunks), slots: make([]slice, chunks)}
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
		}
		w.sum.reset()
		w.cur = c
		return
	}
	for w.cur < c {
		w.cur++
		s := &w.slots[w.cur%n]
		w.sum.sub(s)
		s.reset()
	}
}

// add puts d into the current chunk.
func (w *window) add(d *slice) {
	w.slots[w.cur%int64(len(w.slots))].add(d)
	w.sum.add(d)
}

// span is how much time the window covers at now, given the time data
// started to come in.
func (w *window) span(now, start time.Time) time.Duration {
	full := time.Duration(len(w.slots)-1)*w.chunk + now.Sub(time.Unix(0, w.cur*int64(w.chunk)))
	if up := now.Sub(start); up < full {
		return up
	}
	return full
}
