package netcore

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sockmon/sockmon/netcore/wstest"
)

// A socket that closes while another goroutine writes to it (a fan-out, a
// broadcast): netpoll frees the socket's output buffer on the goroutine that
// saw the close, so a write that reaches the buffer after that would use
// freed memory (a nil dereference under -race, where the buffer is the
// locked variant; another connection's buffer otherwise). Clients reset
// their sockets while frames are fanned out to them without pause.
func TestWritesRacingACloseNeverTouchAFreedBuffer(t *testing.T) {
	srv, addr := testServer(t, Config{})
	frame := []byte{0x82, 0x40}
	frame = append(frame, make([]byte, 64)...)
	deadline := time.Now().Add(3 * time.Second)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Stop the writers however the test ends: a t.Fatal below must not
	// leave them running into the next test.
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conns []*Conn
			for {
				select {
				case <-stop:
					return
				default:
				}
				conns = srv.AppendOpenConns(conns[:0], nil)
				FanOut(conns, BinaryMessage, frame[2:])
			}
		}()
	}
	rounds := 0
	for time.Now().Before(deadline) && rounds < 200 {
		var cs []net.Conn
		for range 20 {
			cs = append(cs, wstest.Dial(t, addr, "/echo").Conn)
		}
		time.Sleep(2 * time.Millisecond)
		for _, c := range cs {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // a reset: netpoll sees the close at once
			}
			_ = c.Close()
		}
		rounds++
	}
	t.Logf("%d rounds of 20 connections reset under fan-out", rounds)
}
