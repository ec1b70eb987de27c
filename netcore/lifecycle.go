package netcore

import (
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
