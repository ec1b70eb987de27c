package netcore

import (
	"testing"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// A connection's last activity is never earlier than its upgrade, although
// the upgrade is timed with the wall clock and frames with the sweeper's
// coarse clock (up to a tick behind: 500 ms with the default timeouts).
func TestInfoLastActivityNeverBeforeConnectedAt(t *testing.T) {
	srv, addr := testServer(t, Config{})
	for i := 0; i < 5; i++ {
		c := wstest.Dial(t, addr, "/echo")
		c.Send(true, ws.OpText, []byte("hi"))
		c.ExpectEcho(ws.OpText, []byte("hi"))
	}
	for _, info := range srv.Conns() {
		if info.LastActivity.Before(info.ConnectedAt) {
			t.Errorf("socket %d: lastActivity %s before connectedAt %s", info.ID,
				info.LastActivity.Format("15:04:05.000000"), info.ConnectedAt.Format("15:04:05.000000"))
		}
	}
}
