//go:build !race

package netcore

import "testing"

// The race detector makes sync.Pool drop items at random, so allocation
// counts are only meaningful without it: `make test` runs these tests in a
// separate pass without -race.
//
// The client side writes prebuilt frames and reads into a fixed buffer,
// which allocates nothing, so every allocation counted is the server's.

// TestEchoAllocs: sockmon's own message path (parse, unmask, dispatch, write
// into netpoll's buffer, flush) allocates nothing. netpoll itself allocates
// one task closure each time it wakes a connection that has gone quiet
// (connection.onProcess), so a strict request/reply client sees one
// allocation per wake-up, and a client with messages in flight sees that
// allocation shared by every message of the batch.
func TestEchoAllocs(t *testing.T) {
	t.Run("one message per wake-up", func(t *testing.T) {
		r := newEchoRig(t, 1)
		for i := 0; i < 1000; i++ {
			r.roundTrip(t)
		}
		if n := testing.AllocsPerRun(2000, func() { r.roundTrip(t) }); n > 1 {
			t.Fatalf("%.2f allocations per binary echo, want at most netpoll's 1 per wake-up", n)
		}
	})
	t.Run("messages in flight", func(t *testing.T) {
		const perWrite = 100
		r := newEchoRig(t, perWrite)
		for i := 0; i < 100; i++ {
			r.roundTrip(t)
		}
		n := testing.AllocsPerRun(200, func() { r.roundTrip(t) }) / perWrite
		if n > 0.05 {
			t.Fatalf("%.3f allocations per binary echo with %d in flight, want ~0", n, perWrite)
		}
		t.Logf("%.4f allocations per message with %d messages per write", n, perWrite)
	})
}

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
			r := newEchoRigPath(t, addr, "/ws", []byte(msg), perWrite)
			// Size the reply buffer from one real round trip.
			for i := 0; i < 50; i++ {
				r.roundTrip(t)
			}
			n := testing.AllocsPerRun(200, func() { r.roundTrip(t) }) / perWrite
			if n > 0.05 {
				t.Fatalf("%.3f allocations per %s with %d in flight, want ~0", n, name, perWrite)
			}
			t.Logf("%.4f allocations per %s", n, name)
		})
	}
}
