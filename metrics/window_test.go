package metrics

import (
	"testing"
	"time"
)

// TestWindowsRoll records a burst, then moves the fake clock and checks each
// window forgets it at the right time.
func TestWindowsRoll(t *testing.T) {
	m, clk := newTestMetrics(t, Options{})
	sh := m.Shard(0)
	for range 600 {
		sh.ObserveMessage(KindEcho, 2*time.Millisecond)
		sh.MessageReceived(10)
	}
	sh.MessageError(ErrBadRequest)
	m.Sample() // the burst lands in the current chunk of every window

	count := func() [NumWindows]uint64 {
		t.Helper()
		s := m.Snapshot()
		var c [NumWindows]uint64
		for i, w := range s.Windows {
			c[i] = w.Latency.Count
		}
		return c
	}
	steps := []struct {
		advance time.Duration
		want    [NumWindows]uint64
	}{
		{0, [NumWindows]uint64{600, 600, 600, 600}},
		{50 * time.Second, [NumWindows]uint64{600, 600, 600, 600}},
		{10 * time.Second, [NumWindows]uint64{0, 600, 600, 600}},               // 1m window passed
		{3*time.Minute + 10*time.Second, [NumWindows]uint64{0, 600, 600, 600}}, // at 4m10s
		{time.Minute, [NumWindows]uint64{0, 0, 600, 600}},                      // at 5m10s
		{10 * time.Minute, [NumWindows]uint64{0, 0, 0, 600}},                   // at 15m10s
		{24 * time.Hour, [NumWindows]uint64{0, 0, 0, 600}},                     // since start keeps it
	}
	for i, st := range steps {
		clk.Advance(st.advance)
		m.Sample()
		if got := count(); got != st.want {
			t.Fatalf("step %d (+%v): window counts %v, want %v", i, st.advance, got, st.want)
		}
	}
}

func TestWindowRates(t *testing.T) {
	m, clk := newTestMetrics(t, Options{})
	sh := m.Shard(0)
	// 10 messages per second, 1 error in 100, for 10 minutes.
	for range 120 {
		for range 50 {
			sh.MessageReceived(100)
			sh.ObserveMessage(KindPing, time.Millisecond)
		}
		sh.MessagesSent(50, 5000)
		clk.Advance(5 * time.Second)
		m.Sample()
	}
	sh.MessageError(ErrNotFound)
	sh.MessageError(ErrNotFound)
	s := m.Snapshot()
	w := s.Windows[Window5m]
	span := time.Duration(w.SpanMs) * time.Millisecond
	if span < 270*time.Second || span > 5*time.Minute {
		t.Errorf("5m window spans %v, want between 4m30s and 5m", span)
	}
	if w.MessagesReceivedPerSec != 10 {
		t.Errorf("5m receive rate %v/s, want 10", w.MessagesReceivedPerSec)
	}
	if w.BytesSentPerSec != 1000 {
		t.Errorf("5m bytes sent %v/s, want 1000", w.BytesSentPerSec)
	}
	if w.ErrorsPerSec <= 0 || w.ErrorRate <= 0 {
		t.Errorf("5m errors not counted: %+v", w)
	}
	st := s.Windows[WindowSinceStart]
	if st.MessagesReceivedPerSec < 9.99 || st.MessagesReceivedPerSec > 10.01 {
		t.Errorf("since-start receive rate %v/s, want 10", st.MessagesReceivedPerSec)
	}
	if st.SpanMs != (10 * time.Minute).Milliseconds() {
		t.Errorf("since-start span %d ms, want 10 min", st.SpanMs)
	}
}

func TestWindowSpanEarly(t *testing.T) {
	m, clk := newTestMetrics(t, Options{})
	clk.Advance(20 * time.Second)
	s := m.Snapshot()
	for i, w := range s.Windows {
		if w.SpanMs != 20_000 {
			t.Errorf("window %s spans %d ms twenty seconds after start, want 20000", windowNames[i], w.SpanMs)
		}
	}
}

func TestWindowAdvanceFarSkipsEverything(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	w := newWindow(time.Minute, 12, now)
	w.advance(now)
	var d slice
	d.tally.received = 5
	d.msgs.block(0)[1] = 5
	d.msgs.n = 5
	w.add(&d, now)
	w.advance(now.Add(time.Hour))
	if w.sum.tally.received != 0 || w.sum.msgs.n != 0 {
		t.Errorf("an hour later the window still holds %+v", w.sum.tally)
	}
	w.advance(now) // the clock going back must not corrupt the window
	w.add(&d, now)
	if w.sum.msgs.n != 5 {
		t.Errorf("after a clock step back the window holds %d, want 5", w.sum.msgs.n)
	}
}
