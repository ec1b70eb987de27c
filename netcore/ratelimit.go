package netcore

import (
	"net/netip"
	"sync"
	"time"
)

// Rate limiting (DESIGN.md "Client side", CONVENTIONS.md C9):
//
//   - connections per client IP: a GCRA bucket per IP, checked before the
//     upgrade (429 + Retry-After);
//   - messages per connection: a GCRA bucket inline in the Conn, checked by
//     the reader for every message (an error reply with retryAfterMs);
//   - escalation: a connection with more than BanAfter limited messages in
//     one BanWindow is closed with 1008 and its IP (or its user, when
//     authenticated) is banned; each repeat doubles the ban up to BanMax,
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
func (g *gcra) allow(now int64) (ok bool, retryAfter time.Duration) {
	if g.interval == 0 {
		return true, 0
	}
	tat := g.tat
	if tat < now {
		tat = now
	}
	if earliest := tat - g.burst + g.interval; now < earliest {
		return false, time.Duration(earliest - now)
	}
	g.tat = tat + g.interval
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

// ipLimiter holds the per-IP connection buckets and the bans.
type ipLimiter struct {
	shards [16]ipShard
}

type ipShard struct {
	mu      sync.Mutex
	buckets map[netip.Addr]*ipBucket
}

type ipBucket struct {
	g    gcra
	seen int64
}

func (l *ipLimiter) init() {
	for i := range l.shards {
		l.shards[i].buckets = make(map[netip.Addr]*ipBucket)
	}
}

func (l *ipLimiter) shard(ip netip.Addr) *ipShard {
	b := ip.As16()
	return &l.shards[(b[15]^b[14]^b[13])&15]
}

// allow charges one connection to ip.
func (l *ipLimiter) allow(ip netip.Addr, limit int, window time.Duration, now int64) (bool, time.Duration) {
	if limit <= 0 {
		return true, 0
	}
	s := l.shard(ip)
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[ip]
	if b == nil {
		b = &ipBucket{g: newGCRA(limit, window)}
		s.buckets[ip] = b
	}
	b.seen = now
	return b.g.allow(now)
}

// expire forgets buckets untouched since before cutoff (called by the
// sweeper, so the map does not grow with every IP ever seen).
func (l *ipLimiter) expire(cutoff int64) {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for ip, b := range s.buckets {
			if b.seen < cutoff {
				delete(s.buckets, ip)
			}
		}
		s.mu.Unlock()
	}
}

// bans holds the escalating bans by key ("ip:1.2.3.4" or "user:alice").
type bans struct {
	mu sync.Mutex
	m  map[string]*ban
}

type ban struct {
	until       int64
	level       int
	lastOffence int64
}

// BanPolicy configures escalation. Zero fields take the defaults of Config.
type banPolicy struct {
	base, max, decay time.Duration
}

// offend records an offence by key at now and returns the ban length.
func (b *bans) offend(key string, now int64, p banPolicy) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = make(map[string]*ban)
	}
	e := b.m[key]
	if e == nil {
		e = &ban{}
		b.m[key] = e
	} else {
		e.level = decayedLevel(e, now, p)
		e.level++
	}
	d := p.base << e.level
	if d > p.max || d <= 0 {
		d = p.max
	}
	e.until = now + int64(d)
	e.lastOffence = now
	return d
}

// decayedLevel lowers the level by one for every decay period since the
// last offence.
func decayedLevel(e *ban, now int64, p banPolicy) int {
	if p.decay <= 0 {
		return e.level
	}
	quiet := now - e.lastOffence - (e.until - e.lastOffence)
	if quiet <= 0 {
		return e.level
	}
	lvl := e.level - int(quiet/int64(p.decay))
	if lvl < 0 {
		lvl = -1
	}
	return lvl
}

// banned reports whether key is banned at now and for how much longer.
func (b *bans) banned(key string, now int64) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.m[key]
	if e == nil || now >= e.until {
		return false, 0
	}
	return true, time.Duration(e.until - now)
}

// expire forgets entries whose level has decayed to nothing.
func (b *bans) expire(now int64, p banPolicy) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, e := range b.m {
		if now >= e.until && decayedLevel(e, now, p) < 0 {
			delete(b.m, k)
		}
	}
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
