package netcore

import (
	"bytes"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cloudwego/netpoll"
	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore/wsproto"
)

// The read path: netpoll calls onRequest when a connection has input, on
// the poller itself when the input is whole frames (inline.go), on a pooled
// goroutine otherwise, and keeps calling while input remains. This is the
// per-connection hot loop; it is long on purpose, so that one frame is read,
// checked and dispatched without indirection.

// errPeerGone stops reading when the socket closed under the reader.
var errPeerGone = errors.New("netcore: peer gone")

// serveHandshake reads the upgrade request head, up to MaxHeaderBytes, and
// answers it. A client that sends less than a full head blocks this
// goroutine until more arrives or the sweeper drops it at HandshakeTimeout.
func (c *Conn) serveHandshake() {
	s := c.srv
	r := c.nc.Reader()
	if s.cfg.ProxyProtocol != ProxyOff && !c.proxyDone && !c.readProxyHeader(r) {
		return
	}
	searched := 0
	for {
		n := r.Len()
		p, err := r.Peek(n)
		if err != nil {
			_ = c.nc.Close()
			return
		}
		from := searched - 3
		if from < 0 {
			from = 0
		}
		end := -1
		if i := bytes.Index(p[from:], []byte("\r\n\r\n")); i >= 0 {
			end = from + i + 4
		}
		if end > s.cfg.MaxHeaderBytes || (end < 0 && n >= s.cfg.MaxHeaderBytes) {
			c.refuse(&HandshakeError{Status: http.StatusRequestHeaderFieldsTooLarge,
				Reason: "request head over " + strconv.Itoa(s.cfg.MaxHeaderBytes) + " bytes", RejectReason: metrics.RejectHandshake})
			c.discardInput()
			return
		}
		if end >= 0 {
			c.upgrade(p[:end])
			_ = r.Skip(end)
			_ = r.Release()
			return
		}
		searched = n
		if _, err := r.Peek(n + 1); err != nil {
			_ = c.nc.Close()
			return
		}
	}
}

// upgrade validates the request head and answers 101 or an error status.
func (c *Conn) upgrade(head []byte) {
	s := c.srv
	var req Request
	if rerr := wsproto.ParseRequest(head, &req); rerr != nil {
		c.refuse(badHandshake(rerr))
		return
	}
	if h := s.httpRoutes[req.Path]; h != nil && !req.UpgradeWebSocket {
		c.answerHTTP(&req, h)
		return
	}
	if rerr := wsproto.CheckUpgrade(&req); rerr != nil {
		c.refuse(badHandshake(rerr))
		return
	}
	rt := s.route(req.Path)
	if rt == nil {
		c.refuse(&HandshakeError{Status: http.StatusNotFound, Reason: "no WebSocket endpoint at " + strconv.Quote(req.Path), RejectReason: metrics.RejectHandshake})
		return
	}
	var peer netip.Addr // the client, as the balancer's PROXY header names it
	if c.rd != nil {
		peer = c.rd.proxyIP
	}
	if !peer.IsValid() {
		peer = addrIP(c.nc.RemoteAddr())
	}
	adm, herr := rt.Admitter.Admit(&req, peer)
	if herr != nil {
		c.refuse(herr)
		return
	}
	if !adm.ClientIP.IsValid() {
		adm.ClientIP = peer
	}
	if s.maintenance.Load() != nil {
		c.refuse(&HandshakeError{Status: http.StatusServiceUnavailable, Reason: "server in maintenance",
			Header: RetryAfter(maintenanceRetry), RejectReason: metrics.RejectMaintenance})
		return
	}
	if s.shed.Load() != nil {
		c.refuse(&HandshakeError{Status: http.StatusServiceUnavailable, Reason: "server is shedding load",
			Header: RetryAfter(shedRetry), RejectReason: metrics.RejectShed})
		return
	}
	if s.draining.Load() {
		c.refuse(&HandshakeError{Status: http.StatusServiceUnavailable, Reason: "server is draining",
			Header: RetryAfter(drainRetry), RejectReason: metrics.RejectDraining})
		return
	}
	if s.upgraded.Add(1) > int64(s.cfg.MaxConns) {
		s.upgraded.Add(-1)
		c.refuse(&HandshakeError{Status: http.StatusServiceUnavailable, Reason: "connection limit reached",
			Header: RetryAfter(drainRetry), RejectReason: metrics.RejectLimit})
		return
	}
	ext := ""
	if !s.cfg.DisableCompression {
		ext = wsproto.NegotiateDeflate(&req)
	}
	c.deflate = ext != ""
	c.userID, c.authenticated, c.ip = adm.UserID, adm.Authenticated, adm.ClientIP
	// The 101 goes into the buffer under the writer token, and is sent
	// once the connection is open and counted: a client that has its 101
	// finds itself in every listing, and a frame another goroutine writes
	// as soon as the state says open queues behind the 101.
	c.beginBatch()
	buf := getBuffer()
	*buf = wsproto.AppendSwitching((*buf)[:0], req.Key, ext)
	dst, err := c.nc.Writer().Malloc(len(*buf))
	if err == nil {
		copy(dst, *buf)
	}
	putBuffer(buf)
	if err != nil {
		c.inBatch = false
		c.releaseToken()
		s.upgraded.Add(-1)
		_ = c.nc.Close()
		return
	}
	now := s.mono()
	acceptedAt := c.connectedAt.Swap(now)
	c.lastActivity.Store(now)
	c.lastPing.Store(now)
	// The session exists before the state says open, so that the close
	// callback, which acts only on open connections, always finds it.
	c.sess = rt.Handler.Open(c, &req)
	if c.state.CompareAndSwap(stateHandshake, stateOpen) {
		c.endPending()
	} else {
		// Swept at the handshake deadline while we were answering.
		c.endBatch()
		s.upgraded.Add(-1)
		c.sess.Closed(DisconnectEvent{Info: c.Info(), Code: ws.StatusAbnormalClosure, Initiator: InitiatorServer})
		return
	}
	s.stats.accepted.Add(1)
	s.metrics.ConnectionOpened(c.auth())
	c.endBatch()
	c.shard.ObserveHandshake(time.Duration(now - acceptedAt))
	for _, f := range s.hooks.connect {
		f(ConnectEvent{Conn: c, Request: &req})
	}
}

// refuse answers the handshake with an HTTP error and, once the answer is
// flushed, starts the lingering close (so a client still sending its
// request gets the answer, not a reset).
func (c *Conn) refuse(e *HandshakeError) {
	c.srv.stats.rejected.Add(1)
	c.srv.metrics.ConnectionRejected(e.RejectReason)
	c.readDone = true
	buf := getBuffer()
	*buf = wsproto.AppendRefusal((*buf)[:0], e.Status, e.Reason, e.Header)
	w := c.nc.Writer()
	dst, err := w.Malloc(len(*buf))
	if err == nil {
		copy(dst, *buf)
		err = w.Flush()
	}
	putBuffer(buf)
	if err != nil {
		_ = c.nc.Close()
		return
	}
	c.startLinger()
}

// discardInput drops whatever the peer sends after we stopped listening,
// and ends a lingering close that has dropped Config.LingerBytes.
func (c *Conn) discardInput() {
	r := c.nc.Reader()
	if n := r.Len(); n > 0 {
		_ = r.Skip(n)
		c.rare().dropped += n
	}
	_ = r.Release()
	if c.rd != nil && c.rd.dropped > c.srv.cfg.LingerBytes && c.state.Load() == stateLingering {
		_ = c.nc.Close()
	}
}

// serveFrames reads and handles every complete frame in the buffer, then
// flushes the replies once.
func (c *Conn) serveFrames() {
	if c.readDone {
		c.discardInput()
		return
	}
	r := c.nc.Reader()
	c.lastActivity.Store(c.srv.now())
	c.clock = c.shard.Nanotime()
	c.beginBatch()
	for r.Len() > 0 {
		if err := c.readFrame(r); err != nil {
			c.readFailed(err)
			break
		}
		if c.readDone {
			break
		}
	}
	if c.readDone {
		c.discardInput()
	}
	_ = r.Release()
	c.endBatch()
}

// readFailed ends reading after err: a *CloseError is answered with its
// close frame, then the socket is closed.
func (c *Conn) readFailed(err error) {
	c.readDone = true
	var ce *CloseError
	if errors.As(err, &ce) {
		c.errs.Add(1)
		if ce.Code == CloseProtocolError || ce.Code == CloseInvalidPayload || ce.Code == CloseTooBig {
			c.srv.stats.protocolErrs.Add(1)
		}
		c.sendClose(ce.Code, ce.Reason, true, true)
		return
	}
	_ = c.nc.Close()
}

// peek returns the first n bytes of input, waiting for them if needed.
// Before it waits, it flushes the batch so that replies (and broadcasts
// queued meanwhile) do not wait for a slow sender's next bytes.
func (c *Conn) peek(r netpoll.Reader, n int) ([]byte, error) {
	if r.Len() < n && c.inBatch {
		c.endBatch()
		defer c.beginBatch()
	}
	p, err := r.Peek(n)
	if err != nil {
		return nil, errPeerGone
	}
	return p, nil
}

// readFrame reads, checks and handles one frame.
func (c *Conn) readFrame(r netpoll.Reader) error {
	p, err := c.peek(r, 2)
	if err != nil {
		return err
	}
	hl := wsproto.HeaderLen(p[0], p[1])
	if p, err = c.peek(r, hl); err != nil {
		return err
	}
	h, _, err := wsproto.ParseHeader(p)
	if err != nil {
		return closeErr(CloseProtocolError, err.Error())
	}
	if err := c.checkHeader(h); err != nil {
		return err
	}
	n := hl + int(h.Length)
	if p, err = c.peek(r, n); err != nil {
		return err
	}
	payload := p[hl:n]
	ws.Cipher(payload, h.Mask, 0)
	err = c.handleFrame(h, payload)
	_ = r.Skip(n)
	_ = r.Release()
	return err
}

// checkHeader applies RFC 6455's rules that a header alone can break.
func (c *Conn) checkHeader(h ws.Header) error {
	if !h.Masked {
		return closeErr(CloseProtocolError, "client frames must be masked")
	}
	if h.OpCode.IsReserved() {
		return closeErr(CloseProtocolError, "reserved opcode "+strconv.Itoa(int(h.OpCode)))
	}
	if h.Rsv&^0x4 != 0 {
		return closeErr(CloseProtocolError, "reserved bits RSV2/RSV3 set")
	}
	if h.Rsv1() && (!c.deflate || h.OpCode == ws.OpContinuation || h.OpCode.IsControl()) {
		return closeErr(CloseProtocolError, "RSV1 set without a negotiated extension that defines it")
	}
	if h.OpCode.IsControl() {
		if !h.Fin {
			return closeErr(CloseProtocolError, "fragmented control frame")
		}
		if h.Length > ws.MaxControlFramePayloadSize {
			return closeErr(CloseProtocolError, "control frame payload over 125 bytes")
		}
		return nil
	}
	var msgOp ws.OpCode
	var msgLen int
	if c.rd != nil {
		msgOp, msgLen = c.rd.msgOp, len(c.rd.msgBuf)
	}
	if h.OpCode == ws.OpContinuation && msgOp == 0 {
		return closeErr(CloseProtocolError, "continuation frame without a message in progress")
	}
	if h.OpCode != ws.OpContinuation && msgOp != 0 {
		return closeErr(CloseProtocolError, "new data frame while a fragmented message is in progress")
	}
	if h.Length > int64(c.srv.cfg.MaxMessageSize-msgLen) {
		return closeErr(CloseTooBig, "message over "+strconv.Itoa(c.srv.cfg.MaxMessageSize)+" bytes")
	}
	return nil
}

// handleFrame acts on one checked, unmasked frame.
func (c *Conn) handleFrame(h ws.Header, payload []byte) error {
	c.bytesIn.Add(uint64(len(payload)))
	switch h.OpCode {
	case ws.OpPing:
		if c.state.Load() == stateOpen {
			return c.writeControlFromReader(ws.OpPong, payload)
		}
		return nil
	case ws.OpPong:
		return nil
	case ws.OpClose:
		return c.handleClose(payload)
	}
	if c.state.Load() != stateOpen {
		// Closing: data after our close frame is read and dropped.
		return nil
	}
	if h.OpCode != ws.OpContinuation {
		if h.Fin {
			// The common case: a whole message in one frame, handled in
			// place in netpoll's buffer.
			return c.dispatch(h.OpCode, h.Rsv1(), payload)
		}
		rd := c.rare()
		rd.msgOp = h.OpCode
		rd.msgDeflate = h.Rsv1()
		if rd.msgBuf == nil {
			rd.msgBuf = (*getBuffer())[:0]
		}
	}
	rd := c.rd // set: checkHeader let a continuation through only with a message in progress
	if rd.msgOp == ws.OpText && !rd.msgDeflate && !rd.utf8.Feed(payload) {
		return closeErr(CloseInvalidPayload, "invalid UTF-8 in text message")
	}
	rd.msgBuf = append(rd.msgBuf, payload...)
	if !h.Fin {
		return nil
	}
	op, deflated, msg := rd.msgOp, rd.msgDeflate, rd.msgBuf
	rd.msgOp, rd.msgDeflate = 0, false
	if op == ws.OpText && !deflated && !rd.utf8.Done() {
		return closeErr(CloseInvalidPayload, "text message ends inside a UTF-8 sequence")
	}
	err := c.dispatch(op, deflated, msg)
	b := rd.msgBuf[:0]
	rd.msgBuf = nil
	putBuffer(&b)
	return err
}

// dispatch hands a complete message to the handler.
func (c *Conn) dispatch(op ws.OpCode, deflated bool, msg []byte) error {
	if deflated {
		buf := getBuffer()
		out, err := wsproto.Inflate((*buf)[:0], msg, c.srv.cfg.MaxMessageSize)
		*buf = out
		defer putBuffer(buf)
		if errors.Is(err, wsproto.ErrInflatedTooLarge) {
			return closeErr(CloseTooBig, "inflated message over "+strconv.Itoa(c.srv.cfg.MaxMessageSize)+" bytes")
		}
		if err != nil {
			return closeErr(CloseProtocolError, "bad deflate data")
		}
		msg = out
	}
	if op == ws.OpText && (deflated || c.rd == nil || c.rd.msgBuf == nil) && !utf8.Valid(msg) {
		return closeErr(CloseInvalidPayload, "invalid UTF-8 in text message")
	}
	c.msgsIn.Add(1)
	c.kind = metrics.KindEcho
	if op == ws.OpBinary {
		c.kind = metrics.KindBinary
	}
	err := c.sess.HandleMessage(MessageType(op), msg)
	// The reading that ends this message starts the next one of the batch.
	start := c.clock
	c.clock = c.shard.Nanotime()
	c.heavy = time.Duration(c.clock-start) > heavyMessage
	c.shard.ObserveMessage(c.kind, time.Duration(c.clock-start))
	c.shard.MessageReceived(len(msg))
	for _, f := range c.srv.hooks.message {
		f(MessageEvent{Conn: c, Type: MessageType(op), Size: len(msg), Duration: time.Duration(c.clock - start)})
	}
	if err != nil {
		var ce *CloseError
		if errors.As(err, &ce) {
			return ce
		}
		c.srv.log.Error("message handler failed", "socket", c.id, "err", err)
		return closeErr(CloseInternal, "internal error")
	}
	return nil
}

// handleClose answers the peer's close frame (RFC 6455 section 5.5.1).
func (c *Conn) handleClose(payload []byte) error {
	c.readDone = true
	c.closeSeen.Store(true)
	c.closedByPeer.Store(c.state.Load() == stateOpen)
	if len(payload) == 1 {
		return closeErr(CloseProtocolError, "close frame with a 1-byte payload")
	}
	code := ws.StatusCode(0)
	if len(payload) >= 2 {
		code, _ = ws.ParseCloseFrameDataUnsafe(payload)
		if !wsproto.ValidReceivedCloseCode(code) {
			return closeErr(CloseProtocolError, "invalid close code "+strconv.Itoa(int(code)))
		}
		if !utf8.Valid(payload[2:]) {
			return closeErr(CloseInvalidPayload, "close reason is not valid UTF-8")
		}
	}
	if code == 0 {
		code = CloseNormal
	}
	c.sendClose(code, "", true, true)
	return nil
}

// writeControlFromReader writes a control frame from the reader goroutine:
// into the batch when it holds the token, queued otherwise.
func (c *Conn) writeControlFromReader(op ws.OpCode, payload []byte) error {
	if c.inBatch {
		return c.writeDirect(op, false, payload)
	}
	return c.writeQueued(op, false, payload, true)
}
