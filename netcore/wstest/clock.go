package wstest

import (
	"sync"
	"time"
)

// Clock is a settable clock for the Now of a Config or Options under test:
// it starts at 2026-11-27 12:00 UTC (aligned to the hour, so windows and
// history periods start clean) and moves only by Advance. It is safe for
// concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock at 2026-11-27 12:00 UTC.
func NewClock() *Clock {
	return &Clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock d forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
