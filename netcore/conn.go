package netcore

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/netpoll"
	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore/wsproto"
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

	// Identity, set at upgrade and read-only after.
	userID        string
	authenticated bool
	ip            netip.Addr
	shard         *metrics.Shard

	rooms       atomic.Pointer[[]string] // copy-on-write; written by the reader only
	closeReason atomic.Pointer[string]
	endReason   atomic.Uint32 // a metrics.DisconnectReason for ends a close code does not tell

	// Reader state: touched only by the goroutine inside onRequest, which
	// netpoll runs for one connection at a time.
	inBatch                 bool // the reader holds the writer token for this batch
	readDone                bool // stop handling input: discard it
	msgOp                   ws.OpCode
	msgDeflate              bool
	msgBuf                  []byte
	utf8                    wsproto.UTF8State
	kind                    metrics.Kind // what the message being handled is, for the latency histogram
	clock                   int64        // metrics nanotime at the start of the message being handled
	limiter                 gcra
	limitGen                uint64
	strikes                 int32 // rate-limited messages in the window that started at strikeWindow
	bad                     int32 // malformed messages in the window that started at badWindow
	strikeWindow, badWindow int64

	// Writer state, guarded by wmu. The goroutine that sets writing owns
	// netpoll's output buffer until it clears it; everyone else appends
	// whole frames to pending, which the owner drains before letting go.
	wmu             sync.Mutex
	writing         bool
	closeAfterFlush bool
	pending         []byte

	// flushFn is c.flushBlocking, bound once so that handing a flush to
	// the runner does not allocate a method value per write.
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
	ID            uint64
	RemoteAddr    string
	ConnectedAt   time.Time
	LastActivity  time.Time
	MessagesIn    uint64
	MessagesOut   uint64
	BytesIn       uint64
	BytesOut      uint64
	Errors        uint64
	Compressed    bool
	Open          bool
	UserID        string
	Authenticated bool
	Rooms         []string
}

// Info copies the connection's counters and times.
func (c *Conn) Info() ConnInfo {
	return ConnInfo{
		ID:            c.id,
		RemoteAddr:    c.remote,
		ConnectedAt:   time.Unix(0, c.connectedAt.Load()),
		LastActivity:  time.Unix(0, c.lastActivity.Load()),
		MessagesIn:    c.msgsIn.Load(),
		MessagesOut:   c.msgsOut.Load(),
		BytesIn:       c.bytesIn.Load(),
		BytesOut:      c.bytesOut.Load(),
		Errors:        c.errs.Load(),
		Compressed:    c.deflate,
		Open:          c.state.Load() == stateOpen,
		UserID:        c.userID,
		Authenticated: c.authenticated,
		Rooms:         c.Rooms(),
	}
}

// UserID returns the authenticated user id, or "" for anonymous clients.
func (c *Conn) UserID() string { return c.userID }

// Authenticated reports whether the client presented a valid token.
func (c *Conn) Authenticated() bool { return c.authenticated }

// Rooms returns the rooms the connection is in. The slice must not be
// modified.
func (c *Conn) Rooms() []string {
	if p := c.rooms.Load(); p != nil {
		return *p
	}
	return nil
}

// from is the "from" of the messages this connection publishes: its user id,
// or anon:<socket id>.
func (c *Conn) appendFrom(b []byte) []byte {
	if c.authenticated {
		return appendJSONString(b, c.userID)
	}
	b = append(b, `"anon:`...)
	b = strconv.AppendUint(b, c.id, 10)
	return append(b, '"')
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
