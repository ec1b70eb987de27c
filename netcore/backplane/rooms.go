package backplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/breaker"
)

// Rooms is the Redis netcore.Broker: room messages and broadcasts between
// nodes over Redis Pub/Sub.
//
//   - One channel per room, RoomPrefix+room, subscribed only while the node
//     has members of the room; BroadcastChannel, subscribed by every node,
//     carries broadcasts to all clients.
//   - A message on Redis is the origin node's instance id (IDLen bytes)
//     followed by the message as clients receive it. The origin delivers
//     locally before publishing and skips its own messages when Redis
//     sends them back; every other node frames the message once and fans
//     it out to its members (netcore.Deliver).
//   - Order: one publish queue per node, drained in order by one goroutine
//     that sends batches as one pipeline on one connection, and one PubSub
//     connection that delivers in the order Redis sends. So messages of one
//     publisher to one room arrive in order on every node (a message dropped
//     while Redis is unavailable is lost, never reordered).
//   - Nothing waits for Redis on an event loop: Publish copies the message
//     into a bounded queue (Options.QueueSize); when it is full the newest
//     message is dropped and counted (result="overflow"). While the circuit
//     breaker is open the queue is drained and its messages are counted as
//     dropped (result="dropped").
//   - The subscription set is owned by one goroutine (reconcile) that brings
//     the PubSub's channels to what the hub last said (Subscribe and
//     Unsubscribe only record it), so any join/leave/join churn ends in the
//     state of the last call. go-redis's PubSub keeps its channels across
//     failures and subscribes them again when it reconnects, including the
//     rooms joined while Redis was down.
//
// Start starts its three goroutines (publish, receive, reconcile); Close
// stops them. It is safe for concurrent use.
type Rooms struct {
	rdb redis.UniversalClient
	log *slog.Logger
	id  [IDLen]byte
	br  *breaker.Breaker

	queue chan outMsg
	kick  chan struct{} // a room's wish changed; buffered 1

	mu    sync.Mutex          // leaf; guards want and dirty
	want  map[string]struct{} // rooms with local members, as the hub said
	dirty map[string]struct{} // rooms whose wish changed since reconcile last ran

	up         atomic.Bool  // the PubSub connection answered lately
	subscribed atomic.Int64 // room channels subscribed

	c counters

	ctx     context.Context
	cancel  context.CancelFunc
	ps      *redis.PubSub
	deliver netcore.Deliver
	started atomic.Bool
	wg      sync.WaitGroup
}

var _ netcore.Broker = (*Rooms)(nil)

// Channel names, and the instance id's length on the wire.
const (
	RoomPrefix       = "sockmon:room:"
	BroadcastChannel = "sockmon:broadcast"
	IDLen            = 16
)

// DefaultQueueSize is the publishes waiting for Redis at most, per node.
const DefaultQueueSize = 10_000

// ReasonUnavailable is the health reason while Redis is unreachable.
const ReasonUnavailable = "backplane_unavailable"

// MessagesMetric counts messages through the backplane by direction and
// result.
const MessagesMetric = "sockmon_backplane_messages_total"

// Tunables of the loops.
const (
	maxBatch      = 512                   // publishes per pipeline
	receiveWait   = time.Second           // a quiet PubSub is pinged after this
	silentFor     = 3 * time.Second       // no answer for this long: unavailable
	probeEvery    = time.Second           // a breaker not closed is probed with PING this often
	maxBackoff    = 2 * time.Second       // between reconnect attempts
	firstBackoff  = 50 * time.Millisecond // the first wait after a failure
	breakerFamily = "backplane"           // the breaker's name in metrics and logs
	logEvery      = 10 * time.Second      // at most one "still failing" line per this
)

// Options configure Rooms. Zero fields mean the defaults.
type Options struct {
	// QueueSize caps the publishes waiting for Redis; past it the newest
	// is dropped and counted. Default DefaultQueueSize.
	QueueSize int
	// Metrics, when set, gets sockmon_backplane_messages_total,
	// sockmon_backplane_up, sockmon_backplane_rooms,
	// sockmon_backplane_queue_length and the breaker's state.
	Metrics *metrics.Metrics
	// Breaker configures the circuit breaker around Redis (defaults:
	// breaker.Config's).
	Breaker breaker.Config
	// Logger receives state changes. Default slog.Default().
	Logger *slog.Logger
}

type outMsg struct {
	b     []byte // channel name, then id and payload
	split int    // where the channel name ends
}

// counters are the series of MessagesMetric; nil when there are no
// metrics (add then does nothing).
type counters struct {
	outSent, outDropped, outOverflow                  *metrics.Counter
	inReceived, inOwn, inMalformed                    *metrics.Counter
	sent, dropped, overflow, received, own, malformed atomic.Uint64 // for Stats, always kept
}

// Stats are the backplane's counts since NewRooms.
type Stats struct {
	Sent, Dropped, Overflow, Received, Own uint64
	// Subscribed is the room channels subscribed now.
	Subscribed int
	// Up reports whether Redis answered lately.
	Up bool
}

// NewRooms returns the Redis broker over rdb (from NewClient). It does no
// I/O until Start.
func NewRooms(rdb redis.UniversalClient, o Options) (*Rooms, error) {
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.QueueSize < 0 {
		return nil, fmt.Errorf("backplane: queue size %d: want a positive number", o.QueueSize)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	br, err := breaker.New(breakerFamily, o.Breaker)
	if err != nil {
		return nil, fmt.Errorf("backplane: %w", err)
	}
	r := &Rooms{rdb: rdb, log: o.Logger, br: br,
		queue: make(chan outMsg, o.QueueSize), kick: make(chan struct{}, 1),
		want: make(map[string]struct{}), dirty: make(map[string]struct{})}
	var raw [IDLen / 2]byte
	_, _ = rand.Read(raw[:])
	hex.Encode(r.id[:], raw[:])
	br.OnChange(func(e breaker.Event) {
		r.log.Warn("circuit breaker", "name", e.Name, "from", e.From.String(), "to", e.To.String(), "reason", string(e.Reason))
	})
	if m := o.Metrics; m != nil {
		if err := r.register(m); err != nil {
			return nil, fmt.Errorf("backplane: %w", err)
		}
	}
	return r, nil
}

func (r *Rooms) register(m *metrics.Metrics) error {
	const help = "Messages through the Redis backplane: out (sent, dropped while Redis is unavailable, overflow of the publish queue) and in (received from other nodes, own messages skipped, malformed)."
	var err error
	reg := func(dir, result string) *metrics.Counter {
		c, e := m.RegisterCounter(MessagesMetric, `direction="`+dir+`",result="`+result+`"`, help)
		err = errors.Join(err, e)
		return c
	}
	c := &r.c
	c.outSent, c.outDropped, c.outOverflow = reg("out", "sent"), reg("out", "dropped"), reg("out", "overflow")
	c.inReceived, c.inOwn, c.inMalformed = reg("in", "received"), reg("in", "own"), reg("in", "malformed")
	err = errors.Join(err,
		m.RegisterGauge("sockmon_backplane_up", "", "1 while the Redis backplane answers, 0 while it is unavailable.", func() float64 {
			if _, down := r.Degraded(); down {
				return 0
			}
			return 1
		}),
		m.RegisterGauge("sockmon_backplane_rooms", "", "Room channels this node is subscribed to (rooms with local members).", func() float64 {
			return float64(r.subscribed.Load())
		}),
		m.RegisterGauge("sockmon_backplane_queue_length", "", "Publishes waiting for Redis.", func() float64 {
			return float64(len(r.queue))
		}),
		breaker.RegisterMetrics(m, breakerFamily, func() *breaker.Breaker { return r.br }))
	return err
}

func add(c *metrics.Counter, a *atomic.Uint64, n int) {
	a.Add(uint64(n))
	if c != nil {
		c.Add(n)
	}
}

// ID is this node's instance id on the wire.
func (r *Rooms) ID() string { return string(r.id[:]) }

// Breaker is the circuit breaker around Redis.
func (r *Rooms) Breaker() *breaker.Breaker { return r.br }

// Stats copies the counts.
func (r *Rooms) Stats() Stats {
	_, down := r.Degraded()
	return Stats{Sent: r.c.sent.Load(), Dropped: r.c.dropped.Load(), Overflow: r.c.overflow.Load(),
		Received: r.c.received.Load(), Own: r.c.own.Load(), Subscribed: int(r.subscribed.Load()), Up: !down}
}

// Name is the dependency's name in health.
func (r *Rooms) Name() string { return "backplane" }

// Degraded reports ReasonUnavailable while the PubSub connection is down
// or the breaker around publishes is open.
func (r *Rooms) Degraded() (string, bool) {
	if !r.up.Load() || r.br.State() == breaker.Open {
		return ReasonUnavailable, true
	}
	return "", false
}

// Subscribe records that the node has members of room. It never blocks.
func (r *Rooms) Subscribe(room string) { r.wish(room, true) }

// Unsubscribe records that the node's last member of room left.
func (r *Rooms) Unsubscribe(room string) { r.wish(room, false) }

func (r *Rooms) wish(room string, on bool) {
	r.mu.Lock()
	if on {
		r.want[room] = struct{}{}
	} else {
		delete(r.want, room)
	}
	r.dirty[room] = struct{}{}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Publish copies the message into the publish queue, or drops it when the
// queue is full (counted as overflow). It never blocks.
func (r *Rooms) Publish(room, payload []byte) {
	if len(room) == 0 {
		r.enqueue(BroadcastChannel, nil, payload)
		return
	}
	r.enqueue(RoomPrefix, room, payload)
}

// enqueue copies channel+suffix, the instance id and payload into one
// message of the publish queue.
func (r *Rooms) enqueue(channel string, suffix, payload []byte) {
	n := len(channel) + len(suffix)
	b := make([]byte, 0, n+IDLen+len(payload))
	b = append(append(b, channel...), suffix...)
	b = append(append(b, r.id[:]...), payload...)
	select {
	case r.queue <- outMsg{b: b, split: n}:
	default:
		add(r.c.outOverflow, &r.c.overflow, 1)
	}
}

// Start subscribes the broadcast channel and the rooms recorded so far
// and starts the goroutines; messages from other nodes go to deliver. An
// unreachable Redis is not an error: the node is degraded and retries.
func (r *Rooms) Start(deliver netcore.Deliver) {
	if !r.started.CompareAndSwap(false, true) {
		panic("backplane: Rooms.Start called twice")
	}
	r.deliver = deliver
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.ps = r.rdb.Subscribe(r.ctx) // no channel yet: no I/O here
	r.wg.Add(3)
	go r.publishLoop()
	go r.receiveLoop()
	go r.reconcileLoop()
}

// Close stops the goroutines and closes the PubSub connection (not rdb,
// which the caller owns). Publishes still queued are dropped. Close before
// Start does nothing.
func (r *Rooms) Close() error {
	if !r.started.Load() {
		return nil
	}
	r.cancel()
	err := r.ps.Close()
	r.wg.Wait()
	return err
}

// publishLoop sends the queue in order, a batch per pipeline, and probes a
// breaker that is not closed so that it closes when Redis is back even
// without traffic.
func (r *Rooms) publishLoop() {
	defer r.wg.Done()
	batch := make([]outMsg, 0, maxBatch)
	probe := time.NewTicker(probeEvery)
	defer probe.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-probe.C:
			if r.br.State() != breaker.Closed {
				if t, err := r.br.Allow(); err == nil {
					r.outcome(t, r.rdb.Ping(r.ctx).Err())
				}
			}
		case m := <-r.queue:
			batch = append(batch[:0], m)
		more:
			for len(batch) < maxBatch {
				select {
				case m := <-r.queue:
					batch = append(batch, m)
				default:
					break more
				}
			}
			r.send(batch)
			clear(batch)
		}
	}
}

func (r *Rooms) send(batch []outMsg) {
	t, err := r.br.Allow()
	if err != nil {
		add(r.c.outDropped, &r.c.dropped, len(batch))
		return
	}
	pipe := r.rdb.Pipeline()
	for _, m := range batch {
		pipe.Publish(r.ctx, string(m.b[:m.split]), m.b[m.split:])
	}
	_, err = pipe.Exec(r.ctx)
	if r.ctx.Err() != nil {
		t.Ignore()
		return
	}
	r.outcome(t, err)
	if err != nil {
		add(r.c.outDropped, &r.c.dropped, len(batch))
		return
	}
	add(r.c.outSent, &r.c.sent, len(batch))
}

// outcome reports a call to Redis to the breaker.
func (r *Rooms) outcome(t breaker.Ticket, err error) {
	switch {
	case err == nil:
		t.Success()
	case isTimeout(err):
		t.Failure("timeout")
	default:
		t.Failure("error")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// receiveLoop reads the PubSub connection and delivers other nodes'
// messages. A read error marks the backplane down; the next read makes
// go-redis reconnect and subscribe every channel again. A quiet connection
// is pinged, so that a Redis that stopped answering is noticed.
func (r *Rooms) receiveLoop() {
	defer r.wg.Done()
	backoff := firstBackoff
	lastHeard := time.Now()
	var lastLog time.Time
	subscribed := false
	for r.ctx.Err() == nil {
		if !subscribed {
			// Recorded by go-redis even when this fails: a reconnect
			// subscribes it.
			subscribed = true
			_ = r.ps.Subscribe(r.ctx, BroadcastChannel)
		}
		msg, err := r.ps.ReceiveTimeout(r.ctx, receiveWait)
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			if isTimeout(err) {
				if time.Since(lastHeard) > silentFor {
					r.setUp(false, err)
				}
				_ = r.ps.Ping(r.ctx)
				continue
			}
			r.setUp(false, err)
			if time.Since(lastLog) > logEvery {
				lastLog = time.Now()
				r.log.Warn("backplane: redis unreachable; retrying", "err", err.Error())
			}
			select {
			case <-r.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = firstBackoff
		lastHeard = time.Now()
		r.setUp(true, nil)
		if m, ok := msg.(*redis.Message); ok {
			r.handle(m)
		}
	}
}

func (r *Rooms) setUp(up bool, err error) {
	if r.up.Swap(up) == up {
		return
	}
	if up {
		r.log.Info("backplane: redis reachable; rooms subscribed", "rooms", r.subscribed.Load())
	} else {
		r.log.Warn("backplane: redis unavailable; cross-node messages are dropped until it is back", "err", err.Error())
	}
}

// handle delivers one message from Redis to the local members.
func (r *Rooms) handle(m *redis.Message) {
	p := m.Payload
	if len(p) < IDLen {
		add(r.c.inMalformed, &r.c.malformed, 1)
		return
	}
	if p[:IDLen] == string(r.id[:]) {
		add(r.c.inOwn, &r.c.own, 1)
		return
	}
	room := ""
	if m.Channel != BroadcastChannel {
		var ok bool
		if room, ok = strings.CutPrefix(m.Channel, RoomPrefix); !ok {
			add(r.c.inMalformed, &r.c.malformed, 1)
			return
		}
	}
	add(r.c.inReceived, &r.c.received, 1)
	r.deliver(room, []byte(p[IDLen:]))
}

// reconcileLoop owns the set of subscribed room channels and brings it to
// the hub's last wish for every room that changed.
func (r *Rooms) reconcileLoop() {
	defer r.wg.Done()
	have := make(map[string]struct{})
	var sub, unsub []string
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.kick:
		}
		sub, unsub = sub[:0], unsub[:0]
		r.mu.Lock()
		for room := range r.dirty {
			_, want := r.want[room]
			_, has := have[room]
			switch {
			case want && !has:
				sub = append(sub, RoomPrefix+room)
				have[room] = struct{}{}
			case !want && has:
				unsub = append(unsub, RoomPrefix+room)
				delete(have, room)
			}
		}
		clear(r.dirty)
		r.mu.Unlock()
		// go-redis records the channels before it writes the command, so
		// a failure here is made good by its reconnect.
		if len(sub) > 0 {
			_ = r.ps.Subscribe(r.ctx, sub...)
		}
		if len(unsub) > 0 {
			_ = r.ps.Unsubscribe(r.ctx, unsub...)
		}
		r.subscribed.Store(int64(len(have)))
	}
}
