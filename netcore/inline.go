package netcore

import (
	"context"
	"time"

	"github.com/sockmon/sockmon/netcore/wsproto"
)

// Serving input on the poller.
//
// netpoll's poller reads a socket, then hands the connection to a worker
// goroutine (runner.go) to run onRequest. Under load one epoll batch readies
// hundreds of workers at once, and the last of them waits for every one
// before it: that hand-off was most of sockmon's scheduling delay (see
// bench/RESULTS.md, notes on tail latency). When the input that arrived is
// nothing but complete frames of an open connection, serving them cannot
// block (handlers never block, and writes that would wait go to the runner,
// see conn_write.go), so the poller serves them itself, before it reads the
// next socket of its batch (netpoll patch 6, Config.Inline), much as nbio
// serves its connections on its event loops. Anything else, a handshake,
// a partial frame, or more than inlineMaxBytes, goes to a worker as before,
// since serving it may wait for more input or take long enough to hold up
// the other connections of the poller.

// heavyMessage is how long a message may take to serve for the connection's
// next input to be served on the poller too. A message that takes longer (a
// publish to a large room, a big message to inflate) holds up every other
// connection of the poller, and on workers several of them run in parallel
// (and their writes coalesce, see conn_write.go); the connection returns to
// the poller after a message that took less.
const heavyMessage = 100 * time.Microsecond

// inlineMaxBytes bounds the input one connection may have served on the
// poller: more (a large message, or many frames) is worth a hand-off.
const inlineMaxBytes = 16 << 10

// servesInline is netpoll's Config.Inline. It runs on the poller with the
// connection's processing lock held, so the reader state is ours to read.
func servesInline(ctx context.Context) bool {
	cc, ok := ctx.(*connContext)
	if !ok {
		return false
	}
	c := (*Conn)(cc)
	if c.srv.cfg.DisablePollerServe {
		return false
	}
	if st := c.state.Load(); c.heavy || st != stateOpen && st != stateClosing {
		return false
	}
	r := c.nc.Reader()
	n := r.Len()
	if n > inlineMaxBytes {
		return false
	}
	p, err := r.Peek(n)
	if err != nil {
		return false
	}
	return completeFrames(p)
}

// completeFrames reports whether p is whole frames and nothing else, which
// readFrame consumes without waiting for more input: each frame takes
// HeaderLen bytes of header and the header's length of payload. A header
// that does not parse is complete too: readFrame fails on it at once.
func completeFrames(p []byte) bool {
	for len(p) > 0 {
		if len(p) < 2 {
			return false
		}
		hl := wsproto.HeaderLen(p[0], p[1])
		if len(p) < hl {
			return false
		}
		h, _, err := wsproto.ParseHeader(p)
		if err != nil {
			return true
		}
		if h.Length > int64(len(p)-hl) {
			return false
		}
		p = p[hl+int(h.Length):]
	}
	return true
}
