//go:build !race

package netcore

import (
	"runtime"
	"testing"

	"github.com/sockmon/sockmon/netcore/wstest"
)

// The race detector changes object sizes and drops pooled items at random,
// so the heap bound is checked without it (as alloc_test.go).

// idleHeapBound is the heap, in bytes, one idle upgraded /echo connection
// may cost the server: its Conn, registry entry and netpoll connection
// (struct, FDOperator, addresses, close callback) and no buffer. It was
// 2,470 bytes when netpoll kept a buffer node, a LinkBuffer and trigger
// channels per connection; about 1,000 since (PATCHES.md, patch 4).
const idleHeapBound = 1200

// TestIdleHeapPerConn upgrades 2,000 connections from a separate
// process, lets them go idle and bounds the server's heap growth per
// connection (live heap after a GC, before and after).
func TestIdleHeapPerConn(t *testing.T) {
	const n = 2000
	srv, addr := testServer(t, Config{MaxConns: n + 10, MaxPending: n, MaxPendingPerIP: n})
	// Warm the pools and the registry's maps with connections that come
	// and go, so that the baseline holds what is shared.
	for i := 0; i < 50; i++ {
		c := wstest.Dial(t, addr, "/echo")
		_ = c.Conn.Close()
	}
	wstest.WaitFor(t, "warm-up connections closed", func() bool { return srv.Stats().Open == 0 })
	before := liveHeap()
	startIdleClients(t, n, addr)
	wstest.WaitFor(t, "every connection upgraded", func() bool { return srv.Stats().Open == n })
	idlePause()
	after := liveHeap()
	per := float64(int64(after)-int64(before)) / n
	t.Logf("%.0f bytes of heap per idle upgraded connection (%d connections)", per, n)
	if per > idleHeapBound {
		t.Fatalf("%.0f bytes of heap per idle connection, want at most %d", per, idleHeapBound)
	}
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
