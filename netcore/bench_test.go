package netcore

import (
	"bytes"
	"net"
	"net/http"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// newEchoRig is a rig of perWrite 64-byte binary messages on the echo route
// of a new test server.
func newEchoRig(t testing.TB, perWrite int) *wstest.Rig {
	return newEchoRigOf(t, 64, perWrite)
}

// newEchoRigOf is newEchoRig with size-byte messages.
func newEchoRigOf(t testing.TB, size, perWrite int) *wstest.Rig {
	_, addr := testServer(t, Config{})
	return wstest.NewRig(t, addr, "/echo", ws.OpBinary, bytes.Repeat([]byte("m"), size), perWrite)
}

// BenchmarkEcho measures a binary echo round trip over loopback through the
// whole engine; b.N messages, perWrite of them in flight.
func BenchmarkEcho(b *testing.B) {
	for _, perWrite := range []int{1, 16} {
		b.Run(map[int]string{1: "ping-pong", 16: "16-in-flight"}[perWrite], func(b *testing.B) {
			r := newEchoRig(b, perWrite)
			b.ReportAllocs()
			b.SetBytes(int64(r.RequestBytes()))
			b.ResetTimer()
			for i := 0; i < b.N; i += perWrite {
				r.RoundTrip(b)
			}
		})
	}
}

// BenchmarkEchoGorillaBaseline is the same round trip against a gorilla/
// websocket echo server on net/http in the same process, as a baseline.
func BenchmarkEchoGorillaBaseline(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	up := websocket.Upgrader{}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, p, err := c.ReadMessage()
			if err != nil || c.WriteMessage(mt, p) != nil {
				return
			}
		}
	})}
	go hs.Serve(ln)
	b.Cleanup(func() { hs.Close() })
	for _, perWrite := range []int{1, 16} {
		b.Run(map[int]string{1: "ping-pong", 16: "16-in-flight"}[perWrite], func(b *testing.B) {
			r := wstest.NewRigOn(wstest.Dial(b, ln.Addr().String(), "/"), ws.OpBinary, bytes.Repeat([]byte("m"), 64), perWrite)
			b.ReportAllocs()
			b.SetBytes(int64(r.RequestBytes()))
			b.ResetTimer()
			for i := 0; i < b.N; i += perWrite {
				r.RoundTrip(b)
			}
		})
	}
}
