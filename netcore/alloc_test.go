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
			r.RoundTrip(t)
		}
		// netpoll's wake-up hands the worker the connection itself
		// (third_party/netpoll patch 5): no closure per input event.
		if n := testing.AllocsPerRun(2000, func() { r.RoundTrip(t) }); n > 0.05 {
			t.Fatalf("%.2f allocations per binary echo, want 0 (one here is a closure per input event)", n)
		}
	})
	t.Run("messages in flight", func(t *testing.T) {
		const perWrite = 100
		r := newEchoRig(t, perWrite)
		for i := 0; i < 100; i++ {
			r.RoundTrip(t)
		}
		n := testing.AllocsPerRun(200, func() { r.RoundTrip(t) }) / perWrite
		if n > 0.05 {
			t.Fatalf("%.3f allocations per binary echo with %d in flight, want ~0", n, perWrite)
		}
		t.Logf("%.4f allocations per message with %d messages per write", n, perWrite)
	})
}
