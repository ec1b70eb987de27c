package loadtest

import (
	"bytes"
	"container/heap"
	"context"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// fakeClock is a Clock the test moves by hand.
type fakeClock struct{ now time.Duration }

func (c *fakeClock) Now() time.Duration                            { return c.now }
func (c *fakeClock) SleepUntil(_ context.Context, t time.Duration) { c.now = max(c.now, t) }

func TestPacerSchedule(t *testing.T) {
	r := newRun(Config{Conns: 3, Rate: 100, Mode: ModeEchoBinary, Clock: &fakeClock{}})
	p := newPacer(r.sessions, 100, 5*time.Millisecond)
	var got []string
	var times []time.Duration
	next := p.fire(35*time.Millisecond, func(s *session, at time.Duration) {
		got = append(got, string(rune('a'+s.id)))
		times = append(times, at)
	})
	want := []time.Duration{5, 15, 25, 35}
	if len(times) != len(want) {
		t.Fatalf("fired %d sends by 35ms, want %d", len(times), len(want))
	}
	for i := range want {
		if times[i] != want[i]*time.Millisecond {
			t.Errorf("send %d intended at %v, want %v", i, times[i], want[i]*time.Millisecond)
		}
	}
	if s := bytes.Join([][]byte{[]byte(got[0]), []byte(got[1]), []byte(got[2]), []byte(got[3])}, nil); string(s) != "abca" {
		t.Errorf("round robin order %q, want \"abca\"", s)
	}
	if next != 45*time.Millisecond {
		t.Errorf("next send at %v, want 45ms", next)
	}
	if iv := r.sessions[0].interval; iv != 30*time.Millisecond {
		t.Errorf("member interval %v, want 30ms", iv)
	}
}

func TestLoopPacersInterleave(t *testing.T) {
	r := newRun(Config{Conns: 5, Rate: 1000, Mode: ModeEchoBinary, Clock: &fakeClock{}})
	ps := loopPacers(r.sessions, 2, 1000, 0)
	if len(ps) != 2 || ps[0].next() != 0 || ps[1].next() != time.Millisecond {
		t.Fatalf("loop pacers start at %v and %v, want 0 and 1ms", ps[0].next(), ps[1].next())
	}
	// Loop 0 serves sessions 0, 2 and 4, loop 1 sessions 1 and 3: 600 and
	// 400 messages per second.
	if len(ps[0].members) != 3 || ps[0].gap != float64(time.Second)/600 || ps[1].gap != float64(time.Second)/400 {
		t.Fatalf("loop pacers of %d and %d members, gaps %vns and %vns; want 3 and 2 members at 600 and 400/s",
			len(ps[0].members), len(ps[1].members), ps[0].gap, ps[1].gap)
	}
	if ps := loopPacers(r.sessions[:1], 2, 1000, 0); ps[0] == nil || ps[1] != nil {
		t.Fatalf("one sender: pacers %v, want one for loop 0 only", ps)
	}
}

// simServer is a simulated echo server driven by the fake clock: it answers
// each message service after it arrives, except that nothing is answered
// while it is stalled in [stallFrom, stallTo): those replies leave at
// stallTo.
type simServer struct {
	service            time.Duration
	stallFrom, stallTo time.Duration
	clock              *fakeClock
	pending            replyHeap
}

type simReply struct {
	at      time.Duration
	s       *session
	payload []byte
}

type replyHeap []simReply

func (h replyHeap) Len() int           { return len(h) }
func (h replyHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h replyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *replyHeap) Push(x any)        { *h = append(*h, x.(simReply)) }
func (h *replyHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// simWire is the client side of one simulated connection.
type simWire struct {
	srv *simServer
	s   *session
}

func (w *simWire) write(frame []byte) error {
	f, err := ws.ReadFrame(bytes.NewReader(frame))
	if err != nil {
		return err
	}
	if !f.Header.Masked {
		panic("client frame not masked")
	}
	f = ws.UnmaskFrameInPlace(f)
	if f.Header.OpCode != ws.OpBinary {
		return nil
	}
	at := w.srv.clock.now + w.srv.service
	if w.srv.clock.now >= w.srv.stallFrom && w.srv.clock.now < w.srv.stallTo {
		at = w.srv.stallTo + w.srv.service
	}
	heap.Push(&w.srv.pending, simReply{at: at, s: w.s, payload: bytes.Clone(f.Payload)})
	return nil
}

func (w *simWire) close() error { return nil }

// simulate runs the open model against srv on the fake clock for duration
// and returns the report.
func simulate(t *testing.T, srv *simServer, conns int, rate float64, duration time.Duration) *Report {
	t.Helper()
	clock := srv.clock
	cfg := Config{URL: "ws://127.0.0.1:1/echo", Conns: conns, Rate: rate, Duration: duration, Size: 16, Clock: clock}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := newRun(cfg)
	for _, s := range r.sessions {
		s.attach(&simWire{srv: srv, s: s})
	}
	p := newPacer(r.sessions, rate, 0)
	end := duration
	send := func(s *session, at time.Duration) { s.sendDue(at) }
	for {
		nextSend := p.next()
		if nextSend >= end {
			nextSend = -1
		}
		if nextSend < 0 && srv.pending.Len() == 0 {
			break
		}
		if srv.pending.Len() > 0 && (nextSend < 0 || srv.pending[0].at <= nextSend) {
			rep := heap.Pop(&srv.pending).(simReply)
			clock.now = rep.at
			rep.s.onFrame(ws.Header{Fin: true, OpCode: ws.OpBinary, Length: int64(len(rep.payload))}, rep.payload, clock.now)
			continue
		}
		clock.now = nextSend
		p.fire(clock.now, send)
	}
	return r.report(reportInputs{measured: duration})
}

// TestCoordinatedOmission is the wrk2 case on an injected clock: a server
// that answers in 1ms stalls for 500ms. Each connection keeps one message in
// flight, so during the stall the sender is held back; measured from the
// actual send only the few messages in flight see the stall, measured from
// the intended send every message scheduled during the stall does.
func TestCoordinatedOmission(t *testing.T) {
	clock := &fakeClock{}
	srv := &simServer{service: time.Millisecond, stallFrom: time.Second, stallTo: 1500 * time.Millisecond, clock: clock}
	rep := simulate(t, srv, 10, 1000, 3*time.Second)
	c, u := rep.Latency.Corrected, rep.Latency.Uncorrected
	t.Logf("corrected p50 %.3f p90 %.3f p99 %.3f max %.3f; uncorrected p50 %.3f p99 %.3f p99.9 %.3f max %.3f (ms)",
		c.P50, c.P90, c.P99, c.Max, u.P50, u.P99, u.P999, u.Max)

	if rep.Messages.Sent != 3000 || rep.Messages.Received != 3000 || rep.Messages.Backlog != 0 {
		t.Fatalf("sent %d received %d backlog %d, want 3000 3000 0", rep.Messages.Sent, rep.Messages.Received, rep.Messages.Backlog)
	}
	// 500 of 3000 messages were intended during the stall, waiting 0-500ms.
	if c.P99 < 450 || c.P90 < 150 {
		t.Errorf("corrected p90 %.3fms p99 %.3fms: the stall does not show", c.P90, c.P99)
	}
	if c.Max < 499 || c.Max > 502 {
		t.Errorf("corrected max %.3fms, want the 500ms stall", c.Max)
	}
	// Only the 10 messages in flight when it began saw the stall.
	if u.P99 > 1.01 {
		t.Errorf("uncorrected p99 %.3fms, want the 1ms service time: the stall hides behind the paused sender", u.P99)
	}
	if u.Max < 490 {
		t.Errorf("uncorrected max %.3fms, want the stall seen by the messages in flight", u.Max)
	}
	if lag := rep.Latency.ScheduleLag; lag.Max < 490 {
		t.Errorf("schedule lag max %.3fms, want the sender held back by the stall", lag.Max)
	}
}

// Without a stall both views agree and equal the service time.
func TestNoStallCorrectedEqualsUncorrected(t *testing.T) {
	clock := &fakeClock{}
	srv := &simServer{service: 2 * time.Millisecond, stallFrom: -1, stallTo: -1, clock: clock}
	rep := simulate(t, srv, 10, 1000, time.Second)
	c, u := rep.Latency.Corrected, rep.Latency.Uncorrected
	if c.P99 != u.P99 || c.Max != u.Max || c.P50 < 1.99 || c.Max > 2.01 {
		t.Fatalf("corrected %+v, uncorrected %+v: want both at the 2ms service time", c, u)
	}
}
