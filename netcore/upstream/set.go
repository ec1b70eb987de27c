package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore/breaker"
)

// Options configures a Set. The zero value of every field means its
// default.
type Options struct {
	// Metrics receives the upstream series (RequestsMetric, DurationMetric
	// and breaker.StateMetric), registered when a name first appears in a
	// Reload. Nil: no metrics.
	Metrics *metrics.Metrics

	// MaxReplyBytes caps an upstream's reply body; a longer one is never
	// read past the cap and the call fails with too_large. The protocol
	// sets it to --max-message-size. Default 64 KiB (netcore's default
	// message size).
	MaxReplyBytes int

	// Now and Rand are the breakers' clock and jitter source (see
	// breaker.Config); nil means time.Now and math/rand/v2. Call deadlines
	// always use the real clock.
	Now  func() time.Time
	Rand func() float64

	// LookupEnv reads the ${NAME} references of header values; nil means
	// os.LookupEnv.
	LookupEnv func(string) (string, bool)

	// Dial opens connections to upstreams within timeout; nil means a
	// net.Dialer. Tests use it to refuse connections on demand.
	Dial func(addr string, timeout time.Duration) (net.Conn, error)

	// IdleConnTimeout closes pooled connections idle for that long.
	// Default 4 s: under the 5 s keep-alive timeout of Node.js servers, so
	// that a call seldom lands on a connection the upstream has just
	// closed (that failure cannot be retried: the request was written).
	IdleConnTimeout time.Duration
}

// Defaults of the Options fields.
const (
	DefaultMaxReplyBytes   = 64 << 10
	DefaultIdleConnTimeout = 4 * time.Second

	readBufferSize   = 16 << 10 // also the cap on a reply's headers
	maxMaxReplyBytes = 1 << 30
)

func (o Options) withDefaults() (Options, error) {
	var errs []error
	switch {
	case o.MaxReplyBytes == 0:
		o.MaxReplyBytes = DefaultMaxReplyBytes
	case o.MaxReplyBytes < 0 || o.MaxReplyBytes > maxMaxReplyBytes:
		errs = append(errs, fmt.Errorf("upstream: MaxReplyBytes %d: want between 1 and %d", o.MaxReplyBytes, maxMaxReplyBytes))
	}
	switch {
	case o.IdleConnTimeout == 0:
		o.IdleConnTimeout = DefaultIdleConnTimeout
	case o.IdleConnTimeout < 0:
		errs = append(errs, fmt.Errorf("upstream: IdleConnTimeout %v: want > 0", o.IdleConnTimeout))
	}
	if o.LookupEnv == nil {
		o.LookupEnv = osLookupEnv
	}
	if o.Dial == nil {
		o.Dial = func(addr string, timeout time.Duration) (net.Conn, error) {
			return (&net.Dialer{Timeout: timeout}).Dial("tcp", addr)
		}
	}
	return o, errors.Join(errs...)
}

// ErrShutdown is Reload's error after Shutdown.
var ErrShutdown = errors.New("upstream: the set is shut down")

// Set holds the named upstreams, each behind its own circuit breaker and
// bounded worker pool. Create it with New, load upstreams with Reload
// (again at every SIGHUP), call them with Call, stop it with Shutdown. All
// methods are safe for concurrent use.
//
// Lock order: Set.mu (Reload, Shutdown) before upstream.mu; wmu and
// the breakers' locks are leaves. Call takes no Set lock: it reads the
// current table through an atomic pointer.
type Set struct {
	opts Options
	cur  atomic.Pointer[table]
	hook atomic.Pointer[func(breaker.Event)]

	mu     sync.Mutex // serialises Reload and Shutdown; guards series
	closed atomic.Bool
	series map[string]*upMetrics

	wmu       sync.Mutex // guards live, running and closing
	live      int        // worker goroutines running, of current and retired upstreams
	running   map[*upstream]bool
	closing   bool
	drained   chan struct{} // closed when closing and live == 0
	drainOnce sync.Once
}

// table is an immutable set of upstreams, swapped whole by Reload.
type table struct {
	byName map[string]*upstream
	names  []string // sorted
}

// New returns an empty Set. The error lists every invalid option.
func New(opts Options) (*Set, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Set{opts: opts, series: map[string]*upMetrics{}, running: map[*upstream]bool{}, drained: make(chan struct{})}
	s.cur.Store(&table{byName: map[string]*upstream{}})
	return s, nil
}

// OnBreakerChange sets the hook called with every transition of every
// upstream's breaker (nil removes it); Event.Name is the upstream's name.
// It runs on the goroutine of the call that caused the transition (often
// a worker; sometimes the caller of Call, Snapshot or Reset, or a metrics
// scrape noticing that an open period is over), one event of a breaker at
// a time and in order: it must not block. One log line per
// transition, and alert events, belong in it.
func (s *Set) OnBreakerChange(f func(breaker.Event)) {
	if f == nil {
		s.hook.Store(nil)
		return
	}
	s.hook.Store(&f)
}

func (s *Set) emit(e breaker.Event) {
	if f := s.hook.Load(); f != nil {
		(*f)(e)
	}
}

// Reload validates specs (every problem at once, as a *ConfigError,
// including header values' environment variables and duplicate names) and,
// if they are all valid, swaps them in atomically; otherwise the current
// upstreams stay as they are. An upstream whose Spec did not change keeps
// running untouched. A changed one is replaced: calls already accepted
// finish on the old one, whose workers then exit; its breaker is kept when
// the URL and the breaker settings are the same. A removed upstream stops
// accepting calls (they get not_found).
func (s *Set) Reload(specs []Spec) error {
	rs, err := resolveAll(specs, s.opts.LookupEnv)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrShutdown
	}
	old := s.cur.Load()
	next := &table{byName: make(map[string]*upstream, len(rs))}
	var fresh []*upstream
	for _, r := range rs {
		um, err := s.metricsFor(r.Name)
		if err != nil {
			return fmt.Errorf("upstream %q: metrics: %w", r.Name, err)
		}
		o := old.byName[r.Name]
		if o != nil && sameSpec(o.r, r) {
			next.byName[r.Name] = o
			continue
		}
		var br *breaker.Breaker
		if o != nil && o.r.URL == r.URL && reflect.DeepEqual(o.r.Breaker, r.Breaker) {
			br = o.br
		} else {
			cfg := r.Breaker
			cfg.Now, cfg.Rand = s.opts.Now, s.opts.Rand
			if br, err = breaker.New(r.Name, cfg); err != nil {
				return err // resolve validated it
			}
			br.OnChange(s.emit)
		}
		u := s.newUpstream(r, br, um)
		next.byName[r.Name] = u
		fresh = append(fresh, u)
	}
	for name := range next.byName {
		next.names = append(next.names, name)
	}
	sort.Strings(next.names)
	for _, u := range fresh {
		u.start()
	}
	s.cur.Store(next)
	for name, o := range old.byName {
		if next.byName[name] != o {
			o.retire()
		}
	}
	return nil
}

// Names returns the names of the upstreams, sorted.
func (s *Set) Names() []string {
	return append([]string(nil), s.cur.Load().names...)
}

// Status is one upstream in a Snapshot: nothing sensitive (no URL, no
// header).
type Status struct {
	Name     string `json:"name"`
	Critical bool   `json:"critical"`
	// Breaker is the breaker's state: State, Failures and the times for
	// health and admin views.
	Breaker  breaker.Snapshot `json:"breaker"`
	InFlight int              `json:"inFlight"` // calls being made
	Queued   int              `json:"queued"`   // calls accepted and not yet taken by a worker
}

// Down reports whether the upstream's breaker is open or half-open: the
// upstream is not known to be serving. Health counts a down upstream as
// degraded, or unhealthy when it is Critical.
func (st Status) Down() bool { return st.Breaker.State != breaker.Closed }

// Snapshot copies the state of every upstream, sorted by name. It takes
// each breaker's lock briefly and nothing else.
func (s *Set) Snapshot() []Status {
	t := s.cur.Load()
	out := make([]Status, 0, len(t.names))
	for _, name := range t.names {
		u := t.byName[name]
		out = append(out, Status{
			Name:     name,
			Critical: u.r.Critical,
			Breaker:  u.br.Snapshot(),
			InFlight: int(u.inFlight.Load()),
			Queued:   max(0, int(u.accepted.Load()-u.inFlight.Load())),
		})
	}
	return out
}

// Reset closes the breaker of the named upstream, or of every upstream
// for "*" (the admin's reset_circuit_breaker). An unknown name, or "*"
// with no upstream configured, is an *UnknownServiceError listing the
// known names.
func (s *Set) Reset(name string) error {
	t := s.cur.Load()
	if name == "*" && len(t.names) > 0 {
		for _, n := range t.names {
			t.byName[n].br.Reset()
		}
		return nil
	}
	u := t.byName[name]
	if u == nil {
		return &UnknownServiceError{Name: name, Known: append([]string(nil), t.names...)}
	}
	u.br.Reset()
	return nil
}

// Shutdown stops the Set: new calls are answered unavailable at once,
// queued calls too, calls in flight finish (each within its Timeout), then
// every worker exits and idle connections are closed. It returns when the
// workers are gone, or ctx's error if ctx ends first (the workers still
// exit, by their calls' deadlines). fasthttp's idle-connection cleaner,
// one goroutine per HostClient, exits within IdleConnTimeout after that.
// Shutdown may be called more than once.
func (s *Set) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed.Store(true)
	s.mu.Unlock()
	s.wmu.Lock()
	ups := make([]*upstream, 0, len(s.running))
	for u := range s.running { // current ones, and retired ones still finishing
		ups = append(ups, u)
	}
	s.wmu.Unlock()
	for _, u := range ups {
		u.retire()
		u.drain() // the workers may all be busy: answer the queue here
	}
	s.wmu.Lock()
	s.closing = true
	if s.live == 0 {
		s.drainOnce.Do(func() { close(s.drained) })
	}
	s.wmu.Unlock()
	select {
	case <-s.drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Set) workersStarted(u *upstream, n int) {
	s.wmu.Lock()
	s.live += n
	s.running[u] = true
	s.wmu.Unlock()
}

func (s *Set) workerDone(u *upstream, last bool) {
	s.wmu.Lock()
	s.live--
	if last {
		delete(s.running, u)
	}
	if s.live == 0 && s.closing {
		s.drainOnce.Do(func() { close(s.drained) })
	}
	s.wmu.Unlock()
}

// upstream is one loaded Spec: its client, breaker, queue and workers.
type upstream struct {
	s      *Set
	r      resolved
	client *fasthttp.HostClient
	br     *breaker.Breaker
	m      *upMetrics

	mu     sync.RWMutex // guards closed against sends on queue
	closed bool
	queue  chan *job // capacity MaxConcurrent+MaxQueued: a send never blocks

	accepted atomic.Int32 // calls queued or in flight; at most MaxConcurrent+MaxQueued
	workers  atomic.Int32 // running
	inFlight atomic.Int32
}

func (s *Set) newUpstream(r resolved, br *breaker.Breaker, um *upMetrics) *upstream {
	u := &upstream{s: s, r: r, br: br, m: um, queue: make(chan *job, r.MaxConcurrent+r.MaxQueued)}
	addr, tls := hostAddr(r.URL)
	dial := s.opts.Dial
	u.client = &fasthttp.HostClient{
		Addr:                      addr,
		IsTLS:                     tls,
		Name:                      "sockmon",
		DialTimeout:               dial,
		MaxConns:                  r.MaxConcurrent,
		MaxIdleConnDuration:       s.opts.IdleConnTimeout,
		MaxIdemponentCallAttempts: 1, // retries are ours: only what was never sent
		MaxResponseBodySize:       s.opts.MaxReplyBytes,
		ReadBufferSize:            readBufferSize,
		DisablePathNormalizing:    true,
	}
	return u
}

// start runs the upstream's workers.
func (u *upstream) start() {
	n := u.r.MaxConcurrent
	u.workers.Store(int32(n))
	u.s.workersStarted(u, n)
	for range n {
		go u.work()
	}
}

// retire stops accepting calls; the workers finish the queue and exit.
func (u *upstream) retire() {
	u.mu.Lock()
	if !u.closed {
		u.closed = true
		close(u.queue)
	}
	u.mu.Unlock()
}

// drain answers the calls left in the queue of a retired upstream at
// shutdown; workers that pick some up answer them the same way.
func (u *upstream) drain() {
	for j := range u.queue {
		u.run(j)
	}
}

func (u *upstream) work() {
	defer u.exit()
	for j := range u.queue {
		u.run(j)
	}
}

func (u *upstream) exit() {
	last := u.workers.Add(-1) == 0
	if last {
		u.client.CloseIdleConnections()
	}
	u.s.workerDone(u, last)
}
