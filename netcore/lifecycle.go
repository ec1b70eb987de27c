package netcore

import (
	"syscall"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/metrics"
)

// Disconnect accounting, in one place. Who closed a connection and why is
// recorded as it happens, then read once here, from the socket's close
// callback:
//
//   - closeCode, closeReason: the close frame we sent, or the code of the
//     peer's close frame that we echoed (Conn.sendClose, first call wins);
//   - closedByPeer: set when the peer's close frame arrived while we were
//     open, so the peer started the closing handshake (handleClose);
//   - endReason: a reason the code does not tell, such as an idle timeout
//     or a slow consumer (setEndReason, first call wins);
//   - no close code at all: the socket dropped without a closing handshake,
//     reported as 1006 from the client (a code never sent on the wire).
//
// reportDisconnect turns these into the metrics' initiator and reason
// labels, calls the session's Closed and then the OnDisconnect hooks.
//
// An upgraded connection ends when its lingering close starts (startLinger)
// or when its socket closes, whichever comes first; finish does the
// accounting once, for the first. From then on the connection counts
// against no limit (Config.MaxConns, Stats.Open): a lingering connection is
// only a socket being drained, visible in sockmon_lingering_connections.

// finish counts the end of an upgraded connection and reports it. Its
// caller won the state change out of open or closing, so it runs once.
func (c *Conn) finish() {
	s := c.srv
	s.upgraded.Add(-1)
	s.stats.closed.Add(1)
	c.reportDisconnect()
}

// endAfterFlush ends a connection whose close frame is flushed. When the
// peer's close frame has arrived, the closing handshake is complete and the
// peer sends nothing more: the server closes the socket at once (RFC 6455
// section 7.1.1: the server closes first, so the TIME_WAIT is its own).
// Otherwise the peer may still be sending (a client closed for abuse
// floods on): the lingering close starts.
func (c *Conn) endAfterFlush() {
	if c.closeSeen.Load() {
		_ = c.nc.Close()
		return
	}
	c.startLinger()
}

// startLinger begins the lingering close of a connection whose last frame
// (its close frame) or handshake refusal has been flushed: the write side
// is shut down, so the peer reads everything that was sent and then an
// end of stream; its input is read and dropped (discardInput) until it
// closes, or for at most Config.LingerTimeout (the sweeper) and
// Config.LingerBytes, and then the socket is closed. Closing at once would
// make the kernel answer the peer's unread input with a reset, and the peer
// would drop what it had not read yet, the close frame or refusal
// included. It does nothing on a connection already lingering or closed.
func (c *Conn) startLinger() {
	s := c.srv
	s.metrics.Lingering(1)
	for {
		st := c.state.Load()
		if st == stateLingering || st == stateClosed {
			s.metrics.Lingering(-1)
			return
		}
		if c.state.CompareAndSwap(st, stateLingering) {
			switch st {
			case stateHandshake:
				c.endPending()
			case stateOpen, stateClosing:
				c.finish()
			}
			break
		}
	}
	c.closeBy.Store(s.now() + int64(s.cfg.LingerTimeout))
	f, ok := c.nc.(interface{ Fd() int })
	if !ok || syscall.Shutdown(f.Fd(), syscall.SHUT_WR) != nil {
		_ = c.nc.Close() // the peer is gone already: nothing to linger for
	}
}

// auth returns the metrics label of the connection's auth state.
func (c *Conn) auth() metrics.Auth {
	if c.authenticated {
		return metrics.Authenticated
	}
	return metrics.Anonymous
}

// reportDisconnect counts the end of an upgraded connection, tells its
// session and calls the OnDisconnect hooks. It runs once, from the socket's
// close callback.
func (c *Conn) reportDisconnect() {
	s := c.srv
	code := ws.StatusCode(c.closeCode.Load())
	by := metrics.InitiatorServer
	initiator := InitiatorServer
	if c.closedByPeer.Load() {
		by, initiator = metrics.InitiatorClient, InitiatorClient
	}
	reason := metrics.DisconnectReason(c.endReason.Load())
	if reason == 0 {
		if code == 0 {
			code = ws.StatusAbnormalClosure
			by, initiator = metrics.InitiatorClient, InitiatorClient
		}
		reason = metrics.CloseCodeReason(int(code))
	} else {
		reason-- // stored +1 so that 0 means "from the close code"
	}
	s.metrics.ConnectionClosed(c.auth(), by, reason)
	ev := DisconnectEvent{Info: c.Info(), Code: code, Initiator: initiator}
	if r := c.closeReason.Load(); r != nil {
		ev.Reason = *r
	}
	c.sess.Closed(ev)
	for _, f := range s.hooks.disconnect {
		f(ev)
	}
}

// setEndReason records a reason the close code does not tell (idle
// timeout, slow consumer).
func (c *Conn) setEndReason(r metrics.DisconnectReason) {
	c.endReason.CompareAndSwap(0, uint32(r)+1)
}
