//go:build !race

package protocol

import (
	"testing"

	"github.com/gobwas/ws"
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
