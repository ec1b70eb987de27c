// Package breaker is sockmon's circuit breaker: one type around every
// dependency that can fail — the upstream services of the rpc envelope
// (netcore/upstream), alert notification channels, the Redis backplane.
//
// # Use
//
//	b, err := breaker.New("ai", breaker.Config{}) // zero fields: defaults
//	b.OnChange(func(e breaker.Event) { log.Info("circuit breaker", "name", e.Name, "from", e.From, "to", e.To, "reason", e.Reason) })
//	...
//	t, err := b.Allow()
//	if err != nil {
//		var oe *breaker.OpenError // errors.Is(err, breaker.ErrOpen) also holds
//		errors.As(err, &oe)       // oe.RetryAfter: time until the next probe
//		return unavailable(oe.RetryAfter)
//	}
//	resp, err := call()
//	switch {
//	case isTimeout(err), isConnError(err), resp.Status >= 500:
//		t.Failure("timeout") // a short, bounded class: shown in snapshots
//	case callerGaveUp(err):
//		t.Ignore()
//	default: // 2xx, and 4xx too: the dependency answered
//		t.Success()
//	}
//
// The caller classifies outcomes: the breaker only counts them. Each Ticket
// is reported exactly once.
//
// # Behaviour and defaults
//
// Closed, the breaker counts outcomes in a rolling window (10 s in 10
// slices). It trips to open when the window holds at least MinCalls (20)
// calls of which at least FailureRatio (0.5) failed, or after
// ConsecutiveFailures (5) failures in a row, whichever comes first. Open,
// it rejects every call with an *OpenError carrying the time left. When
// the open period ends, the next call (or State/Snapshot) turns it
// half-open: HalfOpenProbes (1) calls go through as probes; that many
// successes close it, one failure opens it again. The open period starts
// at OpenBase (5 s) and doubles with every trip up to OpenMax (60 s); each
// period is shortened by a random fraction below Jitter (0.2), so it lies
// in (0.8·d, d]. SuccessStreak (10) successes in a row bring the next
// period back to OpenBase. Reset closes the breaker at once (the admin's
// reset_circuit_breaker).
//
// Config takes a clock (Now) and a jitter source (Rand), so tests drive
// the arithmetic without sleeping. Snapshot copies the state for health
// and admin views; RegisterMetrics exports sockmon_circuit_breaker_state.
//
// # Cost and concurrency
//
// One small mutex per breaker, held for a few arithmetic operations; no
// goroutine, no allocation except when a transition queues an Event. That
// is meant for once per call to a dependency, not once per WebSocket
// message. The OnChange hook runs after the lock is released, on the
// goroutine whose call caused the transition, one event at a time and in
// order: it must not block. Logging one line per transition is the
// caller's job, from the hook.
//
// # Why not sony/gobreaker
//
// github.com/sony/gobreaker/v2 (v2.4.0) was the first candidate. Building
// on it cleanly is not possible: its open period is one fixed Timeout (no
// exponential growth, no jitter, and no way to change it without a new
// breaker, which would lose the state); it reads time.Now directly, so the
// window and open-time arithmetic can only be tested by sleeping; its
// ErrOpenState carries no retry-after; OnStateChange runs while its mutex
// is held, so a hook cannot read the breaker; and it has no manual reset
// and no snapshot of openedAt/nextAttemptAt/last error. Its ReadyToTrip
// can express ratio-with-minimum-calls over its rolling buckets, but with
// the rest missing a wrapper would re-implement most of the state machine
// around it. This package has those built in, in a few hundred lines.
package breaker
