package protocol

import (
	"sync"
	"time"
)

// Rate limiting:
//
//   - connections per client IP: a GCRA bucket per IP, checked before the
//     upgrade (429 + Retry-After), in Admit;
//   - messages per connection: a GCRA bucket in the session, checked by
//     the reader for every message (an error reply with retryAfterMs);
//   - escalation: a connection with more than BanAfter limited messages in
//     one BanWindow is closed with 1008 and its IP (or its user, when
//     authenticated) is banned (bans.go); each repeat doubles the ban up to BanMax,
//     and the level decays by one for every BanDecay without an offence.
//
// GCRA ("generic cell rate algorithm") keeps one timestamp per bucket: the
// theoretical arrival time tat. A request at now passes when
// now >= tat - burst*interval, and then tat = max(tat, now) + interval.

// gcra is a rate limiter of limit events per window with bursts of up to
// limit events. The zero value allows everything. Not safe for concurrent
// use.
type gcra struct {
	interval int64 // window / limit, in nanoseconds; 0 means unlimited
	burst    int64 // interval * limit
	tat      int64
}

func newGCRA(limit int, window time.Duration) gcra {
	if limit <= 0 || window <= 0 {
		return gcra{}
	}
	iv := int64(window) / int64(limit)
	if iv < 1 {
		iv = 1
	}
	return gcra{interval: iv, burst: iv * int64(limit)}
}

// allow reports whether an event at now passes, and if not, how long until
// one would.
func (g *gcra) allow(now int64) (ok bool, retryAfter time.Duration) { return g.allowN(now, 1) }

// allowN is allow for an event that costs n (a message of n bytes against
// a byte rate). An event that costs more than the burst never passes.
func (g *gcra) allowN(now, n int64) (ok bool, retryAfter time.Duration) {
	if g.interval == 0 {
		return true, 0
	}
	tat := g.tat
	if tat < now {
		tat = now
	}
	inc := g.interval * n
	if earliest := tat - g.burst + inc; now < earliest {
		return false, time.Duration(earliest - now)
	}
	g.tat = tat + inc
	return true, 0
}

// RateLimit is a custom message rate for one user or one socket: Limit
// messages per Window. Exactly one of UserID and SocketID is set. A Limit of
// 0 removes the override.
type RateLimit struct {
	UserID   string
	SocketID uint64
	Limit    int
	Window   time.Duration
}

// overrides holds custom message limits by user and by socket.
type overrides struct {
	mu     sync.RWMutex
	users  map[string]RateLimit
	socket map[uint64]RateLimit
}

func (o *overrides) set(rl RateLimit) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.users == nil {
		o.users, o.socket = make(map[string]RateLimit), make(map[uint64]RateLimit)
	}
	switch {
	case rl.UserID != "" && rl.Limit > 0:
		o.users[rl.UserID] = rl
	case rl.UserID != "":
		delete(o.users, rl.UserID)
	case rl.Limit > 0:
		o.socket[rl.SocketID] = rl
	default:
		delete(o.socket, rl.SocketID)
	}
}

// lookup returns the override for a connection: socket first, then user.
func (o *overrides) lookup(socketID uint64, userID string) (RateLimit, bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if rl, ok := o.socket[socketID]; ok {
		return rl, true
	}
	if userID != "" {
		rl, ok := o.users[userID]
		return rl, ok
	}
	return RateLimit{}, false
}

func (o *overrides) forgetSocket(id uint64) {
	o.mu.Lock()
	delete(o.socket, id)
	o.mu.Unlock()
}

// list copies every override.
func (o *overrides) list() []RateLimit {
	o.mu.RLock()
	defer o.mu.RUnlock()
	out := make([]RateLimit, 0, len(o.users)+len(o.socket))
	for _, rl := range o.users {
		out = append(out, rl)
	}
	for _, rl := range o.socket {
		out = append(out, rl)
	}
	return out
}
