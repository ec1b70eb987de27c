package breaker

import (
	"sync"
	"time"
)

// Breaker is a circuit breaker. Create it with New; all methods are safe
// for concurrent use. It is meant to be asked once per call to a
// dependency (an RPC, a notification, a backplane command), not once per
// WebSocket message: every method takes one small mutex for a few
// arithmetic operations and allocates nothing, except when a transition
// queues an Event.
//
// The state machine (every transition starts a new generation, which
// voids the outcomes of calls admitted before it):
//
//	closed    --(ratio over the window, or consecutive failures)--> open
//	open      --(the open period is over; seen by the next call,
//	             State or Snapshot)--------------------------------> half_open
//	half_open --(HalfOpenProbes successes)-------------------------> closed
//	half_open --(one probe failure)--------------------------------> open (longer)
//	any       --(Reset)------------------------------------------> closed
type Breaker struct {
	name string
	cfg  Config // with defaults
	base time.Time

	mu          sync.Mutex
	state       State
	gen         uint64 // bumped by every transition and by Reset
	win         window
	consecutive int // failures in a row
	streak      int // successes in a row
	level       int // trips since the last success streak: the exponent of the open period
	probes      int // half-open: probes admitted and not ignored
	probeOK     int // half-open: probes that succeeded
	openedAt    time.Time
	openFor     time.Duration
	nextAttempt time.Time
	lastClass   string
	lastErrorAt time.Time
	tripCalls   int // window at the last trip, shown while open
	tripFails   int
	counts      Counts

	onChange   func(Event)
	pending    []Event
	delivering bool
}

// Counts are totals since the breaker was created; Reset does not clear
// them.
type Counts struct {
	Calls     uint64 `json:"calls"`     // admitted by Allow
	Successes uint64 `json:"successes"` // Ticket.Success
	Failures  uint64 `json:"failures"`  // Ticket.Failure
	Ignored   uint64 `json:"ignored"`   // Ticket.Ignore
	Rejected  uint64 `json:"rejected"`  // refused by Allow
	Trips     uint64 `json:"trips"`     // transitions to open
}

// Event is one state transition, passed to the OnChange hook.
type Event struct {
	Name     string
	From, To State
	Reason   Reason
	At       time.Time

	// OpenFor is the open period that starts, when To is Open.
	OpenFor time.Duration
	// Calls and Failures are the window's when the breaker tripped from
	// closed; Consecutive the failures in a row at the transition.
	Calls, Failures, Consecutive int
	// LastErrorClass is the class of the last failure (Ticket.Failure).
	LastErrorClass string
}

// Snapshot is a copy of a breaker's state for health and admin views. It
// holds nothing sensitive: names, numbers, times and the caller's error
// classes.
type Snapshot struct {
	Name  string `json:"name"`
	State State  `json:"state"`

	// Failures and Calls are the rolling window's while closed, and the
	// window that tripped the breaker while open or half-open.
	Failures int `json:"failures"`
	Calls    int `json:"calls"`
	// ConsecutiveFailures is the number of failures in a row.
	ConsecutiveFailures int `json:"consecutiveFailures"`

	LastErrorClass string    `json:"lastErrorClass,omitempty"`
	LastErrorAt    time.Time `json:"lastErrorAt,omitzero"`
	// OpenedAt is when the breaker last opened (zero if it never did).
	OpenedAt time.Time `json:"openedAt,omitzero"`
	// NextAttemptAt is when an open breaker lets a probe through; zero
	// unless open.
	NextAttemptAt time.Time `json:"nextAttemptAt,omitzero"`
	// OpenFor is the length of the last open period, and Level the number
	// of trips since the last success streak (the next open period is
	// OpenBase·2^Level, jittered, capped at OpenMax).
	OpenFor time.Duration `json:"-"`
	Level   int           `json:"level"`

	Counts Counts `json:"counts"`
}

// New returns a closed breaker; name identifies it in errors, events and
// snapshots. The error is a *ConfigError listing every invalid field.
func New(name string, cfg Config) (*Breaker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Breaker{name: name, cfg: cfg, base: cfg.Now()}
	b.win = newWindow(int64(cfg.Window)/int64(cfg.Buckets), cfg.Buckets)
	return b, nil
}

// Name returns the breaker's name.
func (b *Breaker) Name() string { return b.name }

// Config returns the breaker's configuration with its defaults filled in.
func (b *Breaker) Config() Config { return b.cfg }

// OnChange sets the hook called with every transition (nil removes it).
// It runs after the breaker's lock is released, on the goroutine whose call
// caused the transition: Allow, a Ticket method, State, Snapshot or Reset,
// so on a caller's hot path. It must not block: log one line, bump a
// counter, hand the event to a buffered channel. Events reach the hook one
// at a time and in order; the hook may call the breaker's methods (a
// transition it causes is delivered after it returns).
func (b *Breaker) OnChange(f func(Event)) {
	b.mu.Lock()
	b.onChange = f
	b.mu.Unlock()
}

// Ticket is one call admitted by Allow. Report its outcome with exactly
// one of Success, Failure or Ignore, exactly once. The zero Ticket (what
// Allow returns with an error) ignores every method. A Ticket is a small
// value: copy it freely, but report once.
type Ticket struct {
	b     *Breaker
	gen   uint64
	probe bool
}

// Probe reports whether the call is a half-open probe.
func (t Ticket) Probe() bool { return t.probe }

// Success reports that the call succeeded. What counts as a success is the
// caller's call: for an HTTP upstream a 2xx and also a 4xx (the upstream
// answered; the request was bad).
func (t Ticket) Success() { t.done(outcomeSuccess, "") }

// Failure reports that the call failed; class is a short, bounded,
// non-sensitive name of the failure ("timeout", "connection", "http_5xx")
// shown in snapshots and events. Failures are what says the dependency is
// unwell: timeouts, connection errors, 5xx.
func (t Ticket) Failure(class string) { t.done(outcomeFailure, class) }

// Ignore reports that the call ended without saying anything about the
// dependency (the caller gave up, the process is shutting down, it waited
// too long in a queue). A half-open probe slot is given back.
func (t Ticket) Ignore() { t.done(outcomeIgnored, "") }

type outcome uint8

const (
	outcomeSuccess outcome = iota
	outcomeFailure
	outcomeIgnored
)

// Allow asks whether a call may go ahead. It returns a Ticket to report
// the outcome on, or an *OpenError (errors.Is ErrOpen) when the breaker is
// open, or half-open with every probe slot taken.
func (b *Breaker) Allow() (Ticket, error) {
	now := b.cfg.Now()
	b.mu.Lock()
	b.advance(now)
	var (
		t   Ticket
		err error
	)
	switch {
	case b.state == Closed:
		t = Ticket{b: b, gen: b.gen}
	case b.state == HalfOpen && b.probes < b.cfg.HalfOpenProbes:
		b.probes++
		t = Ticket{b: b, gen: b.gen, probe: true}
	default:
		b.counts.Rejected++
		oe := &OpenError{Name: b.name, State: b.state}
		if b.state == Open {
			oe.RetryAfter = b.nextAttempt.Sub(now)
		}
		err = oe
	}
	if err == nil {
		b.counts.Calls++
	}
	b.unlock()
	return t, err
}

func (t Ticket) done(o outcome, class string) {
	b := t.b
	if b == nil {
		return
	}
	now := b.cfg.Now()
	b.mu.Lock()
	switch o {
	case outcomeSuccess:
		b.counts.Successes++
	case outcomeFailure:
		b.counts.Failures++
		b.lastClass, b.lastErrorAt = class, now
	default:
		b.counts.Ignored++
	}
	if t.gen != b.gen {
		// Admitted before the last transition or Reset: it speaks of a
		// state that is gone.
		b.unlock()
		return
	}
	switch o {
	case outcomeSuccess:
		b.consecutive = 0
		b.streak++
		if b.streak >= b.cfg.SuccessStreak {
			b.level = 0
		}
	case outcomeFailure:
		b.consecutive++
		b.streak = 0
	}
	switch b.state {
	case Closed:
		if o != outcomeIgnored {
			b.win.add(now.Sub(b.base).Nanoseconds(), o == outcomeFailure)
			b.checkTrip(now)
		}
	case HalfOpen:
		switch o {
		case outcomeSuccess:
			b.probeOK++
			if b.probeOK >= b.cfg.HalfOpenProbes {
				b.close(now, ReasonProbesSucceeded)
			}
		case outcomeFailure:
			b.trip(now, ReasonProbeFailed)
		default:
			b.probes--
		}
	}
	b.unlock()
}

// checkTrip opens a closed breaker whose failures call for it.
func (b *Breaker) checkTrip(now time.Time) {
	if b.consecutive >= b.cfg.ConsecutiveFailures {
		b.trip(now, ReasonConsecutiveFailures)
		return
	}
	calls, fails := b.win.sum(now.Sub(b.base).Nanoseconds())
	if calls >= b.cfg.MinCalls && float64(fails) >= b.cfg.FailureRatio*float64(calls) {
		b.trip(now, ReasonFailureRatio)
	}
}

// openPeriod is the open time of the next trip: OpenBase·2^level capped at
// OpenMax, shortened by the jitter.
func (b *Breaker) openPeriod() time.Duration {
	d := b.cfg.OpenBase
	for i := 0; i < b.level && d < b.cfg.OpenMax; i++ {
		d *= 2
	}
	d = min(d, b.cfg.OpenMax)
	r := b.cfg.Rand()
	if !(r >= 0) { // also NaN
		r = 0
	}
	r = min(r, 1)
	return d - time.Duration(float64(d)*b.cfg.Jitter*r)
}

func (b *Breaker) trip(now time.Time, why Reason) {
	from := b.state
	if from == Closed {
		b.tripCalls, b.tripFails = b.win.sum(now.Sub(b.base).Nanoseconds())
	}
	b.openFor = b.openPeriod()
	if b.cfg.OpenBase<<b.level < b.cfg.OpenMax {
		b.level++
	}
	b.state = Open
	b.gen++
	b.openedAt = now
	b.nextAttempt = now.Add(b.openFor)
	b.probes, b.probeOK = 0, 0
	b.counts.Trips++
	b.queue(Event{From: from, To: Open, Reason: why, At: now, OpenFor: b.openFor,
		Calls: b.tripCalls, Failures: b.tripFails})
}

func (b *Breaker) close(now time.Time, why Reason) {
	from := b.state
	b.state = Closed
	b.gen++
	b.win.reset()
	b.consecutive = 0
	b.probes, b.probeOK = 0, 0
	b.nextAttempt = time.Time{}
	b.tripCalls, b.tripFails = 0, 0
	if from != Closed {
		b.queue(Event{From: from, To: Closed, Reason: why, At: now})
	}
}

// advance turns an open breaker whose period is over half-open.
func (b *Breaker) advance(now time.Time) {
	if b.state == Open && !now.Before(b.nextAttempt) {
		b.state = HalfOpen
		b.gen++
		b.probes, b.probeOK = 0, 0
		b.nextAttempt = time.Time{}
		b.queue(Event{From: Open, To: HalfOpen, Reason: ReasonOpenElapsed, At: now})
	}
}

// Reset closes the breaker, empties its window and brings the open period
// back to OpenBase (the admin's reset_circuit_breaker). Outcomes of calls
// admitted before it are ignored. It reports whether the breaker was not
// closed.
func (b *Breaker) Reset() bool {
	now := b.cfg.Now()
	b.mu.Lock()
	was := b.state
	b.close(now, ReasonReset)
	b.level, b.streak = 0, 0
	b.unlock()
	return was != Closed
}

// State returns the current state (turning an open breaker whose period
// is over half-open).
func (b *Breaker) State() State {
	now := b.cfg.Now()
	b.mu.Lock()
	b.advance(now)
	s := b.state
	b.unlock()
	return s
}

// Snapshot copies the breaker's state.
func (b *Breaker) Snapshot() Snapshot {
	now := b.cfg.Now()
	b.mu.Lock()
	b.advance(now)
	s := Snapshot{
		Name:                b.name,
		State:               b.state,
		ConsecutiveFailures: b.consecutive,
		LastErrorClass:      b.lastClass,
		LastErrorAt:         b.lastErrorAt,
		OpenedAt:            b.openedAt,
		NextAttemptAt:       b.nextAttempt,
		OpenFor:             b.openFor,
		Level:               b.level,
		Counts:              b.counts,
	}
	if b.state == Closed {
		s.Calls, s.Failures = b.win.sum(now.Sub(b.base).Nanoseconds())
	} else {
		s.Calls, s.Failures = b.tripCalls, b.tripFails
	}
	b.unlock()
	return s
}

// queue adds a transition event for the hook; b.mu is held.
func (b *Breaker) queue(e Event) {
	if b.onChange == nil {
		return
	}
	e.Name = b.name
	e.Consecutive = b.consecutive
	e.LastErrorClass = b.lastClass
	b.pending = append(b.pending, e)
}

// unlock releases b.mu and delivers the queued events, unless another
// goroutine is delivering (it will deliver these too). One deliverer at a
// time keeps the events in order without holding b.mu in the hook.
func (b *Breaker) unlock() {
	if len(b.pending) == 0 || b.delivering {
		b.mu.Unlock()
		return
	}
	b.delivering = true
	finished := false
	defer func() {
		if !finished { // the hook panicked: let the next transition deliver
			b.mu.Lock()
			b.delivering = false
			b.mu.Unlock()
		}
	}()
	for {
		evs, f := b.pending, b.onChange
		b.pending = nil
		b.mu.Unlock()
		for _, e := range evs {
			if f != nil {
				f(e)
			}
		}
		b.mu.Lock()
		if len(b.pending) == 0 {
			b.delivering = false
			b.mu.Unlock()
			finished = true
			return
		}
	}
}
