package netcore

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/netpoll"
	"github.com/gobwas/ws"
)

// Conn is one client connection. It is created when netpoll accepts the TCP
// connection and lives in the server's registry until the socket is closed.
//
// An idle Conn owns no goroutine and no timer: netpoll runs the reader when
// bytes arrive, and the server's sweeper enforces handshake, idle, ping and
// close deadlines for all connections from one goroutine.
//
// Exported methods are safe for concurrent use unless they say otherwise.
//
// Lock order: Conn.wmu is a leaf lock; nothing is acquired while holding it.
type Conn struct {
	id  uint64
	srv *Server
	nc  netpoll.Connection

	remote      string
	acceptedAt  int64 // unix nanoseconds
	connectedAt atomic.Int64

	state        atomic.Uint32 // connState
	lastActivity atomic.Int64  // coarse unix nanoseconds of the last frame read
	lastPing     atomic.Int64
	closeBy      atomic.Int64 // deadline for the peer's close frame or our flush, 0 if none
	closeCode    atomic.Uint32
	closedByPeer atomic.Bool

	msgsIn, msgsOut, bytesIn, bytesOut, errs atomic.Uint64

	handler Handler // chosen by path at upgrade; read-only after
	deflate bool    // permessage-deflate negotiated; read-only after upgrade

	// Reader state: touched only by the goroutine inside onRequest, which
	// netpoll runs for one connection at a time.
	inBatch    bool // the reader holds the writer token for this batch
	readDone   bool // stop handling input: discard it
	msgOp      ws.OpCode
	msgDeflate bool
	msgBuf     []byte
	utf8       utf8State

	// Writer state, guarded by wmu. The goroutine that sets writing owns
	// netpoll's output buffer until it clears it; everyone else appends
	// whole frames to pending, which the owner drains before letting go.
	wmu             sync.Mutex
	writing         bool
	closeAfterFlush bool
	pending         []byte

	// flushFn is c.flushOwned, bound once so that handing a flush to the
	// runner does not allocate a method value per write.
	flushFn func()
}

type connState = uint32

const (
	stateHandshake connState = iota // TCP accepted, upgrade not complete
	stateOpen                       // upgraded
	stateClosing                    // our close frame is queued or sent
	stateClosed                     // socket closed
)

// ID returns the connection's process-unique socket id.
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr returns the peer's address as seen by the server.
func (c *Conn) RemoteAddr() string { return c.remote }

// Compressed reports whether permessage-deflate was negotiated.
func (c *Conn) Compressed() bool { return c.deflate }

// ConnInfo is a copy of a connection's state for readers (admin listings,
// tests). Times are wall-clock.
type ConnInfo struct {
	ID           uint64
	RemoteAddr   string
	ConnectedAt  time.Time
	LastActivity time.Time
	MessagesIn   uint64
	MessagesOut  uint64
	BytesIn      uint64
	BytesOut     uint64
	Errors       uint64
	Compressed   bool
	Open         bool
}

// Info copies the connection's counters and times.
func (c *Conn) Info() ConnInfo {
	return ConnInfo{
		ID:           c.id,
		RemoteAddr:   c.remote,
		ConnectedAt:  time.Unix(0, c.connectedAt.Load()),
		LastActivity: time.Unix(0, c.lastActivity.Load()),
		MessagesIn:   c.msgsIn.Load(),
		MessagesOut:  c.msgsOut.Load(),
		BytesIn:      c.bytesIn.Load(),
		BytesOut:     c.bytesOut.Load(),
		Errors:       c.errs.Load(),
		Compressed:   c.deflate,
		Open:         c.state.Load() == stateOpen,
	}
}

// Close starts the closing handshake with code and reason: the close frame
// is queued after what is already queued, the server waits up to
// Config.CloseTimeout for the peer's close frame, then drops the socket.
// It does not block. Closing a connection that is already closing does
// nothing.
func (c *Conn) Close(code ws.StatusCode, reason string) {
	c.sendClose(code, reason, false, false)
}

// remoteString formats a net.Addr once per connection.
func remoteString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
