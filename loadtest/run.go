package loadtest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// run is the state of one Run call.
type run struct {
	cfg        Config
	clock      Clock
	closedLoop bool

	stats       counters
	corrected   *latencyHist // reply time minus intended send time
	uncorrected *latencyHist // reply time minus actual send time
	lag         *latencyHist // actual minus intended send time (the generator's own delay)
	connect     *latencyHist // dial start to upgrade complete
	fanout      *latencyHist // publish intended time to its last delivery

	stopping atomic.Bool
	poller   *poller // reads ws:// connections and paces the open model

	sessions   []*session
	publishers []*session // set by join before the measured phase, read-only after
	// pubs is published by join once the publishers are chosen; member
	// readers load it when a delivery arrives.
	pubs       atomic.Pointer[pubSet]
	pubMembers atomic.Int64

	phase atomic.Value // string: "ramp", "join", "run", "drain", "done"
}

func newRun(cfg Config) *run {
	messages := cfg.Mode != ModeConnectOnly
	r := &run{
		cfg:         cfg,
		clock:       cfg.Clock,
		closedLoop:  cfg.Rate == 0,
		corrected:   newLatencyHist(messages),
		uncorrected: newLatencyHist(messages),
		lag:         newLatencyHist(messages),
		connect:     newLatencyHist(false), // recorded while dialling, before the measured phase
		fanout:      newLatencyHist(cfg.Mode == ModePublish),
	}
	r.phase.Store("ramp")
	// One allocation for every session (and one for their traffic): no
	// per-object rounding, and the collector has fewer objects to track.
	r.sessions = make([]*session, cfg.Conns)
	all := make([]session, cfg.Conns)
	var tr []traffic
	if messages {
		tr = make([]traffic, cfg.Conns)
	}
	for i := range all {
		s := &all[i]
		s.id, s.run = i, r
		if tr != nil {
			s.traffic = &tr[i]
		}
		r.sessions[i] = s
	}
	return r
}

// Run performs one load run as cfg describes and returns its report. It is
// bounded by cfg.Conns and cfg.Duration (plus the ramp and at most
// cfg.Timeout of draining), returns early with Report.Interrupted set when
// ctx is cancelled, and always returns the report of what ran unless cfg is
// invalid or the target cannot be resolved. An error with a report means an
// event loop of the generator failed (its connections went unread), so the
// figures are not to be trusted. Every goroutine it starts has
// ended when it returns; connections are closed.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if lim := fdLimit(); lim > 0 && uint64(cfg.Conns)+fdReserve > lim {
		return nil, fmt.Errorf("loadtest: %d connections need more open files than this process may have (%d); "+
			"lower --conns or run several processes", cfg.Conns, lim)
	}
	r := newRun(cfg)
	p, err := newPoller(r, loopCount(&r.cfg, runtime.GOMAXPROCS(0)))
	if err != nil {
		return nil, err
	}
	r.poller = p
	d, err := newDialer(&r.cfg, p)
	if err != nil {
		p.stop()
		return nil, err
	}
	wall := time.Now()
	var scrapes scrapeSet
	if cfg.MetricsURL != "" {
		scrapes.before = scrape(ctx, cfg.MetricsURL)
	}

	stopProgress := r.startProgress()
	defer stopProgress()

	rampStart := r.clock.Now()
	established := r.ramp(ctx, d)
	rampEnd := r.clock.Now()

	if cfg.Mode == ModePublish && len(established) > 0 && ctx.Err() == nil {
		r.phase.Store("join")
		r.join(ctx, established)
	}

	if cfg.Mode == ModeConnectOnly {
		// A hold allocates nothing more: hand the ramp's garbage (the
		// handshakes' buffers and headers) back to the system now instead of
		// carrying it, at the collector's pace, through the whole hold.
		debug.FreeOSMemory()
	}
	if cfg.MetricsURL != "" {
		scrapes.start = scrape(ctx, cfg.MetricsURL)
	}
	r.phase.Store("run")
	cpu0 := processCPU()
	start := r.clock.Now()
	measured := r.measure(ctx, established, start)
	cpu1 := processCPU()
	if cfg.MetricsURL != "" {
		scrapes.end = scrape(context.WithoutCancel(ctx), cfg.MetricsURL)
	}
	held := 0
	for _, s := range established {
		if s.isOpen() {
			held++
		}
	}
	r.phase.Store("close")
	r.closeAll(established)
	p.stop()
	d.wg.Wait()
	r.phase.Store("done")
	stopProgress()

	rep := r.report(reportInputs{
		started:     wall,
		interrupted: ctx.Err() != nil,
		ramp:        rampEnd - rampStart,
		measured:    measured,
		cpu:         cpu1 - cpu0,
		held:        held,
		scrapes:     scrapes,
	})
	return rep, p.err()
}

// ramp dials every connection, at most cfg.Ramp per second and
// cfg.DialConcurrency at once, and returns the sessions that were upgraded,
// in the order they were.
func (r *run) ramp(ctx context.Context, d *dialer) []*session {
	tickets := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	established := make([]*session, 0, len(r.sessions))
	workers := min(r.cfg.DialConcurrency, len(r.sessions))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range tickets {
				s := r.sessions[i]
				t0 := r.clock.Now()
				r.stats.attempts.Add(1)
				if err := d.dial(ctx, s, i); err != nil {
					var de *dialError
					if errors.As(err, &de) {
						r.stats.addError(de.class)
					} else {
						r.stats.addError(ErrClassHandshake)
					}
					continue
				}
				r.connect.record(i, r.clock.Now()-t0)
				r.stats.established.Add(1)
				mu.Lock()
				established = append(established, s)
				mu.Unlock()
			}
		}()
	}
	start := r.clock.Now()
	for i := range r.sessions {
		if r.cfg.Ramp > 0 {
			r.clock.SleepUntil(ctx, start+time.Duration(float64(i)*float64(time.Second)/r.cfg.Ramp))
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case tickets <- i:
		case <-ctx.Done():
		}
	}
	close(tickets)
	wg.Wait()
	return established
}

// join sends every session's join and waits, at most cfg.Timeout, for the
// acks; publishers are the first cfg.Publishers sessions that joined.
func (r *run) join(ctx context.Context, established []*session) {
	for _, s := range established {
		s.sendJoin()
	}
	deadline := r.clock.Now() + r.cfg.Timeout
	for r.stats.joined.Load() < int64(len(established)) && r.clock.Now() < deadline && ctx.Err() == nil {
		r.clock.SleepUntil(ctx, r.clock.Now()+5*time.Millisecond)
	}
	var members int64
	for _, s := range established {
		s.mu.Lock()
		if s.joined {
			members++
			if len(r.publishers) < r.cfg.Publishers {
				r.publishers = append(r.publishers, s)
				s.publisher = len(r.publishers)
			}
		}
		s.mu.Unlock()
	}
	if missing := int64(len(established)) - members; missing > 0 {
		r.stats.addErrors(ErrClassJoin, missing-r.errorsOf(ErrClassJoin))
	}
	set := &pubSet{publishers: r.publishers}
	for range r.publishers {
		set.trackers = append(set.trackers, &pubTracker{})
	}
	r.pubs.Store(set)
	r.pubMembers.Store(members)
}

func (r *run) errorsOf(class string) int64 {
	r.stats.mu.Lock()
	defer r.stats.mu.Unlock()
	return r.stats.errors[class]
}

// measure runs the measured phase from start for cfg.Duration (or until ctx
// is done), then stops sending and drains replies for at most cfg.Timeout.
// It returns the length of the sending phase.
func (r *run) measure(ctx context.Context, established []*session, start time.Duration) time.Duration {
	end := start + r.cfg.Duration
	var senders []*session
	if r.cfg.Mode == ModePublish {
		senders = r.publishers
	} else if r.cfg.Mode != ModeConnectOnly {
		senders = established
	}
	var wg sync.WaitGroup
	var paced <-chan struct{}
	reaperCtx, stopReaper := context.WithCancel(ctx)
	if len(senders) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.reap(reaperCtx)
		}()
		if r.closedLoop {
			for _, s := range senders {
				s.startClosedLoop()
			}
		} else {
			paced = r.poller.pace(senders, r.cfg.Rate, start, end)
		}
	}
	r.clock.SleepUntil(ctx, end)
	stopAt := r.clock.Now()
	r.stopping.Store(true)
	if paced != nil {
		for _, l := range r.poller.loops {
			l.wake()
		}
		<-paced
	}
	r.phase.Store("drain")
	r.drain(ctx, established)
	stopReaper()
	wg.Wait()
	r.countUnanswered(established)
	return stopAt - start
}

// reap counts a message in flight longer than cfg.Timeout as a timeout,
// once. A closed-loop publisher then gives up on that publish and goes on.
func (r *run) reap(ctx context.Context) {
	tick := max(r.cfg.Timeout/10, 10*time.Millisecond)
	tick = min(tick, 100*time.Millisecond)
	for ctx.Err() == nil {
		r.clock.SleepUntil(ctx, r.clock.Now()+tick)
		now := r.clock.Now()
		for _, s := range r.sessions {
			s.mu.Lock()
			if s.open && s.busyLocked() && !s.timedOut && now-s.sentAt > r.cfg.Timeout {
				s.timedOut = true
				r.stats.addError(ErrClassTimeout)
				if r.cfg.Mode == ModePublish {
					s.inflight = false
					if !r.stopping.Load() {
						s.sendPublishLocked(now, now)
					}
				}
			}
			s.mu.Unlock()
		}
	}
}

// drain waits, at most cfg.Timeout (at most a second more once ctx is
// cancelled), until no message is in flight and, in publish mode, every
// delivery has arrived.
func (r *run) drain(ctx context.Context, established []*session) {
	// Sends check stopping under the session's lock: once every lock has
	// been taken after stopping was set, no send is still in progress, so
	// the counts settled and countUnanswered read can no longer grow.
	for _, s := range established {
		s.mu.Lock()
		s.mu.Unlock() //nolint:staticcheck // an empty critical section is the barrier
	}
	deadline := r.clock.Now() + r.cfg.Timeout
	if ctx.Err() != nil {
		deadline = min(deadline, r.clock.Now()+time.Second)
	}
	cancelled := ctx.Err() != nil
	bg := context.WithoutCancel(ctx)
	for !r.settled(established) && r.clock.Now() < deadline {
		r.clock.SleepUntil(bg, r.clock.Now()+5*time.Millisecond)
		if !cancelled && ctx.Err() != nil {
			cancelled = true
			deadline = min(deadline, r.clock.Now()+time.Second)
		}
	}
}

func (r *run) settled(established []*session) bool {
	if r.cfg.Mode == ModePublish {
		return r.stats.deliveries.Load() >= r.stats.sent.Load()*r.pubMembers.Load()
	}
	for _, s := range established {
		s.mu.Lock()
		busy := s.open && s.busyLocked()
		s.mu.Unlock()
		if busy {
			return false
		}
	}
	return true
}

// countUnanswered counts what never came back after the drain: echo
// messages still in flight (as timeouts, unless already counted) and, in
// publish mode, missing deliveries.
func (r *run) countUnanswered(established []*session) {
	if r.cfg.Mode == ModePublish {
		missing := r.stats.sent.Load()*r.pubMembers.Load() - r.stats.deliveries.Load()
		r.stats.addErrors(ErrClassMissingDelivery, missing)
		return
	}
	for _, s := range established {
		s.mu.Lock()
		if s.open && s.busyLocked() && !s.timedOut {
			s.timedOut = true
			r.stats.addError(ErrClassTimeout)
		}
		s.mu.Unlock()
	}
}

// backlog is the number of open-model sends the schedule asked for that
// never went out because their connection was waiting for a reply.
func (r *run) backlog() int64 {
	var n int64
	for _, s := range r.sessions {
		s.mu.Lock()
		if s.traffic != nil {
			n += s.owed
		}
		s.mu.Unlock()
	}
	return n
}

// closeAll starts the closing handshake on every open connection (code
// 1000), waits at most a second for the server's answers, then closes what
// is left.
func (r *run) closeAll(established []*session) {
	body := []byte{0x03, 0xe8} // 1000
	for _, s := range established {
		s.mu.Lock()
		if s.open && !s.closing {
			s.closing = true
			s.writeLocked(ws.OpClose, body)
		}
		s.mu.Unlock()
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		open := 0
		for _, s := range established {
			if s.isOpen() {
				open++
			}
		}
		if open == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, s := range established {
		s.mu.Lock()
		s.goneLocked(true)
		s.mu.Unlock()
	}
}
