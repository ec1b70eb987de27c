package netcore

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// Bad input never affects other clients: a well-behaved client keeps
// echoing while others send garbage, stall mid-frame, send half a
// handshake, flood without reading, or vanish with a TCP reset.
func TestMisbehavingClientsDoNotAffectOthers(t *testing.T) {
	srv, addr := testServer(t, Config{HandshakeTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})

	good, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	bad := func(name string, n int, f func(i int)) {
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f(i)
			}()
		}
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Error(err)
			return nil
		}
		return c
	}
	upgraded := func() net.Conn {
		c := dial()
		if c == nil {
			return nil
		}
		_, _ = c.Write([]byte("GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
		buf := make([]byte, 129) // the 101 response
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Read(buf)
		return c
	}
	hold := func(c net.Conn) {
		if c == nil {
			return
		}
		<-ctx.Done()
		c.Close()
	}
	bad("garbage before the handshake", 10, func(i int) {
		c := dial()
		if c == nil {
			return
		}
		_, _ = c.Write(randomBytes(4096))
		hold(c)
	})
	bad("garbage after the handshake", 10, func(i int) {
		c := upgraded()
		if c == nil {
			return
		}
		_, _ = c.Write(randomBytes(4096))
		hold(c)
	})
	bad("stall mid-frame", 10, func(i int) {
		c := upgraded()
		if c == nil {
			return
		}
		_, _ = c.Write(wstest.ClientFrame(true, 0, ws.OpBinary, make([]byte, 1000), true)[:50])
		hold(c)
	})
	bad("half a handshake", 10, func(i int) {
		c := dial()
		if c == nil {
			return
		}
		_, _ = c.Write([]byte("GET /echo HTTP/1.1\r\nHost: x\r\n"))
		hold(c)
	})
	bad("flood without reading", 3, func(i int) {
		c := upgraded()
		if c == nil {
			return
		}
		f := wstest.ClientFrame(true, 0, ws.OpBinary, bytes.Repeat([]byte("f"), 8192), true)
		for j := 0; j < 2000 && ctx.Err() == nil; j++ {
			_ = c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := c.Write(f); err != nil {
				break
			}
		}
		hold(c)
	})
	bad("vanish with a reset", 10, func(i int) {
		c := upgraded()
		if c == nil {
			return
		}
		_, _ = c.Write(wstest.ClientFrame(true, 0, ws.OpText, []byte(strings.Repeat("x", 5000)), true)[:2000])
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})

	// The good client echoes throughout, every reply exact.
	deadline := time.Now().Add(1500 * time.Millisecond)
	echoes := 0
	for i := 0; time.Now().Before(deadline) || echoes < 200; i++ {
		msg := []byte("message " + strings.Repeat("g", i%300))
		_ = good.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := good.WriteMessage(websocket.TextMessage, msg); err != nil {
			t.Fatalf("good client write %d: %v", i, err)
		}
		_ = good.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, got, err := good.ReadMessage()
		if err != nil {
			t.Fatalf("good client read %d: %v", i, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("good client echo %d differs", i)
		}
		echoes++
	}
	cancel()
	wg.Wait()
	if srv.Stats().ProtocolErrs == 0 {
		t.Error("garbage after the handshake was not counted as protocol errors")
	}
	t.Logf("good client: %d exact echoes while others misbehaved", echoes)
}

// randomBytes returns n random bytes: garbage for a server to survive.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.IntN(256))
	}
	return b
}

// No goroutine of ours survives Shutdown.
func TestNoGoroutineLeakAfterShutdown(t *testing.T) {
	srv, addr := testServer(t, Config{})
	for i := 0; i < 20; i++ {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	wstest.WaitFor(t, "netcore goroutines to exit", func() bool {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		// Idle runner workers are process-wide and exit on their own; no
		// goroutine may still be inside a server or a connection.
		return !bytes.Contains(buf[:n], []byte("sockmon/netcore.(*Server)")) && !bytes.Contains(buf[:n], []byte("sockmon/netcore.(*Conn)"))
	})
}

// An idle connection holds no goroutine: holding 300 idle upgraded
// connections does not raise the goroutine count by anything like 300.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	srv, addr := testServer(t, Config{})
	settle := func() int {
		// Runner workers linger for workerKeepAlive after work; count only
		// goroutines outside the runner.
		buf := make([]byte, 4<<20)
		n := runtime.Stack(buf, true)
		all := bytes.Count(buf[:n], []byte("\ngoroutine "))
		return all - bytes.Count(buf[:n], []byte("netcore.(*runner).worker"))
	}
	before := settle()
	const n = 300
	for i := 0; i < n; i++ {
		wstest.Dial(t, addr, "/echo")
	}
	wstest.WaitFor(t, "all upgrades", func() bool { return srv.Stats().Open == n })
	if grew := settle() - before; grew > 10 {
		t.Fatalf("%d idle connections added %d goroutines", n, grew)
	}
}

func TestHeartbeat(t *testing.T) {
	srv, _ := testServer(t, Config{})
	wstest.WaitFor(t, "a heartbeat", func() bool { return !srv.LastHeartbeat().IsZero() })
	first := srv.LastHeartbeat()
	wstest.WaitFor(t, "the next heartbeat", func() bool { return srv.LastHeartbeat().After(first) })
}
