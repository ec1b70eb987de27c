package netcore

import (
	"bytes"
	"slices"
	"testing"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// A client that pipelines is read in large reads: the input buffer is
// pooled once drained, so every burst starts in a fresh node, and netpoll
// grows the node when a read fills it (netpoll patch 9). Here the frames
// are 32 bytes, so every 256-byte read (the first node's size) ends on a
// frame boundary and is served on the poller and drained at once: without
// the growth the node stayed 256 bytes. Counted as the server's writes
// (TCP segments, see coalesce_test.go): each read's frames are served and
// their echoes flushed together, so 100 pipelined frames read 256 bytes
// at a time took 13 writes per round trip; read at once they take one or
// two.
func TestPipelinedInputIsReadInLargeReads(t *testing.T) {
	r := newCoalesceRig(t, Config{})
	const perWrite = 100
	rig := wstest.NewRigOn(r.c, ws.OpBinary, bytes.Repeat([]byte("m"), 32-6), perWrite) // a 6-byte masked header
	var writes []uint32
	for range 30 {
		before := r.segsOut(t)
		rig.RoundTrip(t)
		writes = append(writes, r.segsOut(t)-before)
	}
	slices.Sort(writes)
	t.Logf("writes per round trip: %v", writes)
	if median := writes[len(writes)/2]; median > 4 {
		t.Fatalf("%d pipelined messages took a median of %d writes per round trip (sorted: %v), want at most 4", perWrite, median, writes)
	}
}

// BenchmarkPipelinedEcho is the test's round trip: 100 pipelined 32-byte
// frames per write, b.N messages.
func BenchmarkPipelinedEcho(b *testing.B) {
	const perWrite = 100
	r := newEchoRigOf(b, 32-6, perWrite)
	b.ReportAllocs()
	b.SetBytes(int64(r.RequestBytes() / perWrite))
	b.ResetTimer()
	for i := 0; i < b.N; i += perWrite {
		r.RoundTrip(b)
	}
}
