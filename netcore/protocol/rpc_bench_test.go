package protocol

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/netcore/upstream"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// BenchmarkEchoWhileRPC measures a well-behaved client's echo round trip
// while other clients make rpc calls at a steady 2,000 calls/s to an
// upstream that is healthy or that hangs (every call waits for its 500 ms
// timeout, the worker pool and queue full). The event loop never waits on
// an upstream, so the two p99s should match; compare them in one run:
//
//	go test -run '^$' -bench EchoWhileRPC -benchtime 20000x -count 3 ./netcore/protocol/
func BenchmarkEchoWhileRPC(b *testing.B) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	b.Cleanup(up.Close)
	b.Cleanup(func() { close(release) })
	for _, name := range []string{"healthy", "hanging"} {
		b.Run("upstream="+name, func(b *testing.B) {
			set, err := upstream.New(upstream.Options{})
			if err != nil {
				b.Fatal(err)
			}
			path := map[string]string{"healthy": "/ok", "hanging": "/hang"}[name]
			if err := set.Reload([]upstream.Spec{{Name: "ai", URL: up.URL + path, Timeout: 500 * time.Millisecond}}); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = set.Shutdown(b.Context()) })
			_, addr := testServer(b, Config{RPC: set, MessageRate: -1, ConnRate: -1, MaxRPCInFlight: 1000})
			stop := make(chan struct{})
			defer close(stop)
			for i := 0; i < 4; i++ {
				c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
				if err != nil {
					b.Fatal(err)
				}
				go func() { // read and drop the answers
					for {
						if _, _, err := c.ReadMessage(); err != nil {
							return
						}
					}
				}()
				go func() {
					defer c.Close()
					t := time.NewTicker(2 * time.Millisecond) // 500 calls/s per client
					defer t.Stop()
					for {
						select {
						case <-stop:
							return
						case <-t.C:
							if c.WriteMessage(websocket.TextMessage, []byte(`{"type":"rpc","service":"ai","data":1}`)) != nil {
								return
							}
						}
					}
				}()
			}
			time.Sleep(600 * time.Millisecond) // let the hanging calls fill the pool
			r := wstest.NewRig(b, addr, "/ws", ws.OpBinary, bytes.Repeat([]byte("m"), 64), 1)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				r.RoundTrip(b)
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
