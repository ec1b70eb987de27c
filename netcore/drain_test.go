package netcore

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// Shutdown flips readiness at once, refuses new upgrades with 503 during the
// drain delay, then closes every client with 1001 and a reason.
func TestShutdownDrainsWith1001(t *testing.T) {
	srv, addr := testServer(t, Config{DrainDelay: 300 * time.Millisecond, ShutdownTimeout: 5 * time.Second})
	const n = 50
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for {
				_, _, err := c.ReadMessage()
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					if ce.Text == "" {
						t.Errorf("close 1001 without a reason")
					}
					codes <- ce.Code
					return
				}
				if err != nil {
					codes <- 0
					return
				}
			}
		}()
	}
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	wstest.WaitFor(t, "readiness to flip", func() bool { return !srv.Ready() })
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/echo", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("upgrade while draining: err %v, resp %+v; want 503 with Retry-After", err, resp)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != websocket.CloseGoingAway {
			t.Fatalf("client closed with %d, want 1001", code)
		}
	}
	if got := srv.Stats().Open; got != 0 {
		t.Fatalf("%d connections open after Shutdown", got)
	}
}

// A client that never answers the close frame does not hold up the drain
// past its deadline: the socket is dropped.
func TestShutdownDropsClientsThatDoNotAnswer(t *testing.T) {
	srv, addr := testServer(t, Config{ShutdownTimeout: time.Second, CloseTimeout: 10 * time.Second})
	wstest.Dial(t, addr, "/echo") // never reads, never answers
	wstest.WaitFor(t, "the upgrade", func() bool { return srv.Stats().Open == 1 })
	start := time.Now()
	err := srv.Shutdown(context.Background())
	if err == nil {
		t.Fatal("Shutdown reported a clean drain with a connection dropped at the deadline")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Shutdown took %s with a 1s timeout", took)
	}
	if srv.Stats().Open != 0 {
		t.Fatal("connection still open after Shutdown")
	}
}

// With no client connected the drain delay is skipped (Ctrl-C on an idle
// server exits at once); with one, it is waited. Readiness flips either way.
func TestShutdownSkipsTheDrainDelayWithNoClient(t *testing.T) {
	const delay = 400 * time.Millisecond
	for _, clients := range []int{0, 1} {
		srv, addr := testServer(t, Config{DrainDelay: delay, ShutdownTimeout: 10 * time.Second})
		if clients > 0 {
			c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/echo", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go func() { // answers the server's close frame
				for {
					if _, _, err := c.ReadMessage(); err != nil {
						return
					}
				}
			}()
			wstest.WaitFor(t, "the upgrade", func() bool { return srv.Stats().Open == 1 })
		}
		start := time.Now()
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatalf("%d clients: Shutdown: %v", clients, err)
		}
		took := time.Since(start)
		if srv.Ready() {
			t.Errorf("%d clients: ready after Shutdown", clients)
		}
		switch {
		case clients == 0 && took >= delay:
			t.Errorf("no client: Shutdown took %s, want the %s drain delay skipped", took, delay)
		case clients > 0 && took < delay:
			t.Errorf("one client: Shutdown took %s, want at least the %s drain delay", took, delay)
		}
	}
}
