package protocol

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/sockmon/sockmon/netcore"
)

// Service is the sockmon protocol served by one engine: its routes, its
// sessions, the rooms, the rate limits and bans. Create it with New before
// the engine serves. Its methods are safe for concurrent use.
type Service struct {
	eng *netcore.Server
	cfg Config
	log *slog.Logger

	hub        hub
	ipLimit    ipLimiter
	bans       bans
	overrides  overrides
	limitGen   atomic.Uint64 // bumped by SetRateLimit; sessions re-read their limit
	lastExpiry atomic.Int64  // mono nanoseconds of the last maybeExpire run

	// base is the origin of mono: bans, connection buckets and their
	// expiry run on a monotonic clock, so a wall-clock step neither lifts
	// nor lengthens a ban.
	base time.Time

	onMessageError []func(MessageErrorEvent) // set before Serve; read-only after

	// trusted are the engine's TrustedProxies: the balancers whose
	// X-Forwarded-For is believed and whose own address is never keyed on.
	trusted []netip.Prefix
}

// New checks cfg and registers the protocol's routes on eng (Config.Path,
// and Config.EchoPath when set, both admitted by the Service) and its hooks
// (maintenance and drain notices). Call it before eng serves. The Service
// owns no goroutine: it lives and stops with the engine.
func New(eng *netcore.Server, cfg Config) (*Service, error) {
	cfg.setDefaults(eng.Config().Logger)
	err := cfg.validate()
	if max := eng.Config().MaxMessageSize; cfg.MessageBytesRate > 0 && cfg.MessageBytesBurst < max {
		err = errors.Join(err, fmt.Errorf("protocol: message-bytes-burst %d is below the largest message (max-message-size %d): such a message could never pass", cfg.MessageBytesBurst, max))
	}
	if err != nil {
		return nil, err
	}
	svc := &Service{eng: eng, cfg: cfg, log: cfg.Logger, trusted: eng.Config().TrustedProxies}
	svc.hub.init()
	svc.ipLimit.init()
	svc.limitGen.Store(1)
	svc.base = time.Now()
	svc.lastExpiry.Store(svc.mono())
	routes := []netcore.Route{{Path: cfg.Path, Handler: handler{svc: svc}, Admitter: svc}}
	if cfg.EchoPath != "" {
		routes = append(routes, netcore.Route{Path: cfg.EchoPath, Handler: handler{svc: svc, echo: true}, Admitter: svc})
	}
	for _, r := range routes {
		if err := eng.Handle(r); err != nil {
			return nil, fmt.Errorf("protocol: %w", err)
		}
	}
	eng.OnMaintenance(func(e netcore.MaintenanceEvent) {
		if e.State != nil {
			svc.System("maintenance", e.State.Reason)
		}
	})
	eng.OnDrain(func(e netcore.DrainEvent) { svc.System("shutdown", e.Reason) })
	return svc, nil
}

// Config returns the configuration in force, defaults filled in.
func (svc *Service) Config() Config { return svc.cfg }

// roomLimit is a fresh room's publish bucket.
func (svc *Service) roomLimit() gcra {
	c := &svc.cfg
	return newGCRA(c.RoomPublishBurst, time.Duration(c.RoomPublishBurst)*time.Second/time.Duration(c.RoomPublishRate))
}

// mono returns the monotonic nanoseconds since New.
func (svc *Service) mono() int64 { return int64(time.Since(svc.base)) }

// OnMessageError registers f for every error reply (the seed's
// on('message_error')). Register it before the engine serves; f runs on the
// connection's reader and must not block.
func (svc *Service) OnMessageError(f func(MessageErrorEvent)) {
	svc.onMessageError = append(svc.onMessageError, f)
}

// handler opens a session per connection of one of the protocol's routes.
type handler struct {
	svc  *Service
	echo bool
}

func (h handler) Open(c *netcore.Conn, _ *netcore.Request) netcore.Session {
	return &session{svc: h.svc, c: c, echo: h.echo}
}

// sessionOf returns the protocol session of c, or nil when c is on another
// handler's route.
func sessionOf(c *netcore.Conn) *session {
	s, _ := c.Session().(*session)
	return s
}

// appendProtocolConns appends the open connections of the protocol path
// (not the echo path, whose clients do not speak JSON) to dst.
func (svc *Service) appendProtocolConns(dst []*netcore.Conn) []*netcore.Conn {
	return svc.eng.AppendOpenConns(dst, isProtocolConn)
}

func isProtocolConn(c *netcore.Conn) bool {
	s := sessionOf(c)
	return s != nil && !s.echo
}

// fanOut frames payload once and writes it to conns (borrowed from
// connSlices, which it gives back).
func fanOut(members *[]*netcore.Conn, conns []*netcore.Conn, payload []byte) int {
	n := netcore.FanOut(conns, netcore.TextMessage, payload)
	clear(conns)
	*members = conns[:0]
	connSlices.Put(members)
	return n
}

// expireEvery is how often admission forgets idle per-IP buckets and
// decayed bans, so the maps do not grow with every address ever seen.
const expireEvery = int64(time.Minute)

// maybeExpire runs the expiry when expireEvery has passed since the last
// one, on the admitting goroutine that notices first (one handshake a
// minute pays for it; no goroutine of its own).
func (svc *Service) maybeExpire(now int64) {
	last := svc.lastExpiry.Load()
	if now-last < expireEvery || !svc.lastExpiry.CompareAndSwap(last, now) {
		return
	}
	svc.ipLimit.expire(now - int64(time.Minute))
	svc.bans.expire(now, svc.cfg.banPolicy())
}

// Broadcast sends {"type":"broadcast","data":data} to every client of the
// protocol path, or {"type":"broadcast","room":room,"data":data} to the
// members of room when room is not empty, on this node only: the admin
// API's broadcast with scope "cluster" runs it on every node through
// control/cluster, so that each node reports its own count. data must be
// valid JSON. It returns the number of clients written to.
func (svc *Service) Broadcast(data []byte, room string) (int, error) {
	if err := checkJSON(data); err != nil {
		return 0, err
	}
	members := connSlices.Get().(*[]*netcore.Conn)
	conns := svc.audience(room, (*members)[:0])
	buf := netcore.AcquireBuffer()
	defer netcore.ReleaseBuffer(buf)
	b := append((*buf)[:0], `{"type":"broadcast"`...)
	if room != "" {
		b = append(b, `,"room":`...)
		b = appendJSONString(b, room)
	}
	b = append(b, `,"data":`...)
	b = append(b, data...)
	b = append(b, '}')
	*buf = b
	return fanOut(members, conns, b), nil
}

// Publish sends {"type":"message","room":room,"from":"server","data":data}
// to every member of room, as a client's publish would. data must be valid
// JSON. It returns the number of members written to.
func (svc *Service) Publish(room string, data []byte) (int, error) {
	if msg := validRoom([]byte(room)); msg != "" {
		return 0, errors.New("protocol: " + msg)
	}
	if err := checkJSON(data); err != nil {
		return 0, err
	}
	rb := netcore.AcquireBuffer() // the room's bytes without a conversion that would escape
	defer netcore.ReleaseBuffer(rb)
	*rb = append((*rb)[:0], room...)
	return svc.publish(*rb, nil, data), nil
}

// audience appends the members of room, or every client of the protocol
// path when room is empty, to dst.
func (svc *Service) audience(room string, dst []*netcore.Conn) []*netcore.Conn {
	if room != "" {
		return svc.hub.members([]byte(room), dst)
	}
	return svc.appendProtocolConns(dst)
}

// System sends {"type":"system","event":event,"message":message} to every
// client of the protocol path.
func (svc *Service) System(event, message string) int {
	buf := netcore.AcquireBuffer()
	defer netcore.ReleaseBuffer(buf)
	b := append((*buf)[:0], `{"type":"system","event":`...)
	b = appendJSONString(b, event)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, message)
	b = append(b, '}')
	*buf = b
	members := connSlices.Get().(*[]*netcore.Conn)
	return fanOut(members, svc.appendProtocolConns((*members)[:0]), b)
}

// publish encodes one message frame for the room and writes it to every
// member, then hands it to the broker for the other nodes. from is the
// publishing session, or nil for the server.
func (svc *Service) publish(room []byte, from *session, data []byte) int {
	members := connSlices.Get().(*[]*netcore.Conn)
	conns := svc.hub.members(room, (*members)[:0])
	buf := netcore.AcquireBuffer()
	b := append((*buf)[:0], `{"type":"message","room":`...)
	b = appendJSONString(b, string(room))
	b = append(b, `,"from":`...)
	if from != nil {
		b = from.appendFrom(b)
	} else {
		b = append(b, `"server"`...)
	}
	b = append(b, `,"data":`...)
	b = append(b, data...)
	b = append(b, '}')
	*buf = b
	n := fanOut(members, conns, b)
	svc.hub.broker.Publish(room, b)
	netcore.ReleaseBuffer(buf)
	return n
}

// UseBroker makes b carry this node's room messages and broadcasts to the
// other nodes (after local delivery, see netcore.Broker) and tells it of
// each room's first join and last leave. It returns the function b must
// give the other nodes' messages to. Call it once, after New and before the
// engine serves; without it the Service uses netcore.LocalBroker (one
// node). System messages (maintenance, shutdown) stay on the node.
func (svc *Service) UseBroker(b netcore.Broker) netcore.Deliver {
	svc.hub.broker = b
	return svc.deliver
}

// deliver writes a message from another node to this node's members of
// room, or every client of the protocol path when room is empty: framed
// once, never sent back to the broker.
func (svc *Service) deliver(room string, payload []byte) int {
	members := connSlices.Get().(*[]*netcore.Conn)
	conns := svc.audience(room, (*members)[:0])
	return fanOut(members, conns, payload)
}

// ErrNoSuchSocket is returned by SetRateLimit for a socket id that is not
// connected.
var ErrNoSuchSocket = errors.New("protocol: no such socket")

// SetRateLimit sets a custom message rate for one user or one socket (the
// seed's setCustomRateLimit); Limit 0 removes it. It takes effect on the
// next message of every connection concerned. A socket must be connected
// (ErrNoSuchSocket); a user need not be, so the limit applies when they
// connect.
func (svc *Service) SetRateLimit(rl RateLimit) error {
	if (rl.UserID == "") == (rl.SocketID == 0) {
		return errors.New("protocol: a rate limit needs exactly one of UserID and SocketID")
	}
	if rl.Limit < 0 || (rl.Limit > 0 && rl.Window <= 0) {
		return fmt.Errorf("protocol: rate limit %d per %s: want a positive limit per positive window", rl.Limit, rl.Window)
	}
	if rl.SocketID != 0 && svc.eng.Conn(rl.SocketID) == nil {
		return fmt.Errorf("%w: %d", ErrNoSuchSocket, rl.SocketID)
	}
	svc.overrides.set(rl)
	svc.limitGen.Add(1)
	return nil
}

// RateLimits lists the custom rate limits in force.
func (svc *Service) RateLimits() []RateLimit { return svc.overrides.list() }

// Rooms lists the rooms and their sizes.
func (svc *Service) Rooms() []RoomInfo { return svc.hub.rooms() }

// ConnQuery is the engine's connection query plus a room filter.
type ConnQuery struct {
	netcore.ConnQuery
	// Room, when set, selects the members of that room.
	Room string
}

// ConnInfo is a connection's engine state plus its rooms.
type ConnInfo struct {
	netcore.ConnInfo
	Rooms []string
}

// ConnPage is one page of connections and the number that matched.
type ConnPage struct {
	Total int
	Items []ConnInfo
}

// Connections returns the page of upgraded connections that q selects (the
// seed's getConnectionsData), with their rooms.
func (svc *Service) Connections(q ConnQuery) (ConnPage, error) {
	eq := q.ConnQuery
	if q.Room != "" {
		keep := eq.Keep
		eq.Keep = func(c *netcore.Conn) bool {
			s := sessionOf(c)
			return s != nil && s.inRoom(q.Room) && (keep == nil || keep(c))
		}
	}
	page, err := svc.eng.Connections(eq)
	if err != nil {
		return ConnPage{}, err
	}
	out := ConnPage{Total: page.Total, Items: make([]ConnInfo, len(page.Items))}
	for i, info := range page.Items {
		out.Items[i].ConnInfo = info
		if c := svc.eng.Conn(info.ID); c != nil {
			if s := sessionOf(c); s != nil {
				out.Items[i].Rooms = slices.Clone(s.Rooms())
			}
		}
	}
	return out, nil
}

// checkJSON validates a raw JSON value.
func checkJSON(data []byte) error {
	s := scanner{p: data}
	s.skipSpace()
	if err := s.value(1); err != nil {
		return fmt.Errorf("protocol: data is not valid JSON: %w", err)
	}
	s.skipSpace()
	if s.i != len(data) {
		return errors.New("protocol: data is not valid JSON: trailing bytes")
	}
	return nil
}
