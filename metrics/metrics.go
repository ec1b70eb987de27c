package metrics

import (
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
)

// Options configures a Metrics. The zero value of every field means its
// default; Metrics does not keep a reference to the Options.
type Options struct {
	// Now is the clock of the windows, the history and the rates; nil means
	// time.Now. Tests inject a fake clock and drive sampling with Sample.
	// Latencies never read it: callers measure them with Nanotime.
	Now func() time.Time

	// HistoryInterval is the sampling period of the history and of the
	// process statistics (--history-interval). Default 5 s; at most 1 min.
	HistoryInterval time.Duration

	// Shards is the number of recording shards, rounded up to a power of
	// two. Default: four per GOMAXPROCS, at most 256.
	Shards int

	// Version and Revision label sockmon_build_info; default "unknown".
	Version  string
	Revision string
}

const (
	DefaultHistoryInterval = 5 * time.Second
	maxHistoryInterval     = time.Minute
	maxShards              = 1024
)

// withDefaults validates o and fills in its defaults, reporting every
// problem at once.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	if o.Now == nil {
		o.Now = time.Now
	}
	switch {
	case o.HistoryInterval == 0:
		o.HistoryInterval = DefaultHistoryInterval
	case o.HistoryInterval < time.Millisecond || o.HistoryInterval > maxHistoryInterval:
		errs = append(errs, fmt.Errorf("metrics: HistoryInterval %v: want between 1ms and %v", o.HistoryInterval, maxHistoryInterval))
	}
	switch {
	case o.Shards == 0:
		o.Shards = min(4*runtime.GOMAXPROCS(0), 256)
	case o.Shards < 0 || o.Shards > maxShards:
		errs = append(errs, fmt.Errorf("metrics: Shards %d: want between 1 and %d", o.Shards, maxShards))
	}
	if o.Shards > 0 {
		o.Shards = 1 << bits.Len(uint(o.Shards-1))
	}
	if o.Version == "" {
		o.Version = "unknown"
	}
	if o.Revision == "" {
		o.Revision = "unknown"
	}
	return o, errors.Join(errs...)
}

// Metrics is the metrics core of one server: the recording shards, the
// connection counters and gauges, the rolling windows, the history, the
// process statistics and the Prometheus exposition. Create it with New, call
// Start to run the sampler and Close to stop it. All methods are safe for
// concurrent use.
type Metrics struct {
	opts  Options
	now   func() time.Time
	base  time.Time // monotonic base of Nanotime
	start time.Time // Options.Now at New

	shards []*Shard
	mask   uint64

	// Per connection, not per message: single atomics are enough.
	conns       [numAuths]atomic.Int64
	accepted    [numAuths]*vm.Counter
	rejected    [numRejectReasons]*vm.Counter
	disconnects [numInitiators][numDisconnectReasons]*vm.Counter
	ready       atomic.Bool
	maintenance atomic.Bool
	lingering   atomic.Int64

	expo exposition

	// mu serialises the readers (collect, windows, history, process
	// sampling). Writers never take it.
	mu       sync.Mutex
	col      collector
	windows  [numRolling]*window
	tick     slice // collected since the last Sample
	lastTick time.Time
	hist     *history
	q        *quantiler
	proc     procSampler
	procLast ProcessStats
	scratch  counts // since-start latency of all kinds

	// life of the sampler goroutine
	runMu   sync.Mutex
	started bool
	closed  bool
	stop    chan struct{}
	done    chan struct{}
}

// New returns a Metrics configured by o, with every known label combination
// registered at zero in its own Prometheus set.
func New(o Options) (*Metrics, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &Metrics{
		opts:   o,
		now:    o.Now,
		base:   time.Now(),
		shards: make([]*Shard, o.Shards),
		mask:   uint64(o.Shards - 1),
		hist:   newHistory(o.HistoryInterval),
		q:      newQuantiler(),
		proc:   procSampler{read: readProc},
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	m.start = m.now()
	m.lastTick = m.start
	for i := range m.shards {
		m.shards[i] = &Shard{base: m.base}
	}
	m.col.shards = m.shards
	for i, w := range windowSpecs {
		m.windows[i] = newWindow(w.span, w.chunks, m.start)
	}
	m.ready.Store(true)
	m.register()
	m.procLast = m.proc.sample(m.start)
	return m, nil
}

// Nanotime returns monotonic nanoseconds since m was created; see
// Shard.Nanotime.
func (m *Metrics) Nanotime() int64 {
	return int64(time.Since(m.base))
}

// Shard returns the shard for hint, typically the connection id: connections
// spread over the shards, and a connection keeps recording into one. The
// result can be kept for the life of the connection.
func (m *Metrics) Shard(hint uint64) *Shard {
	return m.shards[hint&m.mask]
}

// ConnectionOpened counts an upgraded connection: accepted_total and the
// connections gauge of its auth state.
func (m *Metrics) ConnectionOpened(a Auth) {
	if a >= numAuths {
		a = Anonymous
	}
	m.accepted[a].Inc()
	m.conns[a].Add(1)
}

// ConnectionClosed counts the end of a connection opened with auth state a:
// the gauge goes down and disconnections_total{initiator,reason} up. A slow
// consumer closed by the server is (InitiatorServer, ReasonSlowConsumer).
func (m *Metrics) ConnectionClosed(a Auth, by Initiator, reason DisconnectReason) {
	if a >= numAuths {
		a = Anonymous
	}
	if by >= numInitiators {
		by = InitiatorServer
	}
	if reason >= numDisconnectReasons {
		reason = ReasonOther
	}
	m.conns[a].Add(-1)
	m.disconnects[by][reason].Inc()
}

// ConnectionRejected counts a connection refused before the upgrade.
func (m *Metrics) ConnectionRejected(r RejectReason) {
	if r >= numRejectReasons {
		r = RejectHandshake
	}
	m.rejected[r].Inc()
}

// RateLimited counts a request refused by a rate limit outside any
// connection's shard (for instance an IP limit before the upgrade).
func (m *Metrics) RateLimited(sc Scope) {
	m.shards[0].RateLimited(sc)
}

// SetReady sets sockmon_ready: whether the server accepts new clients.
// A new Metrics is ready.
func (m *Metrics) SetReady(ready bool) { m.ready.Store(ready) }

// Lingering counts a connection entering (+1) or leaving (-1) its
// lingering close: its close frame or refusal is sent and its write side
// shut, and its input is read and dropped until the peer closes
// (sockmon_lingering_connections).
func (m *Metrics) Lingering(delta int64) { m.lingering.Add(delta) }

// SetMaintenance sets sockmon_maintenance_mode.
func (m *Metrics) SetMaintenance(on bool) { m.maintenance.Store(on) }

// Connections returns the number of open connections by auth state.
func (m *Metrics) Connections() (authenticated, anonymous int64) {
	return m.conns[Authenticated].Load(), m.conns[Anonymous].Load()
}

// Start runs the sampler: every HistoryInterval it collects the shards, rolls
// the windows, samples the process and appends a history point. Start
// returns at once; Close stops the sampler. Calling Start again, or after
// Close, does nothing.
func (m *Metrics) Start() {
	m.runMu.Lock()
	defer m.runMu.Unlock()
	if m.started || m.closed {
		return
	}
	m.started = true
	go m.run()
}

func (m *Metrics) run() {
	defer close(m.done)
	t := time.NewTicker(m.opts.HistoryInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			m.Sample()
		case <-m.stop:
			return
		}
	}
}

// Close stops the sampler and waits for it to exit. The Metrics stays
// readable and recordable. Close is idempotent and always returns nil.
func (m *Metrics) Close() error {
	m.runMu.Lock()
	if m.closed {
		m.runMu.Unlock()
		return nil
	}
	m.closed = true
	started := m.started
	close(m.stop)
	m.runMu.Unlock()
	if started {
		<-m.done
	}
	return nil
}

// Sample takes one history sample at Options.Now: it collects the shards,
// rolls the windows, samples the process and appends a point covering the
// time since the previous sample. The sampler started by Start calls it
// every HistoryInterval; tests with an injected clock call it themselves.
func (m *Metrics) Sample() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.collectLocked(now)
	m.procLast = m.proc.sample(now)
	ps := &m.procLast
	auth, anon := m.Connections()
	g := gauges{
		conns:      float64(auth + anon),
		auth:       float64(auth),
		anon:       float64(anon),
		heap:       float64(ps.HeapInuseBytes),
		rss:        float64(ps.RSSBytes),
		cpuPercent: 100 * ps.CPUFraction,
		goroutines: float64(ps.Goroutines),
		gcPauseMs:  ps.GCPauseIntervalMs,
		load:       [3]float64{ps.Load1, ps.Load5, ps.Load15},
	}
	dur := now.Sub(m.lastTick)
	m.hist.add(now, dur, &m.tick, &g, m.q)
	m.tick.reset()
	m.lastTick = now
}

// collectLocked collects the shards and distributes the delta. m.mu held.
func (m *Metrics) collectLocked(now time.Time) {
	d := m.col.collect()
	for _, w := range m.windows {
		w.advance(now)
		w.add(d, now)
	}
	m.tick.add(d)
}

// History returns the history points between from and to. A zero to means
// now, a zero from means as far back as kept. resolution picks the finest
// kept resolution at least that coarse which still reaches back to from;
// zero means the finest. See HistoryResult for the regrouping rule when
// resolution is coarser than every kept resolution.
func (m *Metrics) History(from, to time.Time, resolution time.Duration) HistoryResult {
	m.mu.Lock()
	defer m.mu.Unlock()
	if to.IsZero() {
		to = m.now()
	}
	return m.hist.query(from, to, resolution)
}

// Process returns the process statistics of the last sample (taken by New
// and then every HistoryInterval).
func (m *Metrics) Process() ProcessStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.procLast
}
