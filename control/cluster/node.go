package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sockmon/sockmon/netcore/breaker"
)

// Defaults.
const (
	DefaultInterval       = 3 * time.Second
	DefaultCommandTimeout = 2 * time.Second
	// ttlFactor is how many heartbeats a node's key outlives.
	ttlFactor = 3
	// opTimeout bounds one Redis call (a slow Redis is a failing one).
	opTimeout = time.Second
	// maxHandlers bounds the commands of other nodes run at once.
	maxHandlers = 8
	// banQueue bounds the bans waiting to be written to Redis.
	banQueue = 1024
)

// Redis keys and channels.
const (
	keyPrefix    = "sockmon:node:"
	keyNodes     = "sockmon:nodes"
	keyBanPrefix = "sockmon:ban:"
	keyBans      = "sockmon:bans"
	keyLimits    = "sockmon:ratelimits"
	chanCmd      = "sockmon:cluster:cmd"
	chanReply    = "sockmon:cluster:reply:"
	chanState    = "sockmon:cluster:state"
)

// Node statuses.
const (
	StatusHealthy     = "healthy"
	StatusDegraded    = "degraded"
	StatusDraining    = "draining"
	StatusMaintenance = "maintenance"
)

// Local is what a node reports of itself at each heartbeat.
type Local struct {
	Connections int64
	// Status is one of the Status constants.
	Status string
}

// Options configures a Node. Client and ID are required.
type Options struct {
	Client redis.UniversalClient
	// ID names the node in the cluster (serve: --node-id, default
	// hostname:port).
	ID string
	// Address and ControlAddress are the node's WebSocket and control
	// listeners, as shown by get_cluster.
	Address        string
	ControlAddress string
	Version        string
	// Interval is the heartbeat period; the key lives 3·Interval. Default
	// DefaultInterval.
	Interval time.Duration
	// CommandTimeout is how long Command waits for each node. Default
	// DefaultCommandTimeout.
	CommandTimeout time.Duration
	// Local reports the node's connections and status; nil reports zero
	// connections, healthy.
	Local  func() Local
	Logger *slog.Logger
}

// NodeInfo is one node as the registry holds it.
type NodeInfo struct {
	ID             string    `json:"id"`
	Address        string    `json:"address"`
	ControlAddress string    `json:"controlAddress"`
	Version        string    `json:"version"`
	StartedAt      time.Time `json:"startedAt"`
	UptimeMs       int64     `json:"uptimeMs"`
	Connections    int64     `json:"connections"`
	Status         string    `json:"status"`
	LastHeartbeat  time.Time `json:"lastHeartbeat"`
	// Self marks the node that answered.
	Self bool `json:"self"`
}

// UnavailableError is the error of a cluster call while Redis cannot be
// reached.
type UnavailableError struct{ Reason string }

func (e *UnavailableError) Error() string { return "the Redis backplane is unavailable: " + e.Reason }

// Handler runs a command of another node here and returns its reply.
type Handler func(ctx context.Context, c Command) Reply

// Command is one admin command sent to every node.
type Command struct {
	ID   string          `json:"id"`
	From string          `json:"from"`
	Kind string          `json:"kind"`
	Data json.RawMessage `json:"data"`
}

// Reply is one node's answer to a Command. Status is "ok", "refused" or
// "error" from the node, or, set by the caller, "timeout" (no answer in
// CommandTimeout) or "unreachable" (the command could not be sent).
type Reply struct {
	ID         string          `json:"id,omitempty"`
	Node       string          `json:"node"`
	Status     string          `json:"status"`
	HTTPStatus int             `json:"httpStatus,omitempty"`
	Code       string          `json:"code,omitempty"`
	Message    string          `json:"message,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
}

// Reply statuses set by the caller.
const (
	ReplyTimeout     = "timeout"
	ReplyUnreachable = "unreachable"
)

// Node is this process in the cluster. Create it with New, set its hooks,
// Start it, Close it.
type Node struct {
	o       Options
	rdb     redis.UniversalClient
	br      *breaker.Breaker
	log     *slog.Logger
	started time.Time

	handler     atomic.Pointer[Handler]
	onBan       atomic.Pointer[func(key string, d time.Duration, level int)]
	onRateLimit atomic.Pointer[func(userID string, limit int, window time.Duration)]

	// lastErr is why the last heartbeat failed ("" after a success).
	lastErr atomic.Pointer[string]
	// registered is whether the last heartbeat reached Redis.
	registered atomic.Bool

	waitMu  sync.Mutex
	waiters map[string]chan Reply
	seq     atomic.Uint64

	bans chan banMsg

	// recent is the last list of Nodes, for Recent.
	recentMu sync.Mutex
	recent   []NodeInfo
	recentAt time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{}
	ps     *redis.PubSub
	once   sync.Once
}

// New checks o and returns a stopped node.
func New(o Options) (*Node, error) {
	if o.Client == nil {
		return nil, errors.New("cluster: no Redis client")
	}
	if o.ID == "" || strings.ContainsAny(o.ID, " \t\r\n") {
		return nil, fmt.Errorf("cluster: node id %q: want a non-empty name without spaces", o.ID)
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Interval < 10*time.Millisecond || o.Interval > time.Minute {
		return nil, fmt.Errorf("cluster: heartbeat interval %s: want between 10ms and 1m", o.Interval)
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = DefaultCommandTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	// Open for about one heartbeat at first, at most five: a node
	// re-registers within a few heartbeats of Redis coming back.
	br, err := breaker.New("redis", breaker.Config{ConsecutiveFailures: 3, OpenBase: o.Interval, OpenMax: min(5*o.Interval, 30*time.Second)})
	if err != nil {
		return nil, err
	}
	n := &Node{o: o, rdb: o.Client, br: br, log: o.Logger.With("component", "cluster", "node", o.ID), started: time.Now(),
		waiters: map[string]chan Reply{}, bans: make(chan banMsg, banQueue), sem: make(chan struct{}, maxHandlers)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	br.OnChange(func(e breaker.Event) {
		n.log.Warn("circuit breaker", "name", e.Name, "from", e.From, "to", e.To, "reason", e.Reason)
	})
	return n, nil
}

// ID returns the node's id.
func (n *Node) ID() string { return n.o.ID }

// Interval returns the heartbeat period.
func (n *Node) Interval() time.Duration { return n.o.Interval }

// Handle sets the handler of other nodes' commands (before Start).
func (n *Node) Handle(h Handler) { n.handler.Store(&h) }

// OnBan sets what applies a ban announced by another node, or loaded.
func (n *Node) OnBan(f func(key string, d time.Duration, level int)) { n.onBan.Store(&f) }

// OnRateLimit sets what applies a per-user rate limit announced by another
// node, or loaded (limit 0: removed).
func (n *Node) OnRateLimit(f func(userID string, limit int, window time.Duration)) {
	n.onRateLimit.Store(&f)
}

// Start subscribes, registers the node, loads the shared state and starts
// the heartbeat. A Redis that cannot be reached is not an error: the node
// registers when it can.
func (n *Node) Start() {
	n.ps = n.rdb.Subscribe(n.ctx, chanCmd, chanReply+n.o.ID, chanState)
	ch := n.ps.Channel(redis.WithChannelSize(256))
	n.wg.Add(3)
	go func() { defer n.wg.Done(); n.receive(ch) }()
	go func() { defer n.wg.Done(); n.writeBans() }()
	go func() { defer n.wg.Done(); n.heartbeatLoop() }()
}

// Close deregisters the node (best effort) and stops its goroutines.
func (n *Node) Close() error {
	n.once.Do(func() {
		if n.ps == nil {
			n.cancel()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		_ = n.call(ctx, func(ctx context.Context) error {
			p := n.rdb.Pipeline()
			p.Del(ctx, keyPrefix+n.o.ID)
			p.ZRem(ctx, keyNodes, n.o.ID)
			_, err := p.Exec(ctx)
			return err
		})
		cancel()
		n.cancel()
		_ = n.ps.Close()
		n.wg.Wait()
	})
	return nil
}

// Name is the dependency's name in health.
func (n *Node) Name() string { return "redis" }

// Degraded reports why the node is cut off from the cluster, if it is.
func (n *Node) Degraded() (string, bool) {
	if st := n.br.State(); st != breaker.Closed {
		reason := "redis circuit breaker " + st.String()
		if e := n.lastErr.Load(); e != nil && *e != "" {
			reason += ": " + *e
		}
		return reason, true
	}
	if e := n.lastErr.Load(); e != nil && *e != "" {
		return "redis: " + *e, true
	}
	return "", false
}

// call runs fn through the breaker with a bounded context; redis.Nil is
// an answer, not a failure.
func (n *Node) call(ctx context.Context, fn func(ctx context.Context) error) error {
	t, err := n.br.Allow()
	if err != nil {
		reason := err.Error()
		if e := n.lastErr.Load(); e != nil && *e != "" {
			reason += " (last error: " + *e + ")"
		}
		return &UnavailableError{Reason: reason}
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	err = fn(ctx)
	switch {
	case err == nil || errors.Is(err, redis.Nil):
		t.Success()
		return nil
	case n.ctx.Err() != nil:
		t.Ignore()
	case errors.Is(err, context.DeadlineExceeded):
		t.Failure("timeout")
	default:
		t.Failure("redis")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &UnavailableError{Reason: "no answer within " + opTimeout.String()}
	}
	return &UnavailableError{Reason: err.Error()}
}

func (n *Node) info(now time.Time) NodeInfo {
	l := Local{Status: StatusHealthy}
	if n.o.Local != nil {
		l = n.o.Local()
	}
	return NodeInfo{ID: n.o.ID, Address: n.o.Address, ControlAddress: n.o.ControlAddress, Version: n.o.Version,
		StartedAt: n.started.UTC(), UptimeMs: now.Sub(n.started).Milliseconds(), Connections: l.Connections,
		Status: l.Status, LastHeartbeat: now.UTC()}
}

// heartbeat writes the node's key once; after a failure, a success also
// reloads the shared state.
func (n *Node) heartbeat() {
	now := time.Now()
	b, _ := json.Marshal(n.info(now))
	ttl := ttlFactor * n.o.Interval
	registering := !n.registered.Load()
	err := n.call(n.ctx, func(ctx context.Context) error {
		if registering {
			n.checkDuplicate(ctx)
		}
		p := n.rdb.Pipeline()
		p.Set(ctx, keyPrefix+n.o.ID, b, ttl)
		p.ZAdd(ctx, keyNodes, redis.Z{Score: float64(now.Add(ttl).UnixMilli()), Member: n.o.ID})
		_, err := p.Exec(ctx)
		return err
	})
	if err != nil {
		if n.ctx.Err() != nil {
			return
		}
		msg := err.Error()
		var ue *UnavailableError
		if errors.As(err, &ue) {
			msg = ue.Reason
		}
		if prev := n.lastErr.Swap(&msg); prev == nil || *prev == "" {
			n.log.Warn("cannot register the node in Redis; node scope only until it answers", "err", msg)
		}
		n.registered.Store(false)
		return
	}
	empty := ""
	n.lastErr.Store(&empty)
	if !n.registered.Swap(true) {
		n.log.Info("node registered in Redis", "ttl", ttl.String())
		n.loadShared()
	}
}

// checkDuplicate logs an error when another process holds this node's id:
// both would overwrite one key and ignore each other's commands.
func (n *Node) checkDuplicate(ctx context.Context) {
	b, err := n.rdb.Get(ctx, keyPrefix+n.o.ID).Bytes()
	if err != nil {
		return
	}
	var other NodeInfo
	if json.Unmarshal(b, &other) == nil && !other.StartedAt.Equal(n.started.UTC()) {
		n.log.Error("another node is registered with this node id: give each node its own --node-id", "other_address", other.Address, "other_started_at", other.StartedAt)
	}
}

func (n *Node) heartbeatLoop() {
	n.heartbeat()
	t := time.NewTicker(n.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			n.heartbeat()
		}
	}
}

// Nodes lists the registered nodes, sorted by id, this one marked Self.
func (n *Node) Nodes(ctx context.Context) ([]NodeInfo, error) {
	var out []NodeInfo
	err := n.call(ctx, func(ctx context.Context) error {
		ids, err := n.rdb.ZRange(ctx, keyNodes, 0, -1).Result()
		if err != nil {
			return err
		}
		p := n.rdb.Pipeline()
		gets := make([]*redis.StringCmd, len(ids))
		for i, id := range ids {
			gets[i] = p.Get(ctx, keyPrefix+id)
		}
		if len(ids) > 0 {
			if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
		}
		var gone []any
		for i, g := range gets {
			b, err := g.Bytes()
			if err != nil {
				gone = append(gone, ids[i])
				continue
			}
			var ni NodeInfo
			if json.Unmarshal(b, &ni) != nil {
				continue
			}
			ni.Self = ni.ID == n.o.ID
			out = append(out, ni)
		}
		if len(gone) > 0 {
			// Their keys expired: forget them (a node that comes back
			// adds itself again).
			n.rdb.ZRem(ctx, keyNodes, gone...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return strings.Compare(a.ID, b.ID) })
	n.recentMu.Lock()
	n.recent, n.recentAt = out, time.Now()
	n.recentMu.Unlock()
	return out, nil
}

// Recent is Nodes at most one heartbeat old: what the admin GET, which a
// dashboard polls, shows without a Redis call each time.
func (n *Node) Recent(ctx context.Context) ([]NodeInfo, error) {
	n.recentMu.Lock()
	out, at := n.recent, n.recentAt
	n.recentMu.Unlock()
	if !at.IsZero() && time.Since(at) < n.o.Interval {
		return out, nil
	}
	return n.Nodes(ctx)
}
