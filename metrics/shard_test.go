package metrics

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	vm "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

func TestShardRecords(t *testing.T) {
	m, _ := newTestMetrics(t, Options{Shards: 2})
	a, b := m.Shard(0), m.Shard(1)
	a.ObserveMessage(KindPublish, 3*time.Millisecond)
	b.ObserveMessage(KindPublish, time.Millisecond)
	b.ObserveMessage(Kind(250), time.Millisecond) // out of range: invalid
	a.ObserveHandshake(2 * time.Millisecond)
	a.MessageReceived(100)
	b.MessageReceived(50)
	a.MessagesSent(500, 50_000)
	a.MessagesDropped(7)
	a.MessageError(ErrTooLarge)
	b.MessageError(ErrorCode(200)) // out of range: internal
	a.RateLimited(ScopeUser)
	b.RateLimited(Scope(9)) // out of range: connection
	m.RateLimited(ScopeIP)

	s := m.Snapshot()
	tests := []struct {
		name      string
		got, want uint64
	}{
		{"publish count", s.Kinds[KindPublish].Latency.Count, 2},
		{"invalid count", s.Kinds[KindInvalid].Latency.Count, 1},
		{"handshake count", s.Handshake.Count, 1},
		{"received", s.Totals.MessagesReceived, 2},
		{"bytes received", s.Totals.BytesReceived, 150},
		{"sent", s.Totals.MessagesSent, 500},
		{"bytes sent", s.Totals.BytesSent, 50_000},
		{"dropped", s.Totals.MessagesDropped, 7},
		{"errors", s.Totals.MessageErrors, 2},
		{"too_large", s.Totals.ErrorsByCode["too_large"], 1},
		{"internal", s.Totals.ErrorsByCode["internal"], 1},
		{"rate limited", s.Totals.RateLimited, 3},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, tt.got, tt.want)
		}
	}
	if got := s.Kinds[KindPublish].Latency.AvgMs; math.Abs(got-2) > 1e-9 {
		t.Errorf("publish avg %v ms, want 2", got)
	}
}

func TestNilShardIsNoop(t *testing.T) {
	var s *Shard
	s.ObserveMessage(KindEcho, time.Millisecond)
	s.ObserveHandshake(time.Millisecond)
	s.MessageReceived(1)
	s.MessagesSent(1, 1)
	s.MessagesDropped(1)
	s.MessageError(ErrInternal)
	s.RateLimited(ScopeIP)
	if s.Nanotime() != 0 {
		t.Error("nil shard Nanotime must be 0")
	}
}

func TestShardHotPathDoesNotAllocate(t *testing.T) {
	m, _ := newTestMetrics(t, Options{Shards: 1})
	sh := m.Shard(0)
	sh.ObserveMessage(KindEcho, time.Millisecond) // first use of the block allocates it
	sh.ObserveHandshake(time.Millisecond)
	ops := map[string]func(){
		"ObserveMessage":     func() { sh.ObserveMessage(KindEcho, time.Millisecond) },
		"ObserveHandshake":   func() { sh.ObserveHandshake(time.Millisecond) },
		"MessageReceived":    func() { sh.MessageReceived(10) },
		"MessagesSent":       func() { sh.MessagesSent(10, 100) },
		"MessageError":       func() { sh.MessageError(ErrBadRequest) },
		"RateLimited":        func() { sh.RateLimited(ScopeConnection) },
		"Nanotime":           func() { _ = sh.Nanotime() },
		"ConnectionOpened":   func() { m.ConnectionOpened(Authenticated) },
		"ConnectionClosed":   func() { m.ConnectionClosed(Authenticated, InitiatorClient, ReasonNormal) },
		"ConnectionRejected": func() { m.ConnectionRejected(RejectLimit) },
		"Shard":              func() { _ = m.Shard(12345) },
	}
	for name, op := range ops {
		if n := testing.AllocsPerRun(1000, op); n != 0 {
			t.Errorf("%s allocates %v times per call", name, n)
		}
	}
}

// TestConcurrentWritersAndReaders records from many goroutines while readers
// scrape, snapshot and sample, then checks that every recorded value is
// accounted for exactly once: in the since-start totals, in the windows and
// in the sum of the history intervals. Run it with -race.
func TestConcurrentWritersAndReaders(t *testing.T) {
	m, clk := newTestMetrics(t, Options{Shards: 4})
	const writers, perWriter = 8, 20_000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readerWG sync.WaitGroup
	readerWG.Add(3)
	go func() {
		defer readerWG.Done()
		for i := 0; i < 100; i++ { // 100 samples of 5 s stay inside every window
			select {
			case <-stop:
				return
			default:
			}
			clk.Advance(5 * time.Second)
			m.Sample()
		}
	}()
	go func() {
		defer readerWG.Done()
		for {
			select {
			case <-stop:
				return
			default:
				m.WritePrometheus(discard{})
			}
		}
	}()
	go func() {
		defer readerWG.Done()
		for {
			select {
			case <-stop:
				return
			default:
				_ = m.Snapshot()
				_ = m.History(time.Time{}, time.Time{}, 0)
			}
		}
	}()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Writers share shards on purpose (8 writers, 4 shards).
			sh := m.Shard(uint64(w))
			for i := range perWriter {
				sh.ObserveMessage(Kind(i%int(numKinds)), time.Duration(i%5000)*time.Microsecond)
				sh.MessageReceived(3)
				sh.MessagesSent(2, 4)
			}
		}()
	}
	wg.Wait()
	close(stop)
	readerWG.Wait()
	clk.Advance(5 * time.Second)
	m.Sample()

	const total = writers * perWriter
	s := m.Snapshot()
	var byKind uint64
	for _, k := range s.Kinds {
		byKind += k.Latency.Count
	}
	if byKind != total {
		t.Errorf("latency counts by kind sum to %d, recorded %d", byKind, total)
	}
	if got := s.Windows[WindowSinceStart].Latency.Count; got != total {
		t.Errorf("since-start count %d, recorded %d", got, total)
	}
	if got := s.Windows[Window15m].Latency.Count; got != total {
		t.Errorf("15m window count %d, recorded %d", got, total)
	}
	if s.Totals.MessagesReceived != total || s.Totals.BytesReceived != 3*total ||
		s.Totals.MessagesSent != 2*total || s.Totals.BytesSent != 4*total {
		t.Errorf("totals %+v, want %d received", s.Totals, total)
	}
	var fromHistory float64
	h := m.History(time.Time{}, time.Time{}, 0)
	prev := m.start
	for _, p := range h.Points {
		fromHistory += p.MessagesReceivedPerSec * p.Time.Sub(prev).Seconds()
		prev = p.Time
	}
	if math.Round(fromHistory) != total {
		t.Errorf("history intervals add up to %v messages, recorded %d", fromHistory, total)
	}
}

// TestReaderDoesNotBlockWriters holds the readers' lock, as a reader in the
// middle of a collect does, and shows that writers still make progress.
func TestReaderDoesNotBlockWriters(t *testing.T) {
	m, _ := newTestMetrics(t, Options{Shards: 2})
	m.mu.Lock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sh := m.Shard(1)
		for i := range 100_000 {
			sh.ObserveMessage(KindEcho, time.Duration(i))
			sh.MessageReceived(1)
		}
		m.ConnectionOpened(Anonymous)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writers did not finish while a reader held the lock")
	}
	m.mu.Unlock()
	if got := m.Snapshot().Totals.MessagesReceived; got != 100_000 {
		t.Errorf("received %d, want 100000", got)
	}
}

// TestSlowScrapeDoesNotBlock blocks a scrape inside its Write and checks that
// writers and other readers carry on.
func TestSlowScrapeDoesNotBlock(t *testing.T) {
	m, _ := newTestMetrics(t, Options{Shards: 2})
	w := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	scraped := make(chan struct{})
	go func() {
		m.WritePrometheus(w)
		close(scraped)
	}()
	<-w.entered
	sh := m.Shard(0)
	for range 1000 {
		sh.ObserveMessage(KindPing, time.Microsecond)
	}
	if got := m.Snapshot().Kinds[KindPing].Latency.Count; got != 1000 {
		t.Errorf("snapshot during a blocked scrape: %d pings, want 1000", got)
	}
	close(w.release)
	<-scraped
}

type blockingWriter struct {
	entered, release chan struct{}
	once             sync.Once
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	return len(p), nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestCollectAcrossWrap checks that the 32-bit counts of a shard may wrap:
// the collector works modulo 2^32.
func TestCollectAcrossWrap(t *testing.T) {
	m, _ := newTestMetrics(t, Options{Shards: 1})
	sh := m.Shard(0)
	sh.ObserveMessage(KindEcho, 10*time.Microsecond)
	m.Snapshot()
	idx := flatIndex(micros(int64(10 * time.Microsecond)))
	// Pretend 2^32-2 values were recorded and collected already.
	sh.rec[KindEcho].blocks[idx>>subBits].Load()[idx&blockMask].Store(math.MaxUint32)
	m.col.prev[KindEcho].blocks[idx>>subBits][idx&blockMask] = math.MaxUint32
	for range 5 {
		sh.ObserveMessage(KindEcho, 10*time.Microsecond) // wraps to 4
	}
	m.mu.Lock()
	d := m.col.collect()
	m.mu.Unlock()
	if d.msgs.n != 5 {
		t.Errorf("delta across the wrap = %d, want 5", d.msgs.n)
	}
}

// Benchmarks: recording one latency, against the baselines the issue names.

var benchDurations = func() [1024]time.Duration {
	var d [1024]time.Duration
	r := rand.New(rand.NewPCG(1, 1))
	for i := range d {
		d[i] = time.Duration(math.Exp(math.Log(1e3) + r.Float64()*(math.Log(1e7)-math.Log(1e3)))) // 1 µs..10 ms
	}
	return d
}()

func newBenchMetrics(b *testing.B) *Metrics {
	b.Helper()
	m, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkRecordLatency records one latency from one goroutine.
func BenchmarkRecordLatency(b *testing.B) {
	b.Run("sockmon", func(b *testing.B) {
		sh := newBenchMetrics(b).Shard(0)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			sh.ObserveMessage(KindEcho, benchDurations[i&1023])
		}
	})
	b.Run("victoriametrics_histogram", func(b *testing.B) {
		h := vm.NewSet().NewHistogram("x")
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			h.Update(benchDurations[i&1023].Seconds())
		}
	})
	b.Run("client_golang_histogram", func(b *testing.B) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: prometheus.DefBuckets})
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			h.Observe(benchDurations[i&1023].Seconds())
		}
	})
	b.Run("hdrhistogram_mutex", func(b *testing.B) {
		var mu sync.Mutex
		h := hdrhistogram.New(hdrLowest, hdrHighest, hdrSigDigits)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			mu.Lock()
			_ = h.RecordValue(benchDurations[i&1023].Microseconds())
			mu.Unlock()
		}
	})
	b.Run("hdrhistogram_bare", func(b *testing.B) {
		h := hdrhistogram.New(hdrLowest, hdrHighest, hdrSigDigits)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			_ = h.RecordValue(benchDurations[i&1023].Microseconds())
		}
	})
}

// BenchmarkRecordLatencyParallel records from GOMAXPROCS goroutines: each
// sockmon goroutine has its own shard, as a connection does; the baselines
// are one instance shared by all goroutines.
func BenchmarkRecordLatencyParallel(b *testing.B) {
	b.Run("sockmon", func(b *testing.B) {
		m := newBenchMetrics(b)
		var next atomic.Uint64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			sh := m.Shard(next.Add(1))
			for i := 0; pb.Next(); i++ {
				sh.ObserveMessage(KindEcho, benchDurations[i&1023])
			}
		})
	})
	b.Run("victoriametrics_histogram", func(b *testing.B) {
		h := vm.NewSet().NewHistogram("x")
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				h.Update(benchDurations[i&1023].Seconds())
			}
		})
	})
	b.Run("client_golang_histogram", func(b *testing.B) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: prometheus.DefBuckets})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				h.Observe(benchDurations[i&1023].Seconds())
			}
		})
	})
	b.Run("hdrhistogram_mutex", func(b *testing.B) {
		var mu sync.Mutex
		h := hdrhistogram.New(hdrLowest, hdrHighest, hdrSigDigits)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				mu.Lock()
				_ = h.RecordValue(benchDurations[i&1023].Microseconds())
				mu.Unlock()
			}
		})
	})
}

// BenchmarkMessageInstrumentation is everything netcore does per message:
// two clock readings, the latency, the message and bytes in, one reply out.
func BenchmarkMessageInstrumentation(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		sh := newBenchMetrics(b).Shard(0)
		b.ReportAllocs()
		for b.Loop() {
			t0 := sh.Nanotime()
			t1 := sh.Nanotime()
			sh.ObserveMessage(KindEcho, time.Duration(t1-t0))
			sh.MessageReceived(64)
			sh.MessagesSent(1, 64)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		m := newBenchMetrics(b)
		var next atomic.Uint64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			sh := m.Shard(next.Add(1))
			for pb.Next() {
				t0 := sh.Nanotime()
				t1 := sh.Nanotime()
				sh.ObserveMessage(KindEcho, time.Duration(t1-t0))
				sh.MessageReceived(64)
				sh.MessagesSent(1, 64)
			}
		})
	})
	b.Run("time.Now_baseline", func(b *testing.B) {
		b.ReportAllocs()
		var sink time.Duration
		for b.Loop() {
			t0 := time.Now()
			sink += time.Since(t0)
		}
		_ = sink
	})
}
