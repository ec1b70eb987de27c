// Command nbio is the lesismal/nbio reference echo server: connections are
// served by nbio's epoll pollers (no goroutine per connection), every text
// and binary message echoed verbatim.
package main

import (
	"net/http"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
	"github.com/sockmon/sockmon/bench/refservers/internal/ref"
)

func main() {
	addr := ref.Addr("nbio")
	up := websocket.NewUpgrader()
	up.CheckOrigin = func(*http.Request) bool { return true }
	up.MessageLengthLimit = ref.MaxMessage
	up.OnMessage(func(c *websocket.Conn, mt websocket.MessageType, data []byte) {
		_ = c.WriteMessage(mt, data)
	})
	mux := http.NewServeMux()
	mux.HandleFunc(ref.Path, func(w http.ResponseWriter, r *http.Request) {
		_, _ = up.Upgrade(w, r, nil)
	})
	engine := nbhttp.NewEngine(nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{addr},
		Handler:                 mux,
		MaxLoad:                 1 << 20,
		ReleaseWebsocketPayload: true,
	})
	if err := engine.Start(); err != nil {
		ref.Fatal("nbio", err)
	}
	ref.Ready("nbio", addr)
	ref.Wait()
	engine.Stop()
}
