package netcore

import (
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// Native fuzz targets, one per parser; `make test` runs each briefly.

// FuzzFrames sends arbitrary bytes after a real handshake to a real server:
// nothing may panic it, and a fresh client must still be served.
func FuzzFrames(f *testing.F) {
	f.Add(wstest.ClientFrame(true, 0, ws.OpText, []byte("hello"), true))
	f.Add(append(wstest.ClientFrame(false, 0, ws.OpText, []byte("he"), true), wstest.ClientFrame(true, 0, ws.OpContinuation, []byte("llo"), true)...))
	f.Add(wstest.ClientFrame(true, 0, ws.OpClose, []byte{3, 232, 'b', 'y', 'e'}, true))
	f.Add(wstest.ClientFrame(true, 4, ws.OpBinary, []byte{0xff, 0xff}, true))
	f.Add([]byte{0x81, 0xfe, 0xff})
	srv, addr := testServer(f, Config{MaxMessageSize: 1 << 16})
	f.Fuzz(func(t *testing.T, p []byte) {
		c := wstest.Dial(t, addr, "/echo", "Sec-WebSocket-Extensions: permessage-deflate")
		_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Conn.Write(p)
		// Read whatever comes back until the server closes or goes quiet.
		for {
			if _, err := c.TryNext(20 * time.Millisecond); err != nil {
				break
			}
		}
		_ = c.Conn.(*net.TCPConn).SetLinger(0)
		c.Conn.Close()
		if n := srv.Stats().Panics; n != 0 {
			t.Fatalf("the server recovered %d panics", n)
		}
	})
}
