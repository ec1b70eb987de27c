package netcore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore/wsproto"
)

// The embedding API: what a Go program (the sockmon protocol, the control
// sidecar) can read and do on a running server. Every method is safe for
// concurrent use and never takes a lock that the message path holds for
// long: snapshots copy per shard, fan-outs write outside any lock.

// ConnQuery selects, sorts and pages connections. Zero fields select all.
type ConnQuery struct {
	UserID        string
	Authenticated *bool
	// RemotePrefix matches the start of the client's address as admission
	// determined it (ConnInfo.ClientIP, what limits and bans key on: the
	// X-Forwarded-For client behind a trusted proxy), written without a
	// port: "10.1.", "2001:db8:". It never matches the TCP peer's address
	// (ConnInfo.RemoteAddr), which behind a proxy is the proxy's.
	RemotePrefix string
	// Keep, when set, selects further (the sockmon protocol selects by
	// room). It runs under a registry shard's read lock: it must not block
	// or close a connection.
	Keep func(*Conn) bool
	// SortBy is "connectedAt" (default), "messages" (in + out) or "errors".
	SortBy string
	Desc   bool
	// Limit is the page size, 1 to MaxPageSize; 0 means 100.
	Limit  int
	Offset int
}

// MaxPageSize caps ConnQuery.Limit.
const MaxPageSize = 1000

// ConnPage is one page of connections and the number that matched.
type ConnPage struct {
	Total int
	Items []ConnInfo
}

// ErrBadQuery reports a ConnQuery field out of range.
var ErrBadQuery = errors.New("netcore: bad connection query")

// Connections returns the page of upgraded connections that q selects (the
// seed's getConnectionsData).
func (s *Server) Connections(q ConnQuery) (ConnPage, error) {
	if q.Limit == 0 {
		q.Limit = 100
	}
	if q.Limit < 0 || q.Limit > MaxPageSize {
		return ConnPage{}, fmt.Errorf("%w: limit %d, want 1 to %d", ErrBadQuery, q.Limit, MaxPageSize)
	}
	if q.Offset < 0 {
		return ConnPage{}, fmt.Errorf("%w: offset %d is negative", ErrBadQuery, q.Offset)
	}
	var key func(a, b *ConnInfo) int
	switch q.SortBy {
	case "", "connectedAt":
		key = func(a, b *ConnInfo) int { return a.ConnectedAt.Compare(b.ConnectedAt) }
	case "messages":
		key = func(a, b *ConnInfo) int { return cmpU(a.MessagesIn+a.MessagesOut, b.MessagesIn+b.MessagesOut) }
	case "errors":
		key = func(a, b *ConnInfo) int { return cmpU(a.Errors, b.Errors) }
	default:
		return ConnPage{}, fmt.Errorf("%w: sort %q, want connectedAt, messages or errors", ErrBadQuery, q.SortBy)
	}
	var all []ConnInfo
	var ipBuf [64]byte
	prefix := []byte(q.RemotePrefix)
	s.reg.each(func(c *Conn) {
		st := c.state.Load()
		if st != stateOpen && st != stateClosing {
			return
		}
		if q.UserID != "" && c.userID != q.UserID {
			return
		}
		if q.Authenticated != nil && c.authenticated != *q.Authenticated {
			return
		}
		if q.RemotePrefix != "" && !bytes.HasPrefix(c.ip.AppendTo(ipBuf[:0]), prefix) {
			return
		}
		if q.Keep != nil && !q.Keep(c) {
			return
		}
		all = append(all, c.Info())
	})
	slices.SortStableFunc(all, func(a, b ConnInfo) int {
		r := key(&a, &b)
		if r == 0 {
			r = cmpU(a.ID, b.ID)
		}
		if q.Desc {
			return -r
		}
		return r
	})
	page := ConnPage{Total: len(all)}
	if q.Offset < len(all) {
		page.Items = all[q.Offset:min(q.Offset+q.Limit, len(all))]
	}
	return page, nil
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// DisconnectSocket closes one connection with 4000 and reason (an admin's
// disconnect). It reports whether the socket was open.
func (s *Server) DisconnectSocket(id uint64, reason string) bool {
	c := s.reg.get(id)
	if c == nil || c.state.Load() != stateOpen {
		return false
	}
	c.Close(CloseAdmin, reason)
	return true
}

// DisconnectUser closes every connection of userID with 4000 and reason
// (the seed's forceDisconnectUser). It returns how many it closed.
func (s *Server) DisconnectUser(userID, reason string) int {
	if userID == "" {
		return 0
	}
	n := 0
	for _, c := range s.AppendOpenConns(nil, func(c *Conn) bool { return c.userID == userID }) {
		c.Close(CloseAdmin, reason)
		n++
	}
	return n
}

// DisconnectAll closes every connection with 4000 and reason, batchSize at a
// time with interval (jittered) between batches, in the background. It
// returns how many connections it will close. batchSize 0 means 100;
// interval 0 means 100ms.
func (s *Server) DisconnectAll(reason string, batchSize int, interval time.Duration) int {
	if batchSize <= 0 {
		batchSize = 100
	}
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	conns := s.AppendOpenConns(nil, nil)
	s.spawn(func(ctx context.Context) {
		s.closeInBatches(ctx, conns, CloseAdmin, reason, batchSize, interval)
	})
	return len(conns)
}

// FanOut writes one message to every open connection in conns, framed
// once, and returns how many took it: members that negotiated
// permessage-deflate get it compressed (deflated once for all of them) when
// it is at least Config.CompressionThreshold, the others uncompressed. It
// never blocks on a slow reader (see Conn.WriteFrame); conns may be reused
// once it returns.
func FanOut(conns []*Conn, mt MessageType, payload []byte) int {
	if len(conns) == 0 {
		return 0
	}
	fb := getBuffer()
	frames := fanOutFrames{plain: wsproto.AppendFrame((*fb)[:0], true, false, ws.OpCode(mt), payload)}
	*fb = frames.plain
	var db *[]byte
	if cfg := &conns[0].srv.cfg; !cfg.DisableCompression && len(payload) >= cfg.CompressionThreshold && anyDeflate(conns) {
		db = getBuffer()
		zb := getBuffer()
		if z, err := wsproto.Deflate((*zb)[:0], payload); err == nil {
			frames.deflated = wsproto.AppendFrame((*db)[:0], true, true, ws.OpCode(mt), z)
			*db = frames.deflated
			*zb = z
		}
		putBuffer(zb)
	}
	n := writeAll(conns, frames)
	putBuffer(fb)
	if db != nil {
		putBuffer(db)
	}
	return n
}

// fanOutFrames is one message framed for each kind of member.
type fanOutFrames struct {
	plain    []byte
	deflated []byte // nil: nobody gets it compressed
}

// frameFor is the frame c gets.
func (f *fanOutFrames) frameFor(c *Conn) []byte {
	if c.deflate && f.deflated != nil {
		return f.deflated
	}
	return f.plain
}

func anyDeflate(conns []*Conn) bool {
	for _, c := range conns {
		if c.deflate {
			return true
		}
	}
	return false
}

// fanOutChunk is the fan-out size above which the writes are split over
// the cores: each write is a sendmsg, and one goroutine alone would leave
// the other cores idle.
const fanOutChunk = 512

// writeAll writes every connection its frame and returns how many took it.
// Large fan-outs run in parallel on the runner, one chunk per core; frames
// must stay valid until writeAll returns, which it does after every chunk.
func writeAll(conns []*Conn, frames fanOutFrames) int {
	chunks := min(Cores(), (len(conns)+fanOutChunk-1)/fanOutChunk)
	if chunks <= 1 {
		return writeChunk(conns, &frames)
	}
	var wg sync.WaitGroup
	var total atomic.Int64
	size := (len(conns) + chunks - 1) / chunks
	for i := size; i < len(conns); i += size {
		part, fr := conns[i:min(i+size, len(conns))], frames // a copy per chunk: frames itself stays on the stack
		wg.Add(1)
		taskRunner.run(func() {
			total.Add(int64(writeChunk(part, &fr)))
			wg.Done()
		})
	}
	n := writeChunk(conns[:size], &frames)
	wg.Wait()
	return n + int(total.Load())
}

// writeChunk writes one chunk as a writePass: every frame first, then one
// flush per connection the pass holds, so that frames other fan-outs
// queued meanwhile go out with it. The pass spans the whole chunk: the
// longer it holds its tokens, the more frames queue behind them (32
// publishers to a room of 10,000 on 2 cores: 9-11 frames per sendmsg with a
// pass per chunk, 2-3 with passes of 256 connections). Without write
// coalescing each frame is written and flushed in turn.
func writeChunk(conns []*Conn, frames *fanOutFrames) int {
	n := 0
	if conns[0].srv.cfg.DisableWriteCoalescing {
		for _, c := range conns {
			if c.WriteFrame(frames.frameFor(c)) == nil {
				n++
			}
		}
		return n
	}
	pass := getPass()
	for _, c := range conns {
		if c.state.Load() == stateOpen && c.enqueue(nil, frames.frameFor(c), ws.OpText, true, pass) == nil {
			n++
		}
	}
	pass.flush()
	return n
}

// AppendOpenConns appends the open connections that keep selects (all if
// nil) to dst. keep runs under a registry shard's read lock: it must not
// block or close a connection.
func (s *Server) AppendOpenConns(dst []*Conn, keep func(*Conn) bool) []*Conn {
	s.reg.each(func(c *Conn) {
		if c.state.Load() == stateOpen && (keep == nil || keep(c)) {
			dst = append(dst, c)
		}
	})
	return dst
}

// spawn runs f on a goroutine the server owns: Shutdown cancels its context
// and waits for it.
func (s *Server) spawn(f func(ctx context.Context)) {
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		f(s.bgCtx)
	}()
}

// closeInBatches closes conns with code and reason, batchSize at a time
// (0: in drainBatches batches), with a jittered pause of about gap between
// batches (0.5 to 1.5 gap), until ctx ends.
func (s *Server) closeInBatches(ctx context.Context, conns []*Conn, code ws.StatusCode, reason string, batchSize int, gap time.Duration) {
	rand.Shuffle(len(conns), func(i, j int) { conns[i], conns[j] = conns[j], conns[i] })
	if batchSize <= 0 {
		batchSize = max(1, (len(conns)+drainBatches-1)/drainBatches)
	}
	for i := 0; i < len(conns); i += batchSize {
		for _, c := range conns[i:min(i+batchSize, len(conns))] {
			if c.state.Load() == stateHandshake {
				_ = c.nc.Close()
				continue
			}
			c.Close(code, reason)
		}
		if i+batchSize < len(conns) && gap > 0 {
			select {
			case <-time.After(gap/2 + time.Duration(rand.Int64N(int64(gap)))):
			case <-ctx.Done():
				return
			}
		}
	}
}
