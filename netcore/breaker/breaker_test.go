package breaker

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTrip drives sequences of outcomes on a fake clock. In seq, S, F and
// I are outcomes and '.' advances the clock by one second.
func TestTrip(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		seq    string
		want   State
		reason Reason
	}{
		{"four failures in a row stay closed", Config{}, "FFFF", Closed, ""},
		{"the fifth failure in a row trips", Config{}, "FFFFF", Open, ReasonConsecutiveFailures},
		{"a success breaks the run", Config{}, "FFFFSFFFF", Closed, ""},
		{"consecutive threshold is configurable", Config{ConsecutiveFailures: 2}, "SFF", Open, ReasonConsecutiveFailures},
		// 19 calls, 9 failures: under MinCalls, whatever the ratio.
		{"under min calls never trips on ratio", Config{}, strings.Repeat("SF", 9) + "S", Closed, ""},
		// The 20th call is the 10th failure: 10/20 = 0.5.
		{"ratio trips at min calls", Config{}, strings.Repeat("SF", 10), Open, ReasonFailureRatio},
		{"ratio below threshold stays closed", Config{}, strings.Repeat("SF", 9) + "SS", Closed, ""},
		{"min calls is configurable", Config{MinCalls: 4}, "SFSF", Open, ReasonFailureRatio},
		{"ratio is configurable", Config{FailureRatio: 0.8}, strings.Repeat("SFFF", 5), Closed, ""},
		{"ratio 0.75 trips at 0.75", Config{FailureRatio: 0.75}, strings.Repeat("SFFF", 5), Open, ReasonFailureRatio},
		// 9 failures of 18 calls, then 11 s later 2 more calls: the window
		// holds only those two.
		{"old calls leave the window", Config{}, strings.Repeat("SF", 9) + "..........." + "SF", Closed, ""},
		// Same without the wait: 20 calls, 10 failures.
		{"recent calls stay in the window", Config{}, strings.Repeat("SF", 9) + "SF", Open, ReasonFailureRatio},
		// 1 s into a 10 s window of 1 s slices, the first slice is still in.
		{"window spans ten slices", Config{}, strings.Repeat("SF", 5) + "........." + strings.Repeat("SF", 5), Open, ReasonFailureRatio},
		{"ignored calls do not count", Config{}, "FFFFIIIIIIII", Closed, ""},
		{"ignored calls do not break a run", Config{}, "FFFFIF", Open, ReasonConsecutiveFailures},
		// The caller decides what a failure is: an upstream answering 4xx
		// is reported as Success, so a stream of them never trips.
		{"4xx reported as success never trips", Config{}, strings.Repeat("S", 100), Closed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, clk := newTestBreaker(t, tt.cfg)
			var events []Event
			b.OnChange(func(e Event) { events = append(events, e) })
			for i := 0; i < len(tt.seq); i++ {
				if tt.seq[i] == '.' {
					clk.Advance(time.Second)
					continue
				}
				if !call(t, b, tt.seq[i]) {
					t.Fatalf("call %d rejected", i)
				}
			}
			if got := b.State(); got != tt.want {
				t.Fatalf("state = %v, want %v", got, tt.want)
			}
			if tt.want == Open {
				if len(events) != 1 || events[0].Reason != tt.reason || events[0].From != Closed || events[0].To != Open {
					t.Fatalf("events = %+v, want one closed->open for %s", events, tt.reason)
				}
			} else if len(events) != 0 {
				t.Fatalf("events = %+v, want none", events)
			}
		})
	}
}

func TestOpenRejectsWithRetryAfter(t *testing.T) {
	b, clk := newTestBreaker(t, Config{})
	trip(t, b)
	clk.Advance(1500 * time.Millisecond)
	_, err := b.Allow()
	if !errors.Is(err, ErrOpen) {
		t.Fatalf("Allow = %v, want ErrOpen", err)
	}
	var oe *OpenError
	if !errors.As(err, &oe) || oe.State != Open || oe.RetryAfter != 3500*time.Millisecond || oe.Name != "test" {
		t.Fatalf("OpenError = %+v, want open, retry after 3.5s", oe)
	}
	if !strings.Contains(err.Error(), "3.5s") {
		t.Errorf("message %q does not give the retry-after", err)
	}
	if s := b.Snapshot(); s.Counts.Rejected != 1 || s.NextAttemptAt != clk.Now().Add(3500*time.Millisecond) {
		t.Errorf("snapshot = %+v", s)
	}
	clk.Advance(3500 * time.Millisecond)
	tk, err := b.Allow()
	if err != nil || !tk.Probe() {
		t.Fatalf("after the open period: Allow = %v, probe %v; want a probe", err, tk.Probe())
	}
}

// TestOpenPeriodGrows re-trips through failed probes without jitter: the
// open period doubles from OpenBase up to OpenMax.
func TestOpenPeriodGrows(t *testing.T) {
	b, clk := newTestBreaker(t, Config{})
	trip(t, b)
	want := []time.Duration{5, 10, 20, 40, 60, 60, 60}
	for i, w := range want {
		w *= time.Second
		s := b.Snapshot()
		if s.State != Open || s.OpenFor != w || s.NextAttemptAt.Sub(s.OpenedAt) != w {
			t.Fatalf("trip %d: state %v, open for %v (next attempt %v after opening); want open for %v",
				i+1, s.State, s.OpenFor, s.NextAttemptAt.Sub(s.OpenedAt), w)
		}
		clk.Advance(w - time.Millisecond)
		if _, err := b.Allow(); err == nil {
			t.Fatalf("trip %d: admitted 1ms before the period ends", i+1)
		}
		clk.Advance(time.Millisecond)
		if !call(t, b, 'F') {
			t.Fatalf("trip %d: probe refused at the end of the period", i+1)
		}
	}
}

func TestOpenPeriodConfigurable(t *testing.T) {
	b, clk := newTestBreaker(t, Config{OpenBase: time.Second, OpenMax: 3 * time.Second})
	trip(t, b)
	for i, w := range []time.Duration{1, 2, 3, 3} {
		w *= time.Second
		if s := b.Snapshot(); s.OpenFor != w {
			t.Fatalf("trip %d: open for %v, want %v", i+1, s.OpenFor, w)
		}
		clk.Advance(w)
		call(t, b, 'F')
	}
}

// TestJitterBounds: with jitter j, a period of d lasts d·(1 - j·r) for the
// drawn r in [0, 1): within (d·(1-j), d], and never above OpenMax.
func TestJitterBounds(t *testing.T) {
	tests := []struct {
		jitter, r float64
		level     int
		want      time.Duration
	}{
		{0.2, 0, 0, 5 * time.Second},
		{0.2, 0.5, 0, 4500 * time.Millisecond},
		{0.2, 0.5, 1, 9 * time.Second},
		{0.5, 0.5, 0, 3750 * time.Millisecond},
		{0.2, 0.5, 9, 54 * time.Second}, // capped at 60 s, then jittered
		{0.2, 1.5, 0, 4 * time.Second},  // a bad Rand is clamped to [0, 1]
		{0.2, -1, 0, 5 * time.Second},
	}
	for _, tt := range tests {
		b, _ := newTestBreaker(t, Config{Jitter: tt.jitter, Rand: fixedRand(tt.r)})
		b.level = tt.level
		if got := b.openPeriod(); got != tt.want {
			t.Errorf("jitter %v, r %v, level %d: period %v, want %v", tt.jitter, tt.r, tt.level, got, tt.want)
		}
	}

	// Random draws stay inside the bounds at every level.
	rng := rand.New(rand.NewPCG(1, 2))
	b, _ := newTestBreaker(t, Config{Rand: rng.Float64})
	for level := range 8 {
		d := min(DefaultOpenBase<<level, DefaultOpenMax)
		lo := time.Duration(float64(d) * (1 - DefaultJitter))
		seen := map[time.Duration]bool{}
		for range 1000 {
			b.level = level
			got := b.openPeriod()
			if got <= lo || got > d {
				t.Fatalf("level %d: period %v outside (%v, %v]", level, got, lo, d)
			}
			seen[got] = true
		}
		if len(seen) < 100 {
			t.Errorf("level %d: only %d distinct periods in 1000 draws", level, len(seen))
		}
	}
}

// TestSuccessStreakResetsOpenPeriod: the open period stays long after a
// close until SuccessStreak successes in a row.
func TestSuccessStreakResetsOpenPeriod(t *testing.T) {
	for _, tt := range []struct {
		successes int
		want      time.Duration
	}{
		{0, 20 * time.Second},
		{8, 20 * time.Second}, // the probe's success plus 8: 9 in a row
		{9, 5 * time.Second},  // 10 in a row
	} {
		b, clk := newTestBreaker(t, Config{})
		trip(t, b) // 5 s
		clk.Advance(5 * time.Second)
		call(t, b, 'F') // 10 s
		clk.Advance(10 * time.Second)
		call(t, b, 'S') // the probe closes it
		if s := b.State(); s != Closed {
			t.Fatalf("after a good probe: %v", s)
		}
		calls(t, b, strings.Repeat("S", tt.successes))
		trip(t, b)
		if s := b.Snapshot(); s.OpenFor != tt.want {
			t.Errorf("%d successes after closing: next open period %v, want %v", tt.successes, s.OpenFor, tt.want)
		}
	}
}

func TestHalfOpenProbes(t *testing.T) {
	b, clk := newTestBreaker(t, Config{HalfOpenProbes: 3})
	trip(t, b)
	clk.Advance(5 * time.Second)

	var tks []Ticket
	for i := range 3 {
		tk, err := b.Allow()
		if err != nil || !tk.Probe() {
			t.Fatalf("probe %d: %v", i, err)
		}
		tks = append(tks, tk)
	}
	_, err := b.Allow()
	var oe *OpenError
	if !errors.As(err, &oe) || oe.State != HalfOpen || oe.RetryAfter != 0 {
		t.Fatalf("fourth call: %v, want a half-open rejection without retry-after", err)
	}
	tks[0].Ignore() // gives its slot back
	tk, err := b.Allow()
	if err != nil {
		t.Fatalf("after an ignored probe: %v", err)
	}
	tks[0] = tk
	tks[0].Success()
	tks[1].Success()
	if s := b.State(); s != HalfOpen {
		t.Fatalf("after 2 of 3 good probes: %v, want half_open", s)
	}
	tks[2].Success()
	if s := b.State(); s != Closed {
		t.Fatalf("after 3 good probes: %v, want closed", s)
	}

	// One failed probe reopens, whatever the others do; their late
	// outcomes belong to a gone generation.
	trip(t, b)
	clk.Advance(10 * time.Second)
	p1, _ := b.Allow()
	p2, _ := b.Allow()
	p1.Failure("timeout")
	if s := b.Snapshot(); s.State != Open || s.OpenFor != 20*time.Second {
		t.Fatalf("after a failed probe: %v for %v, want open for 20s", s.State, s.OpenFor)
	}
	p2.Success()
	if s := b.State(); s != Open {
		t.Fatalf("a stale probe success changed the state to %v", s)
	}
}

func TestStaleTicketsIgnored(t *testing.T) {
	b, clk := newTestBreaker(t, Config{})
	old, _ := b.Allow()
	trip(t, b)
	clk.Advance(5 * time.Second)
	b.State() // half-open
	old.Failure("late")
	if s := b.State(); s != HalfOpen {
		t.Fatalf("a failure admitted while closed reopened a half-open breaker: %v", s)
	}
	s := b.Snapshot()
	if s.Counts.Failures != 6 || s.LastErrorClass != "late" {
		t.Errorf("counts = %+v, last class %q: stale outcomes still count in the totals", s.Counts, s.LastErrorClass)
	}
}

func TestReset(t *testing.T) {
	b, clk := newTestBreaker(t, Config{})
	trip(t, b)
	clk.Advance(5 * time.Second)
	call(t, b, 'F') // level 2: next period 20 s
	if !b.Reset() {
		t.Fatal("Reset of an open breaker reported closed")
	}
	s := b.Snapshot()
	if s.State != Closed || s.Calls != 0 || s.Failures != 0 || s.ConsecutiveFailures != 0 || !s.NextAttemptAt.IsZero() || s.Level != 0 {
		t.Fatalf("after Reset: %+v", s)
	}
	if s.Counts.Trips != 2 || s.Counts.Failures != 6 {
		t.Errorf("Reset cleared the totals: %+v", s.Counts)
	}
	trip(t, b)
	if s := b.Snapshot(); s.OpenFor != 5*time.Second {
		t.Errorf("first trip after Reset opens for %v, want OpenBase", s.OpenFor)
	}
	b.Reset()
	if b.Reset() {
		t.Error("Reset of a closed breaker reported a change")
	}
}

func TestSnapshot(t *testing.T) {
	b, clk := newTestBreaker(t, Config{})
	calls(t, b, "SSF")
	s := b.Snapshot()
	if s.Name != "test" || s.State != Closed || s.Calls != 3 || s.Failures != 1 || s.ConsecutiveFailures != 1 ||
		s.LastErrorClass != "test" || !s.LastErrorAt.Equal(clk.Now()) || !s.OpenedAt.IsZero() {
		t.Fatalf("closed snapshot = %+v", s)
	}
	opened := clk.Now()
	calls(t, b, "FFFF")
	clk.Advance(time.Second)
	s = b.Snapshot()
	if s.State != Open || s.Calls != 7 || s.Failures != 5 || !s.OpenedAt.Equal(opened) ||
		!s.NextAttemptAt.Equal(opened.Add(5*time.Second)) || s.Level != 1 {
		t.Fatalf("open snapshot = %+v", s)
	}
	want := Counts{Calls: 7, Successes: 2, Failures: 5, Trips: 1}
	if s.Counts != want {
		t.Errorf("counts = %+v, want %+v", s.Counts, want)
	}
	clk.Advance(4 * time.Second)
	if s := b.Snapshot(); s.State != HalfOpen || !s.NextAttemptAt.IsZero() {
		t.Errorf("snapshot after the open period: %+v, want half_open", s)
	}
}

func TestOnChange(t *testing.T) {
	b, clk := newTestBreaker(t, Config{})
	var events []Event
	b.OnChange(func(e Event) {
		events = append(events, e)
		_ = b.Snapshot() // the hook may read the breaker
		if e.To == HalfOpen && len(events) == 2 {
			b.Reset() // and change it: delivered after this hook returns
		}
	})
	trip(t, b)
	clk.Advance(5 * time.Second)
	b.State()
	trip(t, b)
	clk.Advance(10 * time.Second)
	call(t, b, 'S')
	want := []struct {
		from, to State
		why      Reason
	}{
		{Closed, Open, ReasonConsecutiveFailures},
		{Open, HalfOpen, ReasonOpenElapsed},
		{HalfOpen, Closed, ReasonReset},
		{Closed, Open, ReasonConsecutiveFailures},
		{Open, HalfOpen, ReasonOpenElapsed},
		{HalfOpen, Closed, ReasonProbesSucceeded},
	}
	if len(events) != len(want) {
		t.Fatalf("events = %+v", events)
	}
	for i, w := range want {
		e := events[i]
		if e.From != w.from || e.To != w.to || e.Reason != w.why || e.Name != "test" {
			t.Errorf("event %d = %v->%v (%s), want %v->%v (%s)", i, e.From, e.To, e.Reason, w.from, w.to, w.why)
		}
	}
	if e := events[0]; e.OpenFor != 5*time.Second || e.Consecutive != 5 || e.Failures != 5 || e.LastErrorClass != "test" {
		t.Errorf("trip event = %+v", e)
	}
	if e := events[3]; e.OpenFor != 5*time.Second {
		t.Errorf("trip after Reset opens for %v, want OpenBase", e.OpenFor)
	}
}

func TestOnChangePanicDoesNotWedge(t *testing.T) {
	b, clk := newTestBreaker(t, Config{})
	n := 0
	b.OnChange(func(Event) {
		n++
		if n == 1 {
			panic("hook")
		}
	})
	func() {
		defer func() { _ = recover() }()
		trip(t, b)
	}()
	clk.Advance(5 * time.Second)
	b.State()
	if n != 2 {
		t.Fatalf("hook ran %d times; a panicking hook stopped later deliveries", n)
	}
}

func TestStateText(t *testing.T) {
	for _, s := range States {
		b, err := s.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back State
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Errorf("%v: round trip %q -> %v, %v", s, b, back, err)
		}
	}
	if got := []string{Closed.String(), Open.String(), HalfOpen.String()}; strings.Join(got, ",") != "closed,open,half_open" {
		t.Errorf("names = %v", got)
	}
	var s State
	if err := s.UnmarshalText([]byte("opened")); err == nil {
		t.Error("unknown state accepted")
	}
	if _, err := State(7).MarshalText(); err == nil {
		t.Error("invalid state marshalled")
	}
}

// TestConcurrent hammers one breaker from many goroutines (run with
// -race): totals add up, probes never exceed their bound, and the hook
// sees a consistent chain of transitions.
func TestConcurrent(t *testing.T) {
	var clk atomic.Int64 // nanoseconds past base; every goroutine moves it
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := Config{
		Now:            func() time.Time { return base.Add(time.Duration(clk.Load())) },
		OpenBase:       time.Millisecond,
		OpenMax:        4 * time.Millisecond,
		HalfOpenProbes: 2,
		MinCalls:       5,
		Window:         100 * time.Millisecond,
	}
	b, err := New("race", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		events []Event
	)
	b.OnChange(func(e Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})
	// Probes in flight per generation: the bound holds within one
	// half-open period (a probe of an earlier one may still be running).
	var (
		pmu       sync.Mutex
		inFlight  = map[uint64]int{}
		maxProbes int
	)
	var wg sync.WaitGroup
	const workers, iters = 8, 3000
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range iters {
				clk.Add(int64(rng.IntN(20)) * int64(time.Microsecond))
				switch {
				case i%500 == 499:
					b.Reset()
					continue
				case i%50 == 0:
					_ = b.Snapshot()
				}
				tk, err := b.Allow()
				if err != nil {
					continue
				}
				if tk.Probe() {
					pmu.Lock()
					inFlight[tk.gen]++
					maxProbes = max(maxProbes, inFlight[tk.gen])
					pmu.Unlock()
				}
				r := rng.IntN(10)
				if tk.Probe() && r >= 9 { // an ignored probe gives its slot back
					pmu.Lock()
					inFlight[tk.gen]--
					pmu.Unlock()
				}
				switch {
				case r < 4:
					tk.Failure("x")
				case r < 9:
					tk.Success()
				default:
					tk.Ignore()
				}
			}
		}()
	}
	wg.Wait()
	s := b.Snapshot()
	c := s.Counts
	if c.Calls != c.Successes+c.Failures+c.Ignored {
		t.Errorf("counts do not add up: %+v", c)
	}
	if c.Calls+c.Rejected == 0 || c.Trips == 0 || c.Rejected == 0 {
		t.Errorf("the run never tripped: %+v", c)
	}
	if maxProbes > 2 {
		t.Errorf("%d probes admitted in one half-open period, want at most 2", maxProbes)
	}
	if maxProbes == 0 {
		t.Error("no probe ran")
	}
	mu.Lock()
	defer mu.Unlock()
	prev := Closed
	for i, e := range events {
		if e.From != prev {
			t.Fatalf("event %d goes %v->%v but the previous one ended in %v", i, e.From, e.To, prev)
		}
		prev = e.To
	}
	if prev != s.State {
		t.Errorf("last event ends in %v, state is %v", prev, s.State)
	}
}
