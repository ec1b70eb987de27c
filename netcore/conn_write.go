package netcore

import (
	"sync"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore/wsproto"
)

// The write path, and the two state machines it runs on.
//
// A connection's state (Conn.state, atomic; only ever moves right):
//
//	handshake --101 sent--> open --first sendClose--> closing --last frame flushed--> lingering --peer closes--> closed
//	    |                    |                           |                               ^  (or LingerTimeout,    ^
//	    +--refusal flushed---|---------------------------|-------------------------------+   LingerBytes)         |
//	    +--swept-------------+----socket closed by anyone (peer gone, CloseTimeout)----------------------------------+
//
// sendClose is ours (Close, a limit, the sweeper) or the answer to the
// peer's close frame; the first call wins and records the code. The
// lingering close (lifecycle.go) starts when our close frame is flushed
// with closeAfterFlush set (protocol errors, limits, replies to the peer's
// close) or when the peer's close frame answers ours; the sweeper drops a
// connection whose peer neither answers (Config.CloseTimeout) nor closes
// (Config.LingerTimeout).
//
// netpoll's output buffer has one writer at a time. The writer token
// (Conn.writing, under wmu) says who that is:
//
//	                  beginBatch: the reader has input
//	      +-------+ ---------------------------------> reader's batch (inBatch)
//	      | free  |                                     Reply writes frames straight
//	      +-------+ <--+                                into netpoll's buffer
//	        |  ^       |                                   |           |
//	enqueue |  |       | pending empty:                    | endBatch  | peek must wait for
//	 (any   |  |       | writing = false;                  v           | more input: endBatch
//	  gor.) |  +-------+ close the socket if         flushOwned <------+ now, beginBatch after
//	        |            closeAfterFlush                 ^   |             it has the bytes
//	        +-----> inline owner: frame into buffer -----+   | socket full
//	                                                         v
//	                                   flushBlocking on the runner (Flush, at most
//	                                   Config.WriteTimeout), then flushOwned again
//
// flushOwned sends without waiting (FlushNoWait: one non-blocking sendmsg),
// then moves pending into netpoll's buffer and sends again, until pending
// is empty; only then does it give the token back. Everyone who finds the
// token taken appends the whole frame to pending instead, so frames leave
// in the order they were enqueued and no writer ever waits for a peer.
// pending is what a slow consumer accumulates: past Config.WriteQueueBytes
// the connection is closed with 1008 (close frames are never capped).
//
// Write coalescing (on unless Config.DisableWriteCoalescing): a fan-out
// takes the tokens of its members as a writePass, writes every frame, then
// flushes each member once; frames that other writers queued in pending
// meanwhile join the buffer before that send (flushQueued), so several
// publishes to one busy room cost one sendmsg per member, not one per
// message. Only what is already queued is coalesced: no flush waits for
// more.
//
// The reader gives the token back in the middle of a batch (peek) when it
// must wait for the rest of a frame: otherwise replies, broadcasts and
// pings would wait on a slow sender's next bytes.

// Reply writes a message into the current batch. It may only be called from
// HandleMessage, on the connection's own reader goroutine; elsewhere use
// WriteMessage.
func (c *Conn) Reply(mt MessageType, data []byte) error {
	if !c.inBatch {
		return c.WriteMessage(mt, data)
	}
	if c.state.Load() != stateOpen {
		return ErrConnClosed
	}
	op, rsv1, payload, release, err := c.prepareData(mt, data)
	if err != nil {
		return err
	}
	err = c.writeDirect(op, rsv1, payload)
	release()
	return err
}

// WriteMessage queues a message to the peer. It never blocks on the
// network; a peer that does not read fast enough is closed with 1008 once
// its queue passes Config.WriteQueueBytes (ErrSlowConsumer). Safe for
// concurrent use.
func (c *Conn) WriteMessage(mt MessageType, data []byte) error {
	if c.state.Load() != stateOpen {
		return ErrConnClosed
	}
	op, rsv1, payload, release, err := c.prepareData(mt, data)
	if err != nil {
		return err
	}
	err = c.writeQueued(op, rsv1, payload, true)
	release()
	return err
}

// WriteFrame queues an already encoded server frame (header and payload,
// unmasked), as built once by a broadcast for all its recipients. The frame
// is copied. Same rules as WriteMessage.
func (c *Conn) WriteFrame(frame []byte) error {
	if c.state.Load() != stateOpen {
		return ErrConnClosed
	}
	return c.writeRaw(frame, true)
}

// prepareData compresses data when the connection negotiated deflate and the
// message is big enough to be worth it.
func (c *Conn) prepareData(mt MessageType, data []byte) (op ws.OpCode, rsv1 bool, payload []byte, release func(), err error) {
	if len(data) > c.srv.cfg.MaxMessageSize {
		return 0, false, nil, nil, ErrMessageTooLarge
	}
	op = ws.OpCode(mt)
	if !c.deflate || len(data) < c.srv.cfg.CompressionThreshold {
		return op, false, data, noRelease, nil
	}
	buf := getBuffer()
	out, err := wsproto.Deflate((*buf)[:0], data)
	if err != nil {
		putBuffer(buf)
		return 0, false, nil, nil, err
	}
	*buf = out
	return op, true, out, func() { putBuffer(buf) }, nil
}

func noRelease() {}

// writeDirect writes a frame into netpoll's buffer; the caller holds the
// writer token.
func (c *Conn) writeDirect(op ws.OpCode, rsv1 bool, payload []byte) error {
	hl := wsproto.ServerHeaderLen(len(payload))
	if !c.lockBuf() {
		return ErrConnClosed
	}
	buf, err := c.nc.Writer().Malloc(hl + len(payload))
	if err != nil {
		c.bufMu.Unlock()
		return err
	}
	wsproto.PutHeader(buf, true, rsv1, op, len(payload))
	copy(buf[hl:], payload)
	c.bufMu.Unlock()
	c.countOut(op, hl+len(payload))
	return nil
}

func (c *Conn) countOut(op ws.OpCode, n int) {
	if op.IsData() {
		c.msgsOut.Add(1)
		c.shard.MessagesSent(1, n)
	}
	c.bytesOut.Add(uint64(n))
}

// writeQueued writes a frame through the token protocol. capped says
// whether the frame counts against the outbound cap (close frames do not).
func (c *Conn) writeQueued(op ws.OpCode, rsv1 bool, payload []byte, capped bool) error {
	var hdr [wsproto.MaxServerHeaderSize]byte
	hl := wsproto.PutHeader(hdr[:], true, rsv1, op, len(payload))
	return c.enqueue(hdr[:hl], payload, op, capped, nil)
}

// writeRaw is writeQueued for a pre-encoded data frame.
func (c *Conn) writeRaw(frame []byte, capped bool) error {
	return c.enqueue(nil, frame, ws.OpText, capped, nil)
}

// enqueue writes the frame hdr+body: into netpoll's buffer when the token
// is free (then flushes without waiting), into pending otherwise. With a
// pass, a token it takes is kept and c added to the pass, whose flush
// sends the frame with whatever was queued behind it (writePass).
func (c *Conn) enqueue(hdr, body []byte, op ws.OpCode, capped bool, pass *writePass) error {
	n := len(hdr) + len(body)
	c.wmu.Lock()
	if c.writing {
		if capped && c.pending != nil && len(*c.pending)+n > c.srv.cfg.WriteQueueBytes {
			c.wmu.Unlock()
			c.slowConsumer()
			return ErrSlowConsumer
		}
		if s := c.srv; capped && s.cfg.OutboundBudget > 0 && c.pending != nil && len(*c.pending) >= budgetBacklog &&
			s.queued.Load()+int64(n) > int64(s.cfg.OutboundBudget) {
			// Over the process-wide budget: a connection with a backlog
			// is shed first; one that is only momentarily behind (a
			// flush in progress) still queues, within WriteQueueBytes.
			c.wmu.Unlock()
			s.budgetShed.Inc()
			c.slowConsumer()
			return ErrSlowConsumer
		}
		if c.pending == nil {
			c.pending = getPending()
		}
		*c.pending = append(append(*c.pending, hdr...), body...)
		c.srv.queued.Add(int64(n))
		c.wmu.Unlock()
		c.countOut(op, n)
		return nil
	}
	c.writing = true
	c.wmu.Unlock()
	if !c.lockBuf() {
		c.releaseToken()
		return ErrConnClosed
	}
	buf, err := c.nc.Writer().Malloc(n)
	if err != nil {
		c.bufMu.Unlock()
		c.releaseToken()
		return err
	}
	copy(buf, hdr)
	copy(buf[len(hdr):], body)
	c.bufMu.Unlock()
	c.countOut(op, n)
	if pass != nil {
		pass.owned = append(pass.owned, c)
		return nil
	}
	c.flushOwned()
	return nil
}

// budgetBacklog is the backlog that marks a connection as the one to shed
// when the outbound budget is reached.
const budgetBacklog = 64 << 10

// beginBatch tries to take the writer token for the reader's batch.
func (c *Conn) beginBatch() {
	c.wmu.Lock()
	if !c.writing {
		c.writing = true
		c.inBatch = true
	}
	c.wmu.Unlock()
}

// endBatch flushes the batch and gives the token back.
func (c *Conn) endBatch() {
	if !c.inBatch {
		return
	}
	c.inBatch = false
	c.flushOwned()
}

// noWaitFlusher is the non-blocking flush of sockmon's netpoll
// (third_party/netpoll/PATCHES.md). onPrepare refuses a connection that
// lacks it, so the assertion in flushOwned cannot fail.
type noWaitFlusher interface {
	FlushNoWait() (complete bool, err error)
}

// flushOwned is run by the token owner: send what is buffered without
// waiting, drain pending the same way, then release the token. If the
// socket is full, the rest goes to a pooled goroutine (flushBlocking) that
// keeps the token until the socket drains, for at most Config.WriteTimeout.
// So the caller never blocks on its peer.
func (c *Conn) flushOwned() {
	for {
		complete, err := c.nc.(noWaitFlusher).FlushNoWait()
		if err != nil {
			c.releaseToken()
			_ = c.nc.Close()
			return
		}
		if !complete {
			taskRunner.run(c.flushTask())
			return
		}
		c.wmu.Lock()
		if c.pending == nil || len(*c.pending) == 0 {
			c.writing = false
			closeNow := c.closeAfterFlush
			c.wmu.Unlock()
			if closeNow {
				c.endAfterFlush()
			}
			return
		}
		p := c.pending
		c.pending = nil
		c.wmu.Unlock()
		if !c.bufferQueue(p) {
			return
		}
	}
}

// flushQueued is flushOwned for a fan-out's pass, whose frames other
// writers are likely to have queued behind (see writePass). With write
// coalescing (the default, Config.DisableWriteCoalescing) they join the
// buffer first, so everything queued by then leaves in one sendmsg;
// without it the buffer is sent first and the queue after, as two.
func (c *Conn) flushQueued() {
	if !c.srv.cfg.DisableWriteCoalescing {
		c.wmu.Lock()
		p := c.pending
		if p == nil || len(*p) == 0 {
			p = nil
		} else {
			c.pending = nil
		}
		c.wmu.Unlock()
		if p != nil && !c.bufferQueue(p) {
			return
		}
	}
	c.flushOwned()
}

// bufferQueue moves p, a queue taken from pending by the token owner, into
// netpoll's output buffer and gives it back to its pool. false means the
// connection is gone and the token was given back.
func (c *Conn) bufferQueue(p *[]byte) bool {
	c.srv.queued.Add(-int64(len(*p)))
	if !c.lockBuf() {
		putPending(p)
		c.releaseToken()
		return false
	}
	buf, err := c.nc.Writer().Malloc(len(*p))
	if err != nil {
		c.bufMu.Unlock()
		putPending(p)
		c.releaseToken()
		_ = c.nc.Close()
		return false
	}
	copy(buf, *p)
	c.bufMu.Unlock()
	putPending(p)
	return true
}

// flushBlocking waits for a full socket to take the rest of the output
// buffer, then carries on as flushOwned. It runs on the runner, holding the
// token.
func (c *Conn) flushBlocking() {
	if err := c.nc.Writer().Flush(); err != nil {
		c.releaseToken()
		_ = c.nc.Close()
		return
	}
	c.flushOwned()
}

// lockBuf takes bufMu unless netpoll has closed the socket (and is about
// to free its output buffer, or has): true means the caller holds bufMu
// and may Malloc and copy into the buffer, then unlocks.
func (c *Conn) lockBuf() bool {
	c.bufMu.Lock()
	if c.bufGone {
		c.bufMu.Unlock()
		return false
	}
	return true
}

// releaseToken gives the token back after a failed write, dropping the queue.
func (c *Conn) releaseToken() {
	c.wmu.Lock()
	c.writing = false
	p := c.pending
	c.pending = nil
	c.wmu.Unlock()
	if p != nil {
		c.srv.queued.Add(-int64(len(*p)))
		putPending(p)
	}
}

// slowConsumer drops what a peer that does not read has queued and closes it
// with 1008; the close frame follows the write in flight, and the sweeper
// drops the socket if even that cannot be delivered in time.
func (c *Conn) slowConsumer() {
	c.wmu.Lock()
	if c.pending != nil {
		c.srv.queued.Add(-int64(len(*c.pending)))
		*c.pending = (*c.pending)[:0]
	}
	c.wmu.Unlock()
	if c.state.Load() == stateOpen {
		c.srv.stats.slowConsumers.Add(1)
		c.setEndReason(metrics.ReasonSlowConsumer)
	}
	c.sendClose(ClosePolicy, "slow consumer: outbound queue over its cap", true, false)
}

// sendClose queues a close frame. With closeAfter, the lingering close
// starts as soon as the frame is flushed (protocol errors, limits, replies
// to the peer's close, slow consumers); otherwise the server waits for the
// peer's close frame up to Config.CloseTimeout. Only the first call for a connection acts.
// fromReader says the caller is the connection's reader goroutine, which may
// hold the writer token for its batch.
func (c *Conn) sendClose(code ws.StatusCode, reason string, closeAfter, fromReader bool) {
	for {
		st := c.state.Load()
		if st != stateOpen {
			if st == stateClosing && closeAfter {
				// Our close frame is out already and now we want the socket
				// down after it: the peer answered, or it misbehaved.
				c.closeSocketAfterFlush()
			}
			return
		}
		if c.state.CompareAndSwap(stateOpen, stateClosing) {
			break
		}
	}
	c.closeCode.Store(uint32(code))
	c.closeReason.Store(&reason)
	c.closeBy.Store(c.srv.now() + int64(c.srv.cfg.CloseTimeout))
	var body [2 + wsproto.MaxCloseReason]byte
	n := len(wsproto.AppendClosePayload(body[:0], code, reason))
	if closeAfter {
		c.wmu.Lock()
		c.closeAfterFlush = true
		c.wmu.Unlock()
	}
	if fromReader && c.inBatch {
		_ = c.writeDirect(ws.OpClose, false, body[:n])
		return
	}
	_ = c.writeQueued(ws.OpClose, false, body[:n], false)
}

// closeSocketAfterFlush ends the connection now if nothing is being
// written, or lets the writer end it when its queue is empty
// (endAfterFlush).
func (c *Conn) closeSocketAfterFlush() {
	c.wmu.Lock()
	c.closeAfterFlush = true
	busy := c.writing
	c.wmu.Unlock()
	if !busy {
		c.endAfterFlush()
	}
}

// writePass is one fan-out's writes to many connections, run in two
// steps so that frames queued for a connection by concurrent fan-outs leave
// in one sendmsg (write coalescing). First every frame is written: into the
// connection's output buffer where the pass takes the writer token (the
// connection joins owned, the token is kept), into pending where another
// writer has it. Then flush sends each owned connection's buffer once, with
// whatever other writers queued behind the pass's frame meanwhile.
// Nothing waits to be coalesced: the flush follows the last write of the
// pass at once, and a connection whose token was taken is flushed by its
// owner as always. A pass is used by one goroutine.
type writePass struct {
	owned []*Conn
}

var passPool = sync.Pool{New: func() any { return &writePass{owned: make([]*Conn, 0, fanOutChunk)} }}

func getPass() *writePass { return passPool.Get().(*writePass) }

// flush sends what the pass wrote and gives its tokens back (flushQueued),
// then returns the pass to its pool.
func (p *writePass) flush() {
	for _, c := range p.owned {
		c.flushQueued()
	}
	clear(p.owned)
	p.owned = p.owned[:0]
	passPool.Put(p)
}
