package metrics

import (
	"sync/atomic"
	"time"
)

// Recorders of a shard: one per message kind, then the handshake.
const (
	recHandshake = int(numKinds)
	numRecorders = recHandshake + 1
)

// Shard is the hot-path recording surface. Every method is a few atomic adds
// on memory of this shard: no lock, no allocation (except once per latency
// octave and shard), no map lookup. All methods are safe for concurrent use;
// they are cheapest when one goroutine at a time writes a shard, which is why
// netcore keeps the shard of a connection (Metrics.Shard with the connection
// id) and records through it. A nil *Shard is valid and records nothing.
type Shard struct {
	_ [64]byte // keep the hot fields off the cache line of the previous allocation

	base time.Time // monotonic base of Nanotime, shared with the Metrics

	rec [numRecorders]recorder

	received      atomic.Uint64
	sent          atomic.Uint64
	bytesReceived atomic.Uint64
	bytesSent     atomic.Uint64
	dropped       atomic.Uint64
	errors        [numErrorCodes]atomic.Uint64
	rateLimited   [numScopes]atomic.Uint64

	_ [64]byte // and off the next allocation's
}

// Nanotime returns monotonic nanoseconds since the Metrics was created; the
// difference of two readings is the duration to pass to ObserveMessage and
// ObserveHandshake. It reads the monotonic clock only (time.Since on a base
// time), which costs about half of time.Now. A handler that processes
// several messages in a row can reuse the end reading of one message as the
// start of the next, so each message costs one clock read. A nil *Shard
// returns 0.
func (s *Shard) Nanotime() int64 {
	if s == nil {
		return 0
	}
	return int64(time.Since(s.base))
}

// ObserveMessage records how long handling one message of kind k took. An
// out-of-range k is recorded as KindInvalid.
func (s *Shard) ObserveMessage(k Kind, d time.Duration) {
	if s == nil {
		return
	}
	if k >= numKinds {
		k = KindInvalid
	}
	s.rec[k].record(int64(d))
}

// ObserveHandshake records how long a WebSocket upgrade took, from accepting
// the TCP connection to the end of the upgrade response.
func (s *Shard) ObserveHandshake(d time.Duration) {
	if s == nil {
		return
	}
	s.rec[recHandshake].record(int64(d))
}

// MessageReceived counts one message received from a client, of the given
// payload size in bytes.
func (s *Shard) MessageReceived(bytes int) {
	if s == nil {
		return
	}
	s.received.Add(1)
	s.bytesReceived.Add(uint64(bytes))
}

// MessagesSent counts n messages sent to clients, of bytes payload bytes in
// all: a fan-out to 500 members is one call with n = 500.
func (s *Shard) MessagesSent(n, bytes int) {
	if s == nil {
		return
	}
	s.sent.Add(uint64(n))
	s.bytesSent.Add(uint64(bytes))
}

// MessagesDropped counts n outbound messages dropped because the receiving
// connection was too slow.
func (s *Shard) MessagesDropped(n int) {
	if s == nil {
		return
	}
	s.dropped.Add(uint64(n))
}

// MessageError counts one error reply with code c. An out-of-range c is
// counted as ErrInternal.
func (s *Shard) MessageError(c ErrorCode) {
	if s == nil {
		return
	}
	if c >= numErrorCodes {
		c = ErrInternal
	}
	s.errors[c].Add(1)
}

// RateLimited counts one request refused by a rate limit of scope sc. An
// out-of-range sc is counted as ScopeConnection.
func (s *Shard) RateLimited(sc Scope) {
	if s == nil {
		return
	}
	if sc >= numScopes {
		sc = ScopeConnection
	}
	s.rateLimited[sc].Add(1)
}
