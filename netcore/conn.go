package netcore

import (
	"net"
	"net/netip"
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
// Lock order: Conn.wmu and Conn.bufMu are leaf locks; nothing is acquired
// while holding either.
type Conn struct {
	// The fields are ordered by size so that the struct packs into 256
	// bytes, a Go size class: an idle connection costs its Conn, so every
	// word counts. State that few connections need lives in rd.

	id  uint64
	srv *Server
	nc  netpoll.Connection

	// connectedAt is when the upgrade completed; before it, when the TCP
	// connection was accepted (the handshake deadline, pending.go). Like
	// every time of a Conn, mono nanoseconds (Server.mono).
	connectedAt  atomic.Int64
	lastActivity atomic.Int64 // coarse mono nanoseconds of the last frame read
	lastPing     atomic.Int64
	closeBy      atomic.Int64 // deadline for the peer's close frame or our flush, 0 if none

	msgsIn, msgsOut, bytesIn, bytesOut, errs atomic.Uint64

	sess Session // from the route's Handler at upgrade; read-only after

	// Identity, from the route's Admitter at upgrade and read-only after.
	userID string
	ip     netip.Addr // the client's address: the peer's, or the admitter's
	shard  *metrics.Shard

	closeReason atomic.Pointer[string]

	// Reader state: touched only by the goroutine inside onRequest, which
	// netpoll runs for one connection at a time.
	clock int64     // metrics nanotime at the start of the message being handled
	rd    *connRare // nil until the reader needs it (Conn.rare)

	// Writer state, guarded by wmu. The goroutine that sets writing owns
	// netpoll's output buffer until it clears it; everyone else appends
	// whole frames to pending, which the owner drains before letting go.
	pending *[]byte // from getPending; nil when nothing is queued

	// flushFn is c.flushBlocking, bound on the first flush handed to the
	// runner (flushTask) so that later ones do not allocate a method value,
	// and idle connections that never needed one hold none.
	flushFn func()

	wmu sync.Mutex

	// bufMu guards netpoll's output buffer against its release. netpoll
	// frees the buffer after the close callbacks, on whichever goroutine
	// saw the close; the token owner may be another goroutine (a fan-out,
	// the flusher) in the middle of a Malloc. onSocketClosed, a close
	// callback, sets bufGone under bufMu; every Malloc and the copy into it
	// happen under bufMu after checking bufGone (lockBuf).
	bufMu sync.Mutex

	state        atomic.Uint32 // connState
	closeCode    atomic.Uint32
	endReason    atomic.Uint32 // a metrics.DisconnectReason for ends a close code does not tell
	closedByPeer atomic.Bool   // the peer started the closing handshake
	closeSeen    atomic.Bool   // the peer's close frame arrived: it sends nothing more

	deflate       bool // permessage-deflate negotiated; read-only after upgrade
	authenticated bool // identity, as userID

	// Reader state (see clock).
	inBatch   bool         // the reader holds the writer token for this batch
	readDone  bool         // stop handling input: discard it
	kind      metrics.Kind // what the message being handled is, for the latency histogram
	proxyDone bool         // the PROXY header, if any, is read (proxy.go)
	// pendingByIP: counted in the per-IP pending cap under the peer's
	// address (pending.go); set at accept, read once when the handshake
	// ends.
	pendingByIP bool
	heavy       bool // the last message took over heavyMessage to serve: the next input goes to a worker (inline.go)

	// Writer state (see pending), guarded by wmu.
	writing         bool
	closeAfterFlush bool

	bufGone bool // guarded by bufMu
}

// connRare is reader state that most connections never need: a fragmented
// message being reassembled, the bytes dropped while lingering, the client
// address of a PROXY header. The reader allocates it on first use.
type connRare struct {
	msgOp      ws.OpCode
	msgDeflate bool
	msgBuf     []byte
	utf8       wsproto.UTF8State
	dropped    int        // input bytes dropped since reading stopped (the lingering bound)
	proxyIP    netip.Addr // the client address of the PROXY header; zero without one
}

// rare returns the reader's rarely used state, allocating it. Reader only.
func (c *Conn) rare() *connRare {
	if c.rd == nil {
		c.rd = new(connRare)
	}
	return c.rd
}

type connState = uint32

const (
	stateHandshake connState = iota // TCP accepted, upgrade not complete
	stateOpen                       // upgraded
	stateClosing                    // our close frame is queued or sent
	stateLingering                  // close frame or refusal flushed, write side shut; input dropped until the peer closes
	stateClosed                     // socket closed
)

// ID returns the connection's process-unique socket id.
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr returns the peer's address as seen by the server. It is
// formatted on each call (a Conn does not keep the string).
func (c *Conn) RemoteAddr() string { return remoteString(c.nc.RemoteAddr()) }

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
	// ClientIP is the client's address as admission determined it (what
	// limits and bans key on); RemoteAddr is the TCP peer's.
	ClientIP netip.Addr
}

// Info copies the connection's counters and times. LastActivity is never
// before ConnectedAt: frames are timed with the sweeper's coarse clock, which
// may lag the upgrade's wall-clock time by up to a tick.
func (c *Conn) Info() ConnInfo {
	connected := c.connectedAt.Load()
	return ConnInfo{
		ID:            c.id,
		RemoteAddr:    c.RemoteAddr(),
		ConnectedAt:   c.srv.wall(connected),
		LastActivity:  c.srv.wall(max(c.lastActivity.Load(), connected)),
		MessagesIn:    c.msgsIn.Load(),
		MessagesOut:   c.msgsOut.Load(),
		BytesIn:       c.bytesIn.Load(),
		BytesOut:      c.bytesOut.Load(),
		Errors:        c.errs.Load(),
		Compressed:    c.deflate,
		Open:          c.state.Load() == stateOpen,
		UserID:        c.userID,
		Authenticated: c.authenticated,
		ClientIP:      c.ip,
	}
}

// UserID returns the authenticated user id, or "" for anonymous clients.
func (c *Conn) UserID() string { return c.userID }

// Authenticated reports whether the client presented a valid token.
func (c *Conn) Authenticated() bool { return c.authenticated }

// ClientIP returns the client's address as admission determined it: the
// peer's, or the client's behind a trusted proxy.
func (c *Conn) ClientIP() netip.Addr { return c.ip }

// Session returns the session the route's handler opened for this
// connection, or nil before the upgrade.
func (c *Conn) Session() Session { return c.sess }

// Shard returns the metrics shard the connection records into. Recording on
// it is safe from any goroutine; it is meant for the connection's reader.
func (c *Conn) Shard() *metrics.Shard { return c.shard }

// SetKind labels the message being handled for the latency histogram
// (sockmon_message_duration_seconds{kind}). Call it from HandleMessage; the
// engine's default is echo for text and binary for binary messages.
func (c *Conn) SetKind(k metrics.Kind) { c.kind = k }

// MessageTime returns when the reader started on the message being handled,
// in the metrics clock's nanoseconds (monotonic, see metrics.Metrics.Nanotime).
// Call it from HandleMessage.
func (c *Conn) MessageTime() int64 { return c.clock }

// CountError adds one to the connection's error count (ConnInfo.Errors),
// for an error reply a handler sent.
func (c *Conn) CountError() { c.errs.Add(1) }

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

// flushTask returns c.flushBlocking as a func, bound once. Only the writer
// token's owner calls it (the token's handover, under wmu, orders the
// binding before any later owner's read).
func (c *Conn) flushTask() func() {
	if c.flushFn == nil {
		c.flushFn = c.flushBlocking
	}
	return c.flushFn
}
