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
// whichever goroutine closed the socket, OnMessageError on the reader.
// For one connection, OnConnect comes first, then its OnMessage and
// OnMessageError calls in order, and OnDisconnect last, exactly once.

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

// MessageErrorEvent is an error reply sent to a client, with the code of
// DESIGN.md (bad_request, rate_limited, not_found, unavailable, too_large,
// internal).
type MessageErrorEvent struct {
	Conn    *Conn
	Code    string
	Message string
}

type hooks struct {
	connect      []func(ConnectEvent)
	disconnect   []func(DisconnectEvent)
	message      []func(MessageEvent)
	messageError []func(MessageErrorEvent)
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

// OnMessageError registers f for every error reply (the seed's
// on('message_error')).
func (s *Server) OnMessageError(f func(MessageErrorEvent)) {
	s.mustNotServe("OnMessageError")
	s.hooks.messageError = append(s.hooks.messageError, f)
}
