package netcore

import "sync"

// Buffer pools. A buffer grown past maxPooled is left to the GC so that one
// large message does not pin memory forever.
const maxPooled = 64 << 10

var bufferPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBuffer() *[]byte { return bufferPool.Get().(*[]byte) }

func putBuffer(b *[]byte) {
	if cap(*b) > maxPooled {
		return
	}
	*b = (*b)[:0]
	bufferPool.Put(b)
}

var pendingPool sync.Pool

func getPending() []byte {
	if b, ok := pendingPool.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 4096)
}

func putPending(p []byte) {
	if cap(p) > maxPooled {
		return
	}
	p = p[:0]
	pendingPool.Put(&p)
}
