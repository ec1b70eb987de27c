package netcore

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/netcore/wsproto"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// echoRig is a raw client on the echo endpoint with n frames prebuilt.
type echoRig struct {
	c     *wstest.Client
	req   []byte
	reply []byte
}

// newEchoRigPath prepares perWrite text frames of msg for path; the reply
// size is learnt from one round trip.
func newEchoRigPath(t testing.TB, addr, path string, msg []byte, perWrite int) *echoRig {
	r := &echoRig{c: wstest.Dial(t, addr, path)}
	one := wstest.ClientFrame(true, 0, ws.OpText, msg, true)
	r.c.Write(one)
	f := r.c.Next()
	for i := 0; i < perWrite; i++ {
		r.req = append(r.req, wstest.ClientFrame(true, 0, ws.OpText, msg, true)...)
	}
	r.reply = make([]byte, perWrite*(wsproto.ServerHeaderLen(len(f.Payload))+len(f.Payload)))
	return r
}

func newEchoRig(t testing.TB, perWrite int) *echoRig {
	_, addr := testServer(t, Config{EchoPath: "/echo"})
	r := &echoRig{c: wstest.Dial(t, addr, "/echo")}
	payload := bytes.Repeat([]byte("m"), 64)
	for i := 0; i < perWrite; i++ {
		r.req = append(r.req, wstest.ClientFrame(true, 0, ws.OpBinary, payload, true)...)
	}
	r.reply = make([]byte, perWrite*(2+len(payload)))
	return r
}

func (r *echoRig) roundTrip(t testing.TB) {
	if _, err := r.c.Conn.Write(r.req); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r.c.Reader, r.reply); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkEcho measures a binary echo round trip over loopback through the
// whole engine; b.N messages, perWrite of them in flight.
func BenchmarkEcho(b *testing.B) {
	for _, perWrite := range []int{1, 16} {
		b.Run(map[int]string{1: "ping-pong", 16: "16-in-flight"}[perWrite], func(b *testing.B) {
			r := newEchoRig(b, perWrite)
			b.ReportAllocs()
			b.SetBytes(int64(len(r.req)))
			b.ResetTimer()
			for i := 0; i < b.N; i += perWrite {
				r.roundTrip(b)
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
			r := &echoRig{c: wstest.Dial(b, ln.Addr().String(), "/")}
			payload := bytes.Repeat([]byte("m"), 64)
			for i := 0; i < perWrite; i++ {
				r.req = append(r.req, wstest.ClientFrame(true, 0, ws.OpBinary, payload, true)...)
			}
			r.reply = make([]byte, perWrite*(2+len(payload)))
			b.ReportAllocs()
			b.SetBytes(int64(len(r.req)))
			b.ResetTimer()
			for i := 0; i < b.N; i += perWrite {
				r.roundTrip(b)
			}
		})
	}
}
