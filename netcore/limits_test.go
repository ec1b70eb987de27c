package netcore

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/netcore/wstest"
)

func TestMaxConns(t *testing.T) {
	srv, addr := testServer(t, Config{MaxConns: 2})
	a := wstest.Dial(t, addr, "/echo")
	wstest.Dial(t, addr, "/echo")
	_, resp := wstest.DialResp(t, addr, "/echo")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third connection: status %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	a.Send(true, ws.OpClose, nil)
	a.ExpectClose(CloseNormal)
	wstest.WaitFor(t, "a slot to free up", func() bool { return srv.Stats().Open < 2 })
	wstest.Dial(t, addr, "/echo")
}

// A client that sends half a handshake and stalls (slowloris) is dropped at
// the handshake timeout.
func TestHandshakeTimeout(t *testing.T) {
	srv, addr := testServer(t, Config{HandshakeTimeout: 200 * time.Millisecond})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: web"))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(make([]byte, 1))
	if n != 0 || err == nil {
		t.Fatalf("read %d bytes, err %v: want the server to close", n, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("server did not drop a stalled handshake")
	}
	if srv.Stats().Rejected == 0 {
		t.Fatal("the dropped handshake was not counted as rejected")
	}
}

// The server pings every PingInterval; a peer that answers stays, a peer
// that sends nothing is closed at IdleTimeout.
func TestPingAndIdleTimeout(t *testing.T) {
	_, addr := testServer(t, Config{PingInterval: 50 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})

	silent := wstest.Dial(t, addr, "/echo")
	pings := 0
	for {
		f := silent.Next()
		if f.Header.OpCode == ws.OpPing {
			pings++
			continue
		}
		if f.Header.OpCode != ws.OpClose {
			t.Fatalf("silent client got op %d", f.Header.OpCode)
		}
		if code, reason := ws.ParseCloseFrameData(f.Payload); code != CloseNormal || reason != "idle timeout" {
			t.Fatalf("silent client closed with %d %q", code, reason)
		}
		break
	}
	if pings < 2 {
		t.Fatalf("silent client saw %d pings before the idle close, want several", pings)
	}

	// gorilla answers pings with pongs while it reads.
	alive, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Close()
	_ = alive.SetReadDeadline(time.Now().Add(time.Second))
	_, _, err = alive.ReadMessage()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a client answering pings was disconnected: %v", err)
	}
}

// A peer that stops reading is closed with 1008 once its queue passes the
// cap; writes to it never block the writer.
func TestSlowConsumer(t *testing.T) {
	srv, addr := testServer(t, Config{WriteQueueBytes: 256 << 10, WriteTimeout: 30 * time.Second})
	slow := wstest.Dial(t, addr, "/echo")
	wstest.WaitFor(t, "the connection to register", func() bool { return len(srv.Conns()) == 1 })
	c := srv.Conn(srv.Conns()[0].ID)
	msg := bytes.Repeat([]byte("z"), 16<<10)
	var err error
	sent := 0
	for i := 0; i < 10000 && err == nil; i++ {
		// The kernel buffers a few MB first; then the queue fills.
		err = c.WriteMessage(BinaryMessage, msg)
		sent++
	}
	if !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("after %d writes: %v, want ErrSlowConsumer", sent, err)
	}
	if got := srv.Stats().SlowConsumers; got != 1 {
		t.Fatalf("slow consumers counted: %d, want 1", got)
	}
	if err := c.WriteMessage(BinaryMessage, msg); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("write after the slow-consumer close: %v, want ErrConnClosed", err)
	}
	// The peer reads on: whatever was in flight, then the 1008 close frame.
	for {
		f, err := slow.TryNext(5 * time.Second)
		if err != nil {
			t.Fatalf("reading the backlog: %v", err)
		}
		if f.Header.OpCode == ws.OpClose {
			if code, _ := ws.ParseCloseFrameData(f.Payload); code != ClosePolicy {
				t.Fatalf("close code %d, want 1008", code)
			}
			break
		}
	}
}
