package netcore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/netpoll"
	"github.com/sockmon/sockmon/metrics"
)

// Server is a WebSocket server on a netpoll event loop. Create it with New,
// run it with Serve or ListenAndServe, stop it with Shutdown.
type Server struct {
	cfg Config
	log *slog.Logger

	reg         registry
	stats       serverStats
	metrics     *metrics.Metrics
	ownsMetrics bool
	routes      []Route                // set by Handle before Serve; read-only after
	httpRoutes  map[string]HTTPHandler // set by HandleHTTP before Serve; read-only after
	hooks       hooks
	maintenance atomic.Pointer[MaintenanceState]
	shed        atomic.Pointer[ShedState]

	// Background work the server owns (batched disconnects); Shutdown
	// cancels bgCtx and waits for bgWG.
	bgCtx    context.Context
	bgCancel context.CancelFunc
	bgWG     sync.WaitGroup

	// Every internal time is monotonic: nanoseconds since base (mono), so a
	// step of the wall clock (NTP, an operator) neither idle-closes every
	// connection nor suspends the timeouts. Readers get base.Add(mono).
	base       time.Time
	clock      atomic.Int64 // coarse mono nanoseconds, advanced by the sweeper
	heartbeat  atomic.Int64 // mono nanoseconds of the last runner heartbeat; 0 before the first
	beatFn     func()
	upgraded   atomic.Int64 // connections past the upgrade and not closed
	pending    atomic.Int64 // connections in the handshake (pending.go)
	pendingIPs pendingIPs
	fdLimit    uint64           // RLIMIT_NOFILE at New; 0 if unknown
	queued     atomic.Int64     // bytes in every connection's outbound queue (Config.OutboundBudget)
	budgetShed *metrics.Counter // connections closed for the outbound budget
	draining   atomic.Bool
	serving    atomic.Bool

	mu      sync.Mutex // guards the fields below
	evl     netpoll.EventLoop
	ln      net.Listener
	stop    chan struct{}
	stopped bool
	wg      sync.WaitGroup // the sweeper
}

// serverStats are server-wide counters, read by Stats.
type serverStats struct {
	accepted      atomic.Uint64 // upgrades completed
	rejected      atomic.Uint64 // upgrades refused
	closed        atomic.Uint64 // upgraded connections closed
	slowConsumers atomic.Uint64
	protocolErrs  atomic.Uint64
	panics        atomic.Uint64
}

// Stats is a copy of the server-wide counters.
type Stats struct {
	Open          int64  // upgraded connections now
	Accepted      uint64 // upgrades completed since start
	Rejected      uint64 // upgrades refused since start
	Closed        uint64 // upgraded connections closed since start
	SlowConsumers uint64 // connections closed for a full outbound queue
	ProtocolErrs  uint64 // connections closed for a protocol violation
	Panics        uint64 // handler or engine panics recovered (each closed one connection)
	Draining      bool
}

// netpoll keeps its settings (buffer sizes, the task runner, its logger) in
// package variables, so they are process-wide: the first New sets them, to
// constants every Server shares, and netpoll's own log lines go to the
// Logger of that first Server.
var netpollSetup struct {
	once  sync.Once
	err   error
	log   atomic.Pointer[slog.Logger]
	cores atomic.Int32 // GOMAXPROCS as the runtime chose it, before the spare P
	// noRescue is Config.DisablePollerRescue of the first server, written
	// once in once.Do and read after it.
	noRescue bool
}

// Cores is how many cores the engine serves on: GOMAXPROCS as the Go
// runtime (or the operator's GOMAXPROCS) set it, which follows a
// container's CPU limit. The engine runs one netpoll poller per core and
// raises GOMAXPROCS by one, a spare P for every other goroutine (the
// control port, timers, the sweeper), so that they never wait for a
// poller's batch to end. Use Cores, not GOMAXPROCS, for "the CPUs this
// process may use".
func Cores() int {
	if n := netpollSetup.cores.Load(); n > 0 {
		return int(n)
	}
	return runtime.GOMAXPROCS(0)
}

// setupNetpoll configures netpoll, once per process; log, when not nil and
// the first, gets netpoll's messages.
func setupNetpoll(log *slog.Logger, noRescue bool) error {
	netpollSetup.once.Do(func() {
		netpollSetup.noRescue = noRescue
		pollers := runtime.GOMAXPROCS(0)
		netpollSetup.cores.Store(int32(pollers))
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		netpollSetup.log.Store(log)
		netpoll.LinkBufferCap = netpollMinNode
		netpollSetup.err = netpoll.Configure(netpoll.Config{
			BufferSize:   netpollBufferSize,
			LoggerOutput: netpollLog{},
			Runner:       runTask,
			TaskRunner:   runConnTask,
			Inline:       servesInline,
			PollerRescue: !noRescue, // a preempted poller holds up only its batch (netpoll patch 8)
			PollerNum:    pollers,
		})
		runtime.GOMAXPROCS(pollers + 1)
	})
	if netpollSetup.err != nil {
		return fmt.Errorf("netcore: configure netpoll: %w", netpollSetup.err)
	}
	if netpollSetup.noRescue != noRescue {
		return fmt.Errorf("netcore: DisablePollerRescue %v: the process's pollers were set up with %v by an earlier server", noRescue, netpollSetup.noRescue)
	}
	return nil
}

// netpoll buffer sizing. sockmon's netpoll holds no buffer for an idle
// connection (third_party/netpoll/PATCHES.md, patch 4): it takes one from a
// pool when bytes arrive or a frame is written and pools it once drained.
// By default no node is smaller than 4 KiB; here the first input node is
// netpollBufferSize (netpoll doubles it, up to 64 KiB, for connections
// whose reads fill it: patch 9) and
// no node is smaller than netpollMinNode, so a busy connection's buffers
// stay small too.
const (
	netpollBufferSize = 256
	netpollMinNode    = 256
)

// fdReserve is the descriptors a process needs besides its clients: the
// listeners, the control side, the store, log files, netpoll's pollers.
const fdReserve = 64

// New checks cfg and returns a server that is not yet listening.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := setupNetpoll(cfg.Logger, cfg.DisablePollerRescue); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, stop: make(chan struct{}), metrics: cfg.Metrics}
	if s.metrics == nil {
		m, err := metrics.New(metrics.Options{})
		if err != nil {
			return nil, err
		}
		s.metrics, s.ownsMetrics = m, true
	}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	s.base = time.Now()
	s.beatFn = func() { s.heartbeat.Store(max(s.mono(), 1)) }
	s.reg.init()
	if err := s.registerMetrics(); err != nil {
		return nil, err
	}
	s.fdLimit = fdLimit()
	if need := uint64(s.cfg.MaxConns + s.cfg.MaxPending + fdReserve); s.fdLimit > 0 && s.fdLimit < need {
		s.log.Warn("the open-file limit is below what --max-conns and --max-pending need; raise it (ulimit -n, systemd LimitNOFILE=)",
			"limit", s.fdLimit, "need", need, "max_conns", s.cfg.MaxConns, "max_pending", s.cfg.MaxPending)
	}
	s.clock.Store(s.mono())
	s.metrics.SetReady(false)
	return s, nil
}

// registerMetrics adds the engine's own series to its Metrics.
func (s *Server) registerMetrics() error {
	err := s.metrics.RegisterGauge("sockmon_outbound_queued_bytes", "",
		"Bytes waiting in connections' outbound queues, all connections together (bounded by the outbound budget).",
		func() float64 { return float64(s.queued.Load()) })
	if err != nil {
		return err
	}
	s.budgetShed, err = s.metrics.RegisterCounter("sockmon_outbound_budget_shed_total", "",
		"Connections closed (1008, as slow consumers) because the outbound queues of all connections reached the outbound budget.")
	return err
}

// Config returns the configuration in force, defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// Handle registers a route: upgrades to r.Path are admitted by r.Admitter
// and served by r.Handler. Register every route before Serve; it reports an
// error for a route without a path starting with "/", a handler or an
// admitter, for a path already taken, and after Serve.
func (s *Server) Handle(r Route) error {
	switch {
	case s.serving.Load() || s.Addr() != nil:
		return fmt.Errorf("netcore: route %q registered after Serve", r.Path)
	case !strings.HasPrefix(r.Path, "/"):
		return fmt.Errorf("netcore: route path %q must start with /", r.Path)
	case r.Handler == nil || r.Admitter == nil:
		return fmt.Errorf("netcore: route %q needs a Handler and an Admitter (netcore.AdmitAll to admit everyone)", r.Path)
	case s.route(r.Path) != nil || s.httpRoutes[r.Path] != nil:
		return fmt.Errorf("netcore: route %q registered twice", r.Path)
	}
	s.routes = append(s.routes, r)
	return nil
}

// route returns the route of path, or nil.
func (s *Server) route(path string) *Route {
	for i := range s.routes {
		if s.routes[i].Path == path {
			return &s.routes[i]
		}
	}
	return nil
}

// now returns the coarse clock: accurate to the sweeper's tick.
func (s *Server) now() int64 { return s.clock.Load() }

// mono returns the monotonic nanoseconds since the server was created.
func (s *Server) mono() int64 { return int64(time.Since(s.base)) }

// wall turns a mono time into a wall-clock time for readers.
func (s *Server) wall(mono int64) time.Time { return s.base.Add(time.Duration(mono)) }

// Ready reports whether the server accepts new clients: serving, not
// draining, not in maintenance and not shedding load.
func (s *Server) Ready() bool {
	return s.serving.Load() && !s.draining.Load() && s.maintenance.Load() == nil && s.shed.Load() == nil
}

// Metrics returns the metrics the server records into.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// Draining reports whether a drain has started.
func (s *Server) Draining() bool { return s.draining.Load() }

// Stats copies the server-wide counters.
func (s *Server) Stats() Stats {
	return Stats{
		Open:          s.upgraded.Load(),
		Accepted:      s.stats.accepted.Load(),
		Rejected:      s.stats.rejected.Load(),
		Closed:        s.stats.closed.Load(),
		SlowConsumers: s.stats.slowConsumers.Load(),
		ProtocolErrs:  s.stats.protocolErrs.Load(),
		Panics:        s.stats.panics.Load(),
		Draining:      s.draining.Load(),
	}
}

// Conn returns the connection with the given socket id, or nil.
func (s *Server) Conn(id uint64) *Conn { return s.reg.get(id) }

// Conns copies the state of every upgraded connection.
func (s *Server) Conns() []ConnInfo {
	out := make([]ConnInfo, 0, s.upgraded.Load())
	s.reg.each(func(c *Conn) {
		if st := c.state.Load(); st == stateOpen || st == stateClosing {
			out = append(out, c.Info())
		}
	})
	return out
}

// Addr returns the listener's address once Serve has started, or nil.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// ListenAndServe listens on Config.Addr and serves until Shutdown.
func (s *Server) ListenAndServe() error {
	ln, err := netpoll.CreateListener("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("netcore: listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Shutdown; it returns
// ErrServerClosed after a shutdown. ln must be a TCP listener.
func (s *Server) Serve(ln net.Listener) error {
	if len(s.routes) == 0 {
		_ = ln.Close()
		return errors.New("netcore: no routes: register at least one with Handle before Serve")
	}
	evl, err := netpoll.NewEventLoop(s.onRequest,
		netpoll.WithOnPrepare(s.onPrepare),
	)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	if s.evl != nil {
		s.mu.Unlock()
		return errors.New("netcore: Serve called twice")
	}

	s.evl, s.ln = evl, ln
	s.wg.Add(1)
	go s.sweep()
	s.mu.Unlock()

	if s.ownsMetrics {
		s.metrics.Start()
	}
	s.serving.Store(true)
	s.metrics.SetReady(s.Ready())
	err = evl.Serve(ln)
	s.serving.Store(false)
	s.metrics.SetReady(false)
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		return ErrServerClosed
	}
	return err
}

type connKey struct{}

// connContext is the Conn as the context netpoll hands back to onRequest:
// a conversion of the pointer, where context.WithValue would cost every
// connection 48 bytes. It carries no deadline and is never done.
type connContext Conn

func (*connContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*connContext) Done() <-chan struct{}       { return nil }
func (*connContext) Err() error                  { return nil }

// Value returns the Conn for connKey{}, nil for any other key.
func (c *connContext) Value(key any) any {
	if key == (connKey{}) {
		return (*Conn)(c)
	}
	return nil
}

// onPrepare runs on netpoll's poller for each accepted socket: it creates the
// Conn and registers it. It must not block.
func (s *Server) onPrepare(nc netpoll.Connection) context.Context {
	if _, ok := nc.(noWaitFlusher); !ok {
		// Only sockmon's netpoll (third_party/netpoll) has FlushNoWait; the
		// write path relies on it, so a connection without it is refused
		// here rather than failing later on whatever goroutine writes.
		s.log.Error("netpoll connection without FlushNoWait: is the go.mod replace of github.com/cloudwego/netpoll missing?")
		_ = nc.Close()
		return context.Background()
	}
	now := s.mono()
	c := &Conn{
		id:  s.reg.newID(),
		srv: s,
		nc:  nc,
	}
	c.connectedAt.Store(now) // the accept time until the upgrade
	if !s.admitPending(c, addrIP(nc.RemoteAddr())) {
		s.refusePending()
		_ = nc.Close()
		return context.Background()
	}
	c.shard = s.metrics.Shard(c.id)
	c.lastActivity.Store(now)
	_ = nc.SetWriteTimeout(s.cfg.WriteTimeout)
	_ = nc.AddCloseCallback(c.onSocketClosed)
	s.reg.add(c)
	return (*connContext)(c)
}

// onRequest runs whenever the connection has input: on the poller that
// read it (inline.go), or on a pooled goroutine.
func (s *Server) onRequest(ctx context.Context, nc netpoll.Connection) error {
	cc, _ := ctx.(*connContext)
	c := (*Conn)(cc)
	if c == nil {
		return nc.Close()
	}
	defer func() {
		// A bug in a handler must cost one connection, not the process.
		if v := recover(); v != nil {
			s.stats.panics.Add(1)
			s.log.Error("panic while serving a connection", "socket", c.id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			_ = nc.Close()
		}
	}()
	switch c.state.Load() {
	case stateHandshake:
		c.serveHandshake()
	case stateOpen, stateClosing:
		c.serveFrames()
	default:
		c.discardInput()
	}
	return nil
}

// onSocketClosed is netpoll's close callback: the socket is gone, whoever
// closed it.
func (c *Conn) onSocketClosed(netpoll.Connection) error {
	s := c.srv
	// netpoll runs the close callbacks, then frees the output buffer
	// (connection.finalize): no Malloc may start after this (and one in
	// progress ends first).
	c.bufMu.Lock()
	c.bufGone = true
	c.bufMu.Unlock()
	prev := c.state.Swap(stateClosed)
	s.reg.remove(c)
	switch prev {
	case stateHandshake:
		c.endPending()
	case stateOpen, stateClosing:
		c.finish()
	case stateLingering:
		s.metrics.Lingering(-1)
	}
	c.wmu.Lock()
	p := c.pending
	c.pending = nil
	c.wmu.Unlock()
	if p != nil {
		s.queued.Add(-int64(len(*p)))
		putPending(p)
	}
	return nil
}

// netpollLog turns netpoll's free-text log lines (peer resets and the like,
// which are routine for a server) into debug records of the first Server's
// logger (netpoll's logger is process-wide).
type netpollLog struct{}

func (netpollLog) Write(p []byte) (int, error) {
	netpollSetup.log.Load().Debug("netpoll", "msg", strings.TrimSpace(string(p)))
	return len(p), nil
}
