// Command netpollraw is the ceiling of the capacity suite: a raw TCP echo on
// cloudwego/netpoll that upgrades with gobwas/ws and then does the least
// RFC 6455 allows. Each client frame is unmasked in netpoll's input buffer
// and written back unmasked with the same opcode and FIN bit (a fragmented
// message comes back fragmented), pings get pongs, a close is answered and
// the connection closed. There is no UTF-8 check, no reassembly and no
// per-message allocation; all replies of one read are flushed together.
//
// For the room fan-out comparison it also answers the two requests of
// sockmon's protocol that `sockmon load --mode publish` sends, as cheaply as
// possible: a text message starting {"type":"join" makes the connection a
// member (of the one room there is) and is acked; a text message starting
// {"type":"publish" is acked and its data is written to every member as
// {"type":"message","room":...,"from":"raw","data":...}: one frame built
// once and written to every connection, split over one goroutine per core
// as sockmon's fan-out is. Any other text message is echoed.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/cloudwego/netpoll"
	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/bench/refservers/internal/ref"
)

type ctxKey struct{}

// conn is the per-connection state; only the connection's OnRequest
// handler touches it, and netpoll runs one handler at a time per connection.
type conn struct {
	upgraded bool
	c        netpoll.Connection
	// mu serialises writes: the connection's own handler and fan-outs
	// started by other connections write to it.
	mu sync.Mutex
}

var errPath = ws.RejectConnectionError(ws.RejectionStatus(404))

func main() {
	addr := ref.Addr("netpollraw")
	up := ws.Upgrader{
		OnRequest: func(uri []byte) error {
			if i := bytes.IndexByte(uri, '?'); i >= 0 {
				uri = uri[:i]
			}
			if string(uri) != ref.Path {
				return errPath
			}
			return nil
		},
	}
	loop, err := netpoll.NewEventLoop(
		func(ctx context.Context, c netpoll.Connection) error {
			st := ctx.Value(ctxKey{}).(*conn)
			if !st.upgraded {
				if _, err := up.Upgrade(c); err != nil {
					c.Close()
					return err
				}
				st.upgraded = true
				return nil
			}
			st.mu.Lock()
			defer st.mu.Unlock()
			return echo(st, c)
		},
		netpoll.WithOnPrepare(func(c netpoll.Connection) context.Context {
			_ = c.SetReadTimeout(30 * time.Second)
			st := &conn{c: c}
			_ = c.AddCloseCallback(func(netpoll.Connection) error {
				room.leave(st)
				return nil
			})
			return context.WithValue(context.Background(), ctxKey{}, st)
		}),
	)
	if err != nil {
		ref.Fatal("netpollraw", err)
	}
	l, err := netpoll.CreateListener("tcp", addr)
	if err != nil {
		ref.Fatal("netpollraw", err)
	}
	ref.Ready("netpollraw", addr)
	go func() { ref.Fatal("netpollraw", loop.Serve(l)) }()
	ref.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = loop.Shutdown(ctx)
}

var errClosed = errors.New("netpollraw: connection closed")

// echo answers every frame in the input buffer, waiting for the rest of a
// frame that arrived in part, then flushes once.
func echo(st *conn, c netpoll.Connection) error {
	r, w := c.Reader(), c.Writer()
	for r.Len() > 0 {
		head, err := r.Peek(2)
		if err != nil {
			return err
		}
		fin, op := head[0]&0x80 != 0, ws.OpCode(head[0]&0x0f)
		masked, n := head[1]&0x80 != 0, int(head[1]&0x7f)
		hl := 2
		switch n {
		case 126:
			hl += 2
		case 127:
			hl += 8
		}
		if masked {
			hl += 4
		}
		hdr, err := r.Next(hl)
		if err != nil {
			return err
		}
		switch n {
		case 126:
			n = int(binary.BigEndian.Uint16(hdr[2:4]))
		case 127:
			n64 := binary.BigEndian.Uint64(hdr[2:10])
			if n64 > ref.MaxMessage {
				return closeWith(c, 1009)
			}
			n = int(n64)
		}
		if !masked || head[0]&0x70 != 0 {
			return closeWith(c, 1002)
		}
		if n > ref.MaxMessage {
			return closeWith(c, 1009)
		}
		var mask [4]byte
		copy(mask[:], hdr[hl-4:hl])
		payload, err := r.Next(n)
		if err != nil {
			return err
		}
		ws.Cipher(payload, mask, 0)
		switch op {
		case ws.OpPong:
			continue
		case ws.OpPing:
			op, fin = ws.OpPong, true
		case ws.OpClose:
			writeFrame(w, true, ws.OpClose, payload)
			_ = w.Flush()
			c.Close()
			return errClosed
		case ws.OpText:
			if fin && room.request(st, w, payload) {
				continue
			}
		}
		writeFrame(w, fin, op, payload)
	}
	_ = r.Release()
	return w.Flush()
}

// writeFrame appends one unmasked server frame to w's buffer.
func writeFrame(w netpoll.Writer, fin bool, op ws.OpCode, payload []byte) {
	n := len(payload)
	hl := 2
	if n > 125 {
		hl = 4
		if n > 0xffff {
			hl = 10
		}
	}
	buf, _ := w.Malloc(hl + n)
	buf[0] = byte(op)
	if fin {
		buf[0] |= 0x80
	}
	switch hl {
	case 2:
		buf[1] = byte(n)
	case 4:
		buf[1] = 126
		binary.BigEndian.PutUint16(buf[2:], uint16(n))
	default:
		buf[1] = 127
		binary.BigEndian.PutUint64(buf[2:], uint64(n))
	}
	copy(buf[hl:], payload)
}

func closeWith(c netpoll.Connection, code uint16) error {
	var body [2]byte
	binary.BigEndian.PutUint16(body[:], code)
	writeFrame(c.Writer(), true, ws.OpClose, body[:])
	_ = c.Writer().Flush()
	c.Close()
	return errClosed
}
