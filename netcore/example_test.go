package netcore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/cloudwego/netpoll"
	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/netcore"
)

// shout is an embedder's own protocol: every text message comes back in
// capitals; binary messages are refused with a close code of its own. Its
// session counts the messages of one connection and reports the count when
// the connection ends.
type shout struct{ counts chan int }

func (h shout) Open(c *netcore.Conn, _ *netcore.Request) netcore.Session {
	return &shoutSession{c: c, counts: h.counts}
}

type shoutSession struct {
	c        *netcore.Conn
	counts   chan int
	messages int // touched by the reader only
}

func (s *shoutSession) HandleMessage(mt netcore.MessageType, data []byte) error {
	if mt == netcore.BinaryMessage {
		return &netcore.CloseError{Code: 4400, Reason: "text only"}
	}
	s.messages++
	return s.c.Reply(netcore.TextMessage, bytes.ToUpper(data))
}

func (s *shoutSession) Closed(netcore.DisconnectEvent) { s.counts <- s.messages }

// Example embeds netcore with its own handler on /ws, admitting everyone,
// and a disconnect hook.
func Example() {
	srv, err := netcore.New(netcore.Config{
		DrainDelay: -1, // no load balancer to wait for here
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	counts := make(chan int, 1)
	if err := srv.Handle(netcore.Route{Path: "/ws", Handler: shout{counts: counts}, Admitter: netcore.AdmitAll()}); err != nil {
		panic(err)
	}
	disconnects := make(chan netcore.DisconnectEvent, 1)
	srv.OnDisconnect(func(e netcore.DisconnectEvent) { disconnects <- e })
	ln, _ := netpoll.CreateListener("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	for !srv.Ready() {
		time.Sleep(time.Millisecond)
	}

	c, _, err := websocket.DefaultDialer.Dial("ws://"+ln.Addr().String()+"/ws", nil)
	if err != nil {
		panic(err)
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte("hello"))
	_, reply, _ := c.ReadMessage()
	fmt.Println(string(reply))
	_ = c.WriteMessage(websocket.BinaryMessage, []byte{1})
	_, _, err = c.ReadMessage()
	fmt.Println(strings.TrimPrefix(err.Error(), "websocket: "))
	e := <-disconnects
	fmt.Println("disconnect:", e.Code, e.Initiator, "after", <-counts, "message(s)")
	_ = srv.Shutdown(context.Background())
	// Output:
	// HELLO
	// close 4400: text only
	// disconnect: 4400 server after 1 message(s)
}
