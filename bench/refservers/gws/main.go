// Command gws is the lxzan/gws reference echo server: one read-loop
// goroutine per connection, every text and binary message echoed verbatim.
package main

import (
	"net"
	"net/http"

	"github.com/lxzan/gws"
	"github.com/sockmon/sockmon/bench/refservers/internal/ref"
)

type handler struct{ gws.BuiltinEventHandler }

func (handler) OnPing(c *gws.Conn, payload []byte) { _ = c.WritePong(payload) }

func (handler) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	_ = c.WriteMessage(m.Opcode, m.Bytes())
}

func main() {
	addr := ref.Addr("gws")
	up := gws.NewUpgrader(handler{}, &gws.ServerOption{
		ReadMaxPayloadSize: ref.MaxMessage,
		Authorize:          func(*http.Request, gws.SessionStorage) bool { return true },
	})
	mux := http.NewServeMux()
	mux.HandleFunc(ref.Path, func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		c.ReadLoop()
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		ref.Fatal("gws", err)
	}
	ref.Ready("gws", addr)
	go func() { ref.Fatal("gws", http.Serve(l, mux)) }()
	ref.Wait()
}
