package netcore

import (
	"net/netip"
)

// MessageType is the type of a data message.
type MessageType uint8

// Data message types (the RFC 6455 opcodes).
const (
	TextMessage   MessageType = 1
	BinaryMessage MessageType = 2
)

func (t MessageType) String() string {
	switch t {
	case TextMessage:
		return "text"
	case BinaryMessage:
		return "binary"
	}
	return "unknown"
}

// Route binds an upgrade path to the Admitter that decides who may connect
// and the Handler that serves the connections. Every route has both, so no
// path can skip admission by accident. Register routes with Server.Handle.
type Route struct {
	Path     string
	Handler  Handler
	Admitter Admitter
}

// Admitter decides, before the upgrade, whether a request may connect and
// who the client is. Admit runs on the connection's reader goroutine, once
// per upgrade request, and may be called concurrently for different
// connections. peer is the TCP peer's address.
//
// After the admitter, the engine applies its own checks to every route, in
// this order: maintenance (503), draining (503), Config.MaxConns (503).
type Admitter interface {
	Admit(req *Request, peer netip.Addr) (Admission, *HandshakeError)
}

// Admission is an admitter's verdict on a request it accepts.
type Admission struct {
	// UserID is the authenticated user; empty for anonymous clients.
	UserID string
	// Authenticated is true when the client proved who it is.
	Authenticated bool
	// ClientIP is the client's address as the admitter determined it: the
	// peer, or the client behind a trusted proxy. Zero means the peer.
	ClientIP netip.Addr
}

// AdmitAll returns an Admitter that admits every request as anonymous, for
// embedders whose routes need no checks.
func AdmitAll() Admitter { return admitAll{} }

type admitAll struct{}

func (admitAll) Admit(*Request, netip.Addr) (Admission, *HandshakeError) { return Admission{}, nil }

// Handler serves the connections of a route. Open is called once per
// upgraded connection, on its reader goroutine, before any of its messages
// is handled, and returns the connection's Session. It must not block.
type Handler interface {
	Open(c *Conn, req *Request) Session
}

// Session is the per-connection state of a handler: the sockmon protocol
// keeps its rate limiter, rooms and the like here, so the engine's Conn
// carries none of them.
//
// HandleMessage runs on the goroutine that reads the connection: calls for
// one connection are sequential, calls for different connections run
// concurrently. data is only valid until HandleMessage returns; copy what
// must be kept. Replies written with Conn.Reply go into the batch that is
// flushed once the frames read so far are handled. A returned *CloseError
// closes the connection with its code; any other error closes it with 1011.
//
// Closed is called exactly once, when the socket is gone (whoever closed
// it), on the goroutine that closed it: it may run while a HandleMessage of
// the same connection is still returning, so state that both touch needs a
// lock. It must not block.
type Session interface {
	HandleMessage(mt MessageType, data []byte) error
	Closed(e DisconnectEvent)
}

// Echo returns a Handler that echoes every message back verbatim, text and
// binary alike, with no limits of its own (conformance suites, benchmarks).
func Echo() Handler { return echoHandler{} }

type echoHandler struct{}

func (echoHandler) Open(c *Conn, _ *Request) Session { return (*echoSession)(c) }

// echoSession is the Conn itself: an echo needs no state, so it costs no
// allocation per connection.
type echoSession Conn

func (e *echoSession) HandleMessage(mt MessageType, data []byte) error {
	return (*Conn)(e).Reply(mt, data)
}

func (*echoSession) Closed(DisconnectEvent) {}
