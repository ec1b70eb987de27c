// Command gorilla is the gorilla/websocket reference echo server: one
// goroutine per connection, every text and binary message echoed verbatim.
package main

import (
	"net"
	"net/http"

	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/bench/refservers/internal/ref"
)

func main() {
	addr := ref.Addr("gorilla")
	up := websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		CheckOrigin:     func(*http.Request) bool { return true },
	}
	mux := http.NewServeMux()
	mux.HandleFunc(ref.Path, func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(ref.MaxMessage)
		for {
			op, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(op, msg); err != nil {
				return
			}
		}
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		ref.Fatal("gorilla", err)
	}
	ref.Ready("gorilla", addr)
	go func() { ref.Fatal("gorilla", http.Serve(l, mux)) }()
	ref.Wait()
}
