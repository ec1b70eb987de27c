package protocol

import (
	"errors"
	"strconv"
	"time"

	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/upstream"
)

// The rpc envelope: {"type":"rpc","id":5,"service":"ai","data":X} is sent to
// the named upstream through Config.RPC, and answered later with
// {"type":"rpc_result","id":5,"data":Y} (plus "fallback":true when the
// upstream's fallback answered) or an error reply. The reader never waits:
// the call runs on the upstream's workers and the answer goes through the
// connection's normal write path, whenever it comes. A connection may have
// Config.MaxRPCInFlight calls open; more get too_many_requests.

// RPC calls upstream services; *upstream.Set implements it. Call must not
// block, and must call done exactly once, on any goroutine (possibly before
// Call returns).
type RPC interface {
	Call(meta upstream.CallMeta, service string, data []byte, done func(upstream.Result))
}

var _ RPC = (*upstream.Set)(nil)

// Error codes of rpc replies, beside the ones of every reply.
const (
	CodeTimeout         = "timeout"
	CodeTooManyRequests = "too_many_requests"
)

// rpc starts a call. Its answer is written when it comes; the ack of the
// message itself is that answer.
func (s *session) rpc(e *envelope) error {
	if len(e.service) == 0 {
		return s.badMessage(e.id, `rpc needs "service"`)
	}
	svc := s.svc
	if svc.cfg.RPC == nil {
		return s.replyError(e.id, CodeNotFound, "no upstream service "+strconv.Quote(string(e.service))+" is configured", 0)
	}
	if n := s.rpcInFlight.Add(1); int(n) > svc.cfg.MaxRPCInFlight {
		s.rpcInFlight.Add(-1)
		return s.replyError(e.id, CodeTooManyRequests, "already "+strconv.Itoa(svc.cfg.MaxRPCInFlight)+" rpc calls in flight on this connection", 0)
	}
	data := e.data
	if !e.hasData {
		data = []byte("null")
	}
	// The id points into the read buffer; the answer comes later.
	call := &rpcCall{s: s, id: append([]byte(nil), e.id...)}
	svc.cfg.RPC.Call(upstream.CallMeta{UserID: s.c.UserID(), SocketID: strconv.FormatUint(s.c.ID(), 10)}, string(e.service), data, call.done)
	return nil
}

// rpcCall is one call in flight: what its answer needs.
type rpcCall struct {
	s  *session
	id []byte // raw JSON, copied; nil when the request had none
}

// done writes the answer. It may run on the reader (an answer known at
// once) or on an upstream worker, so it writes with WriteMessage, which is
// safe anywhere; on a closed connection the write is dropped.
func (rc *rpcCall) done(r upstream.Result) {
	s := rc.s
	defer s.rpcInFlight.Add(-1)
	if r.Err != nil {
		var retryMs int64
		if r.Err.RetryAfter > 0 {
			retryMs = int64((r.Err.RetryAfter + time.Millisecond - 1) / time.Millisecond)
		}
		_ = s.sendError(s.c.WriteMessage, rc.id, r.Err.Code, r.Err.Message, retryMs)
		return
	}
	buf := netcore.AcquireBuffer()
	b := append((*buf)[:0], `{"type":"rpc_result"`...)
	if rc.id != nil {
		b = append(b, `,"id":`...)
		b = append(b, rc.id...)
	}
	b = append(b, `,"data":`...)
	b = append(b, r.Data...)
	if r.Fallback {
		b = append(b, `,"fallback":true`...)
	}
	b = append(b, '}')
	*buf = b
	if err := s.c.WriteMessage(netcore.TextMessage, b); errors.Is(err, netcore.ErrMessageTooLarge) {
		// A fallback or reply over the client's message size (the upstream
		// caps replies at it, but the envelope adds a few bytes).
		_ = s.sendError(s.c.WriteMessage, rc.id, CodeTooLarge, "the reply is larger than the maximum message size", 0)
	}
	netcore.ReleaseBuffer(buf)
}
