package loadtest

import (
	"context"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Clock is the time source of a run. Implementations must be safe for
// concurrent use.
type Clock interface {
	// Now returns the time elapsed since the clock's fixed epoch; it never
	// goes backwards.
	Now() time.Duration
	// SleepUntil blocks until Now() >= t or ctx is done, whichever is first.
	SleepUntil(ctx context.Context, t time.Duration)
}

// realClock is the monotonic clock, counting from base.
type realClock struct{ base time.Time }

// NewClock returns the real monotonic clock with its epoch at the call.
func NewClock() Clock { return realClock{base: time.Now()} }

func (c realClock) Now() time.Duration { return time.Since(c.base) }

// SleepUntil waits on a runtime timer for all but the last 2ms (so that a
// cancelled context is noticed) and then with nanosleep, which wakes within
// tens of microseconds when the thread's timer slack is 1ns (see
// lockPreciseThread). Runtime timers overshoot short sleeps by about a
// millisecond on this kind of machine, and in the open model that overshoot
// would be charged to the server as latency.
func (c realClock) SleepUntil(ctx context.Context, t time.Duration) {
	const coarse = 2 * time.Millisecond
	d := t - c.Now()
	if d <= 0 {
		return
	}
	if d > coarse {
		timer := time.NewTimer(d - coarse)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		d = t - c.Now()
	}
	if d > 0 {
		ts := unix.NsecToTimespec(int64(d))
		for unix.Nanosleep(&ts, &ts) == unix.EINTR {
		}
	}
}

// lockPreciseThread wires the calling goroutine to its thread for the rest
// of the goroutine's life and sets that thread's timer slack to 1ns, so that
// nanosleep in SleepUntil is precise. The goroutine must not unlock: when it
// exits still locked, the runtime terminates the thread, so the changed
// slack never serves another goroutine.
func lockPreciseThread() {
	runtime.LockOSThread()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
}
