package netcore

import (
	"time"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore/wsproto"
)

// Typed hooks (centrifuge's events.go style). Register them before Serve;
// registering after Serve panics, since the hooks are read without locks.
// Hooks run on the goroutine that caused the event and must not block:
// OnConnect and OnMessage on the connection's reader, OnDisconnect on
// whichever goroutine closed the socket (after the session's Closed).
// For one connection, OnConnect comes first, then its OnMessage calls in
// order, and OnDisconnect last, exactly once.

// Initiator says which side ended a connection.
type Initiator string

// Initiators.
const (
	InitiatorClient Initiator = "client"
	InitiatorServer Initiator = "server"
)

// Request is the upgrade request as parsed by wsproto.ParseRequest.
type Request = wsproto.Request

// ConnectEvent is a completed upgrade.
type ConnectEvent struct {
	Conn    *Conn
	Request *Request
}

// DisconnectEvent is the end of an upgraded connection. Code is the close
// code sent or received (1006 when the socket dropped without one; that code
// is never sent on the wire).
type DisconnectEvent struct {
	Info      ConnInfo
	Code      ws.StatusCode
	Reason    string
	Initiator Initiator
}

// MessageEvent is one handled message.
type MessageEvent struct {
	Conn     *Conn
	Type     MessageType
	Size     int
	Duration time.Duration
}

// MaintenanceEvent is maintenance mode turned on (State set) or off (nil).
type MaintenanceEvent struct {
	State *MaintenanceState
}

// DrainEvent is the start of a drain (Shutdown), sent before the first
// connection is closed so that handlers can tell their clients why.
type DrainEvent struct {
	Reason string
}

type hooks struct {
	connect     []func(ConnectEvent)
	disconnect  []func(DisconnectEvent)
	message     []func(MessageEvent)
	maintenance []func(MaintenanceEvent)
	drain       []func(DrainEvent)
}

func (s *Server) mustNotServe(what string) {
	if s.serving.Load() || s.Addr() != nil {
		panic("netcore: " + what + " registered after Serve")
	}
}

// OnConnect registers f for every completed upgrade.
func (s *Server) OnConnect(f func(ConnectEvent)) {
	s.mustNotServe("OnConnect")
	s.hooks.connect = append(s.hooks.connect, f)
}

// OnDisconnect registers f for the end of every upgraded connection (the
// seed's on('client_disconnect')).
func (s *Server) OnDisconnect(f func(DisconnectEvent)) {
	s.mustNotServe("OnDisconnect")
	s.hooks.disconnect = append(s.hooks.disconnect, f)
}

// OnMessage registers f for every handled message.
func (s *Server) OnMessage(f func(MessageEvent)) {
	s.mustNotServe("OnMessage")
	s.hooks.message = append(s.hooks.message, f)
}

// OnMaintenance registers f for maintenance mode turned on or off. It runs
// on the goroutine that called SetMaintenance, before a maintenance drain
// starts closing connections.
func (s *Server) OnMaintenance(f func(MaintenanceEvent)) {
	s.mustNotServe("OnMaintenance")
	s.hooks.maintenance = append(s.hooks.maintenance, f)
}

// OnDrain registers f for the start of a drain. It runs on the goroutine
// that called Shutdown, after the drain delay and before the first
// connection is closed.
func (s *Server) OnDrain(f func(DrainEvent)) {
	s.mustNotServe("OnDrain")
	s.hooks.drain = append(s.hooks.drain, f)
}
