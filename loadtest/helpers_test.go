package loadtest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// echoServer is a gorilla/websocket echo server on 127.0.0.1:0 for tests.
// With stallAfter > 0 the whole server stops answering for stallFor once it
// has received stallAfter messages, as a garbage-collection pause or a lock
// convoy would stop it.
type echoServer struct {
	srv        *httptest.Server
	received   atomic.Int64
	stallAfter int64
	stallFor   time.Duration

	mu         sync.Mutex
	stallUntil time.Time

	pingEvery time.Duration
	pongs     atomic.Int64
}

func startEcho(t *testing.T, e *echoServer) string {
	t.Helper()
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(64 << 10)
		var wmu sync.Mutex
		c.SetPongHandler(func(string) error { e.pongs.Add(1); return nil })
		if e.pingEvery > 0 {
			done := make(chan struct{})
			defer close(done)
			go func() {
				tk := time.NewTicker(e.pingEvery)
				defer tk.Stop()
				for {
					select {
					case <-done:
						return
					case <-tk.C:
						wmu.Lock()
						err := c.WriteControl(websocket.PingMessage, []byte("hb"), time.Now().Add(time.Second))
						wmu.Unlock()
						if err != nil {
							return
						}
					}
				}
			}()
		}
		for {
			op, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			n := e.received.Add(1)
			if e.stallAfter > 0 {
				e.mu.Lock()
				if n == e.stallAfter {
					e.stallUntil = time.Now().Add(e.stallFor)
				}
				until := e.stallUntil
				e.mu.Unlock()
				if d := time.Until(until); d > 0 {
					time.Sleep(d)
				}
			}
			wmu.Lock()
			err = c.WriteMessage(op, msg)
			wmu.Unlock()
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(e.srv.Close)
	return "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/echo"
}
