package netcore

import (
	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/metrics"
)

// auth returns the metrics label of the connection's auth state.
func (c *Conn) auth() metrics.Auth {
	if c.authenticated {
		return metrics.Authenticated
	}
	return metrics.Anonymous
}

// reportDisconnect counts the end of an upgraded connection and calls the
// OnDisconnect hooks. It runs once, from the socket's close callback.
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
			// The socket dropped without a closing handshake.
			code = ws.StatusAbnormalClosure
			by, initiator = metrics.InitiatorClient, InitiatorClient
		}
		reason = metrics.CloseCodeReason(int(code))
	} else {
		reason-- // stored +1 so that 0 means "from the close code"
	}
	s.metrics.ConnectionClosed(c.auth(), by, reason)
	if len(s.hooks.disconnect) == 0 {
		return
	}
	ev := DisconnectEvent{Info: c.Info(), Code: code, Initiator: initiator}
	if r := c.closeReason.Load(); r != nil {
		ev.Reason = *r
	}
	for _, f := range s.hooks.disconnect {
		f(ev)
	}
}

// setEndReason records a reason the close code does not tell (idle
// timeout, slow consumer).
func (c *Conn) setEndReason(r metrics.DisconnectReason) {
	c.endReason.CompareAndSwap(0, uint32(r)+1)
}
