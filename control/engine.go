package control

import (
	"context"
	"time"

	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/protocol"
	"github.com/sockmon/sockmon/netcore/upstream"
)

// The control side reads and drives the WebSocket side through these
// interfaces, declared here with only what control uses, so that it can be
// tested without sockets and a cluster layer can wrap them. *netcore.Server
// implements Engine, *protocol.Service Protocol and *upstream.Set Upstreams. Every method
// must be safe for concurrent use and must not block on the message path.

// Engine is the WebSocket engine: lifecycle, readiness, the connection
// registry.
type Engine interface {
	Metrics() *metrics.Metrics
	Config() netcore.Config
	Ready() bool
	Draining() bool
	Stats() netcore.Stats
	LastHeartbeat() time.Time
	SweepInterval() time.Duration
	Maintenance() *netcore.MaintenanceState
	SetMaintenance(on bool, reason string, drain bool)
	ShedLoad() *netcore.ShedState
	SetShedLoad(on bool, reason string)
	DisconnectSocket(id uint64, reason string) bool
	DisconnectUser(userID, reason string) int
	DisconnectAll(reason string, batchSize int, interval time.Duration) int
	Shutdown(ctx context.Context) error
}

// Protocol is the sockmon client protocol: connections with their rooms,
// broadcasts, rate limits.
type Protocol interface {
	Connections(q protocol.ConnQuery) (protocol.ConnPage, error)
	Broadcast(data []byte, room string) (int, error)
	SetRateLimit(rl protocol.RateLimit) error
	RateLimits() []protocol.RateLimit
	Rooms() []protocol.RoomInfo
}

// Upstreams are the upstream services of the rpc envelope and their
// circuit breakers (*upstream.Set implements it).
type Upstreams interface {
	Snapshot() []upstream.Status
	Reset(name string) error
}

var (
	_ Engine    = (*netcore.Server)(nil)
	_ Protocol  = (*protocol.Service)(nil)
	_ Upstreams = (*upstream.Set)(nil)
)

// Dependency is something the node relies on that can fail without the
// node failing (the Redis backplane): while it is degraded, health says
// "degraded" (200) and lists its reason. Degraded must be cheap and must
// not block: it reads state the dependency keeps.
type Dependency interface {
	Name() string
	Degraded() (reason string, degraded bool)
}
