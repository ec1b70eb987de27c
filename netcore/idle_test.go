package netcore

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// An idle upgraded connection holds no read or write buffer: netpoll takes
// a buffer from a pool when bytes arrive or a frame is written and gives it
// back once it is drained (third_party/netpoll/PATCHES.md). These tests
// check that a connection still reads and writes whatever arrives after it
// went idle, however the bytes are cut; idle_heap_test.go bounds the heap an
// idle connection costs.

// idlePause lets the server drain both buffers of a connection and go idle.
func idlePause() { time.Sleep(20 * time.Millisecond) }

func TestIdleThenEcho(t *testing.T) {
	_, addr := testServer(t, Config{})
	c := wstest.Dial(t, addr, "/echo")
	for i := 0; i < 5; i++ {
		idlePause()
		msg := []byte(fmt.Sprintf("after idle %d", i))
		c.Send(true, ws.OpText, msg)
		c.ExpectEcho(ws.OpText, msg)
	}
}

// TestIdleThenLargeFrameInPieces: a frame far larger than the first buffer
// netpoll takes, arriving in pieces with pauses between them (the reader
// waits inside the frame, netpoll grows the buffer across nodes).
func TestIdleThenLargeFrameInPieces(t *testing.T) {
	_, addr := testServer(t, Config{MaxMessageSize: 1 << 20})
	c := wstest.Dial(t, addr, "/echo")
	idlePause()
	msg := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16)
	frame := wstest.ClientFrame(true, 0, ws.OpBinary, msg, true)
	prev := 0
	for _, cut := range []int{1, 2, 9, 4096, 100 << 10, len(frame)} {
		c.Write(frame[prev:cut])
		prev = cut
		idlePause()
	}
	c.ExpectEcho(ws.OpBinary, msg)
	idlePause()
	c.Send(true, ws.OpBinary, []byte("small after large"))
	c.ExpectEcho(ws.OpBinary, []byte("small after large"))
}

// TestIdleBetweenFragments: a fragmented message with the connection idle
// between its frames (the reassembly state is allocated on use).
func TestIdleBetweenFragments(t *testing.T) {
	_, addr := testServer(t, Config{})
	c := wstest.Dial(t, addr, "/echo")
	for round := 0; round < 2; round++ {
		c.Send(false, ws.OpText, []byte("frag-"))
		idlePause()
		c.Send(false, ws.OpContinuation, []byte("ment-"))
		idlePause()
		c.Send(true, ws.OpContinuation, []byte("ed"))
		c.ExpectEcho(ws.OpText, []byte("frag-ment-ed"))
		idlePause()
	}
	// A continuation with no message in progress is still refused.
	c.Send(true, ws.OpContinuation, []byte("x"))
	c.ExpectClose(CloseProtocolError)
}

// TestCloseDuringRead: the peer goes away in the middle of a frame, after
// the connection went idle and after part of the frame arrived.
func TestCloseDuringRead(t *testing.T) {
	srv, addr := testServer(t, Config{})
	for i := 0; i < 20; i++ {
		c := wstest.Dial(t, addr, "/echo")
		idlePause()
		frame := wstest.ClientFrame(true, 0, ws.OpBinary, bytes.Repeat([]byte{'x'}, 5000), true)
		c.Write(frame[:1+i*100])
		if i%2 == 0 {
			idlePause()
		}
		_ = c.Conn.Close()
	}
	wstest.WaitFor(t, "every connection closed", func() bool { return srv.Stats().Open == 0 && srv.Stats().Closed == 20 })
	// The server still serves.
	c := wstest.Dial(t, addr, "/echo")
	c.Send(true, ws.OpText, []byte("still here"))
	c.ExpectEcho(ws.OpText, []byte("still here"))
}

// TestIdleManyThenBurst: many connections idle, then all of them send at
// once and each gets its own reply (buffers taken from and returned to the
// pools by many connections at the same time).
func TestIdleManyThenBurst(t *testing.T) {
	_, addr := testServer(t, Config{})
	const n = 200
	cs := make([]*wstest.Client, n)
	for i := range cs {
		cs[i] = wstest.Dial(t, addr, "/echo")
	}
	for round := 0; round < 3; round++ {
		idlePause()
		for i, c := range cs {
			c.Send(true, ws.OpBinary, []byte(fmt.Sprintf("conn %d round %d", i, round)))
		}
		for i, c := range cs {
			c.ExpectEcho(ws.OpBinary, []byte(fmt.Sprintf("conn %d round %d", i, round)))
		}
	}
}

// idleClientsEnv makes the test binary, run as a subprocess, the client side
// of TestIdleHeapPerConn: it holds the connections in a separate process so
// that the parent's heap is the server's alone.
const idleClientsEnv = "NETCORE_IDLE_CLIENTS"

// TestIdleClients is the subprocess's entry point: it dials N upgraded
// connections to the address in NETCORE_IDLE_CLIENTS ("N ADDR"), prints
// "ready", and holds them until its stdin closes.
func TestIdleClients(t *testing.T) {
	spec := os.Getenv(idleClientsEnv)
	if spec == "" {
		t.Skip("the client side of TestIdleHeapPerConn, run by it")
	}
	var n int
	var addr string
	if _, err := fmt.Sscan(spec, &n, &addr); err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade %d: %v %v", i, resp, err)
		}
		conns = append(conns, conn)
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	for _, c := range conns {
		_ = c.Close()
	}
}

// startIdleClients runs TestIdleClients in a subprocess with n connections
// to addr and returns once they are all upgraded; the clients close when the
// test ends.
func startIdleClients(t *testing.T, n int, addr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClients$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %s", idleClientsEnv, n, addr))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	var seen []string
	for sc.Scan() {
		if sc.Text() == "ready" {
			go func() {
				for sc.Scan() {
				}
			}()
			return
		}
		seen = append(seen, sc.Text())
	}
	t.Fatalf("idle clients exited before ready: %s", strings.Join(seen, "\n"))
}
