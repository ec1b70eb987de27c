package metrics

import (
	"runtime"
	"testing"
	"time"
)

func TestHistoryPoint(t *testing.T) {
	m, clk := newTestMetrics(t, Options{})
	sh := m.Shard(3)
	m.ConnectionOpened(Authenticated)
	m.ConnectionOpened(Anonymous)
	m.ConnectionOpened(Anonymous)
	for i := range 100 {
		sh.MessageReceived(20)
		sh.ObserveMessage(KindEcho, time.Duration(i+1)*100*time.Microsecond) // 0.1 .. 10 ms
	}
	sh.MessagesSent(300, 6000)
	sh.MessageError(ErrBadRequest)
	clk.Advance(5 * time.Second)
	m.Sample()

	h := m.History(time.Time{}, time.Time{}, 0)
	if h.Resolution != 5*time.Second || h.ResolutionMs != 5000 {
		t.Fatalf("resolution %v, want 5s", h.Resolution)
	}
	if len(h.Points) != 1 {
		t.Fatalf("%d points, want 1", len(h.Points))
	}
	p := h.Points[0]
	checks := []struct {
		name      string
		got, want float64
	}{
		{"connections", p.Connections, 3},
		{"authenticated", p.Authenticated, 1},
		{"anonymous", p.Anonymous, 2},
		{"received/s", p.MessagesReceivedPerSec, 20},
		{"sent/s", p.MessagesSentPerSec, 60},
		{"bytes in/s", p.BytesReceivedPerSec, 400},
		{"bytes out/s", p.BytesSentPerSec, 1200},
		{"error rate", p.ErrorRate, 0.01},
		{"avg ms", p.AvgMs, 5.05},
		{"p50 ms", p.P50Ms, 5},
		{"p99 ms", p.P99Ms, 9.9},
		{"max ms", p.MaxMs, 10},
		{"rss", p.RSSBytes, 1 << 20},
		{"load1", p.Load1, 0.5},
	}
	for _, c := range checks {
		if d := c.got - c.want; d > c.want*2e-3 || d < -c.want*2e-3 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if !p.Time.Equal(clk.Now()) {
		t.Errorf("point time %v, want %v", p.Time, clk.Now())
	}
}

// runFor samples every interval for d, recording rate messages per second
// of latency lat.
func runFor(m *Metrics, clk *fakeClock, d, interval time.Duration, perSample int, lat time.Duration) {
	sh := m.Shard(0)
	for elapsed := time.Duration(0); elapsed < d; elapsed += interval {
		for range perSample {
			sh.MessageReceived(1)
			sh.ObserveMessage(KindBinary, lat)
		}
		clk.Advance(interval)
		m.Sample()
	}
}

func TestHistoryDownsamples(t *testing.T) {
	m, clk := newTestMetrics(t, Options{})
	runFor(m, clk, 10*time.Minute, 5*time.Second, 50, 3*time.Millisecond)  // 10/s
	runFor(m, clk, 10*time.Minute, 5*time.Second, 100, 7*time.Millisecond) // 20/s
	h := m.History(time.Time{}, time.Time{}, time.Minute)
	if h.Resolution != time.Minute {
		t.Fatalf("resolution %v, want 1m", h.Resolution)
	}
	// The 20th minute is still open: 19 closed minutes.
	if len(h.Points) != 19 {
		t.Fatalf("%d one-minute points, want 19", len(h.Points))
	}
	for i, p := range h.Points {
		wantRate, wantP99 := 10.0, 3.0
		if i >= 10 {
			wantRate, wantP99 = 20, 7
		}
		if p.MessagesReceivedPerSec != wantRate {
			t.Errorf("minute %d: %v msg/s, want %v", i, p.MessagesReceivedPerSec, wantRate)
		}
		if p.P99Ms < wantP99 || p.P99Ms > wantP99*1.001 {
			t.Errorf("minute %d: p99 %v ms, want %v", i, p.P99Ms, wantP99)
		}
		if p.Time.UnixNano()%int64(time.Minute) != 0 {
			t.Errorf("minute %d: time %v not on a minute", i, p.Time)
		}
	}
}

func TestHistoryQuery(t *testing.T) {
	m, clk := newTestMetrics(t, Options{})
	start := clk.Now()
	runFor(m, clk, 3*time.Hour, 5*time.Second, 5, time.Millisecond)
	now := clk.Now()
	tests := []struct {
		name           string
		from, to       time.Time
		resolution     time.Duration
		wantResolution time.Duration
		wantPoints     int
	}{
		{"last 10 minutes, finest", now.Add(-10 * time.Minute), now, 0, 5 * time.Second, 121},
		{"last 10 minutes, 30 s", now.Add(-10 * time.Minute), now, 30 * time.Second, time.Minute, 10},
		{"2 hours ago needs the minute tier", now.Add(-2 * time.Hour), now, 0, time.Minute, 120},
		{"since start, zero from", time.Time{}, now, 0, 5 * time.Second, 720},
		{"hourly, regrouped", start, now, time.Hour, time.Hour, 3},
		{"empty range", now.Add(time.Hour), now.Add(2 * time.Hour), 0, 5 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := m.History(tt.from, tt.to, tt.resolution)
			if h.Resolution != tt.wantResolution || len(h.Points) != tt.wantPoints {
				t.Fatalf("got %d points at %v, want %d at %v", len(h.Points), h.Resolution, tt.wantPoints, tt.wantResolution)
			}
			for i, p := range h.Points {
				if (!tt.from.IsZero() && p.Time.Before(tt.from)) || p.Time.After(tt.to) {
					t.Errorf("point %d at %v outside [%v, %v]", i, p.Time, tt.from, tt.to)
				}
				if i > 0 && !p.Time.After(h.Points[i-1].Time) {
					t.Errorf("points out of order at %d", i)
				}
				if p.MessagesReceivedPerSec != 1 {
					t.Errorf("point %d: %v msg/s, want 1", i, p.MessagesReceivedPerSec)
				}
			}
		})
	}
}

// TestHistoryMemoryBounded simulates 48 hours of sampling: the rings never
// grow and the heap after 48 h is no bigger than after 24 h.
func TestHistoryMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates 48 h of samples")
	}
	m, clk := newTestMetrics(t, Options{})
	capacity := m.hist.capacity()
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	runFor(m, clk, 24*time.Hour, 5*time.Second, 3, 2*time.Millisecond)
	after24 := heap()
	runFor(m, clk, 24*time.Hour, 5*time.Second, 3, 2*time.Millisecond)
	after48 := heap()
	if got := m.hist.capacity(); got != capacity {
		t.Errorf("history capacity grew from %d to %d points", capacity, got)
	}
	for _, tr := range m.hist.tiers {
		if tr.n > len(tr.points) {
			t.Errorf("tier %v holds %d points, capacity %d", tr.res, tr.n, len(tr.points))
		}
	}
	if after48 > after24+256<<10 {
		t.Errorf("heap grew from %d to %d bytes between 24 h and 48 h", after24, after48)
	}
	wantTiers := []struct {
		res time.Duration
		n   int
	}{{5 * time.Second, 720}, {time.Minute, 1440}, {15 * time.Minute, 191}}
	for i, w := range wantTiers {
		if tr := m.hist.tiers[i]; tr.res != w.res || tr.n != w.n {
			t.Errorf("tier %d: %d points at %v, want %d at %v", i, tr.n, tr.res, w.n, w.res)
		}
	}
}

// capacity is the number of points the history can ever hold.
func (h *history) capacity() int {
	n := 0
	for _, t := range h.tiers {
		n += len(t.points)
	}
	return n
}
