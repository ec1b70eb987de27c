//go:build !race

package protocol

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore/wsproto"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// The race detector makes sync.Pool drop items at random, so allocation
// counts are only meaningful without it: `make test` runs these tests in a
// separate pass without -race. The client (wstest.Rig) allocates nothing, so
// every allocation counted is the server's.

// TestProtocolAllocs: a JSON echo and a JSON ping cost no allocation in
// sockmon's code (the envelope is scanned in place and the reply built in a
// pooled buffer). As for binary, netpoll's one closure per wake-up is
// shared by the messages in flight.
func TestProtocolAllocs(t *testing.T) {
	for name, msg := range map[string]string{
		"echo": `{"type":"echo","id":42,"data":{"user":"x","seq":[1,2,3],"text":"hello"}}`,
		"ping": `{"type":"ping","id":"abc"}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, addr := testServer(t, Config{MessageRate: -1})
			const perWrite = 100
			r := wstest.NewRig(t, addr, "/ws", ws.OpText, []byte(msg), perWrite)
			// Size the reply buffer from one real round trip.
			for i := 0; i < 50; i++ {
				r.RoundTrip(t)
			}
			n := testing.AllocsPerRun(200, func() { r.RoundTrip(t) }) / perWrite
			if n > 0.05 {
				t.Fatalf("%.3f allocations per %s with %d in flight, want ~0", n, name, perWrite)
			}
			t.Logf("%.4f allocations per %s", n, name)
		})
	}
}

// TestRateLimitedAllocs: refusing a message over the rate, with its id
// copied into the rate_limited error, costs no allocation: the envelope is
// scanned in place only for refused messages.
func TestRateLimitedAllocs(t *testing.T) {
	srv, addr := testServer(t, Config{MessageRate: -1, BanAfter: 1 << 30})
	c := wstest.Dial(t, addr, "/ws")
	msg := []byte(`{"type":"ping","id":"abc"}`)
	c.Send(true, ws.OpText, msg)
	c.NextData() // the pong: the session is open
	// One message a day (retryAfterMs keeps its 8 digits, so every error
	// has the same size); the first goes through.
	if err := srv.SetRateLimit(RateLimit{SocketID: srv.Conns()[0].ID, Limit: 1, Window: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	c.Send(true, ws.OpText, msg)
	c.NextData()
	c.Send(true, ws.OpText, msg)
	f := c.NextData()
	if !bytes.Contains(f.Payload, []byte(`"code":"rate_limited"`)) || !bytes.Contains(f.Payload, []byte(`"id":"abc"`)) {
		t.Fatalf("over the rate: %s, want rate_limited with the id", f.Payload)
	}
	const perWrite = 100
	var req []byte
	for i := 0; i < perWrite; i++ {
		req = append(req, wstest.ClientFrame(true, 0, ws.OpText, msg, true)...)
	}
	reply := make([]byte, perWrite*(wsproto.ServerHeaderLen(len(f.Payload))+len(f.Payload)))
	roundTrip := func() {
		if _, err := c.Conn.Write(req); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c.Reader, reply); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ {
		roundTrip()
	}
	if n := testing.AllocsPerRun(100, roundTrip) / perWrite; n > 0.05 {
		t.Fatalf("%.3f allocations per rate-limited message, want ~0", n)
	}
}

// TestFanOutAllocs: a publish to a room and a broadcast (to a room and to
// everyone) cost no allocation: the member list comes from a pool, the frame
// is built once in a pooled buffer and copied into each member's output
// buffer. The members read everything, so no write is left queued.
func TestFanOutAllocs(t *testing.T) {
	srv, addr := testServer(t, Config{MessageRate: -1, ConnRate: -1})
	const members = 8
	for i := 0; i < members; i++ {
		c := wstest.Dial(t, addr, "/ws")
		c.Send(true, ws.OpText, []byte(`{"type":"join","room":"r"}`))
		c.NextData() // the ack
		// Members drain without allocating: AllocsPerRun counts every
		// goroutine's allocations, the test's own readers included.
		go func() { _, _ = io.Copy(io.Discard, c.Reader) }()
	}
	data := []byte(`{"n":1}`)
	for name, f := range map[string]func(){
		"publish":        func() { _, _ = srv.Publish("r", data) },
		"room broadcast": func() { _, _ = srv.Broadcast(data, "r") },
		"broadcast":      func() { _, _ = srv.Broadcast(data, "") },
	} {
		for i := 0; i < 100; i++ {
			f()
		}
		if n := testing.AllocsPerRun(500, f); n > 0 {
			t.Errorf("%s to %d members: %.2f allocations, want 0", name, members, n)
		}
	}
}
