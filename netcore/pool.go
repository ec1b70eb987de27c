package netcore

import "sync"

// Buffer pools. A buffer grown past maxPooled is left to the GC so that one
// large message does not pin memory forever.
const maxPooled = 64 << 10

var bufferPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// AcquireBuffer returns an empty buffer from the pool, for building a
// message (a handler's reply, a fan-out's payload). Give it back with
// ReleaseBuffer once the bytes are written (Conn.Reply, Conn.WriteMessage
// and FanOut copy them); neither the buffer nor a slice of it may be used
// after that. Safe for concurrent use.
func AcquireBuffer() *[]byte { return getBuffer() }

// ReleaseBuffer puts a buffer from AcquireBuffer back. Store the grown slice
// in *b first (*b = b2) so that its capacity is reused.
func ReleaseBuffer(b *[]byte) { putBuffer(b) }

func getBuffer() *[]byte { return bufferPool.Get().(*[]byte) }

func putBuffer(b *[]byte) {
	if cap(*b) > maxPooled {
		return
	}
	*b = (*b)[:0]
	bufferPool.Put(b)
}

// pendingPool recycles outbound queues. They are pooled as *[]byte, and a
// Conn keeps the pointer, so that returning one allocates nothing.
var pendingPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getPending() *[]byte {
	p := pendingPool.Get().(*[]byte)
	*p = (*p)[:0]
	return p
}

func putPending(p *[]byte) {
	if cap(*p) > maxPooled {
		return
	}
	*p = (*p)[:0]
	pendingPool.Put(p)
}
