package protocol

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

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
	// share, when set, is told of every ban that begins or doubles.
	share atomic.Pointer[BanShare]
}

// BanShare shares this node's bans with other nodes (the cluster
// backplane: control/cluster.Node). ShareBan is called on the goroutine
// of the offence, after the ban is in force here, when an offence bans key
// for d at level (a new ban or a doubled one; an offence during a ban is
// not one). It must not block.
type BanShare interface {
	ShareBan(key string, d time.Duration, level int)
}

// SetBanShare sets where the bans of this node are shared (nil: nowhere,
// the default). Admission never waits on it: a ban from elsewhere arrives
// through ImportBan and is checked locally like one of this node.
func (svc *Service) SetBanShare(b BanShare) {
	if b == nil {
		svc.bans.share.Store(nil)
		return
	}
	svc.bans.share.Store(&b)
}

// ImportBan applies a ban of another node: key ("ip:..." or "user:...")
// banned for d from now, at escalation level. A ban in force here that
// ends later is kept; the higher level is kept. It is not shared again.
func (svc *Service) ImportBan(key string, d time.Duration, level int) {
	if d <= 0 {
		return
	}
	svc.bans.impose(key, svc.mono()+int64(d), level)
}

func (b *bans) impose(key string, until int64, level int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = make(map[string]*ban)
	}
	e := b.m[key]
	if e == nil {
		e = &ban{}
		b.m[key] = e
	}
	e.until = max(e.until, until)
	e.level = max(e.level, level)
}

// ban is one key's escalation: banned until until (unix nanoseconds), for
// base << level.
type ban struct {
	until int64
	level int
}

// BanPolicy configures escalation. Zero fields take the defaults of Config.
type banPolicy struct {
	base, max, decay time.Duration
}

// offend records an offence by key at now and returns how long the key is
// banned from now on.
//
// Escalation counts offences, not connections: the connections that were
// open when a ban began go on offending until each is closed (a flood from
// twenty sockets is twenty offences within milliseconds), and those belong
// to the ban already in force. So an offence while the key is banned
// neither doubles the ban nor extends it; it returns the time left. Only a
// repeat after the ban has run out doubles it (up to p.max), less one
// doubling per p.decay of quiet time since the ban ended.
func (b *bans) offend(key string, now int64, p banPolicy) time.Duration {
	d, level, fresh := b.escalate(key, now, p)
	if sh := b.share.Load(); sh != nil && fresh {
		(*sh).ShareBan(key, d, level)
	}
	return d
}

// escalate is offend under the lock; fresh says the ban began or doubled.
func (b *bans) escalate(key string, now int64, p banPolicy) (time.Duration, int, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = make(map[string]*ban)
	}
	e := b.m[key]
	switch {
	case e == nil:
		e = &ban{}
		b.m[key] = e
	case now < e.until:
		return time.Duration(e.until - now), e.level, false
	default:
		e.level = decayedLevel(e, now, p)
		e.level++
	}
	d := p.base << e.level
	if d > p.max || d <= 0 {
		d = p.max
	}
	e.until = now + int64(d)
	return d, e.level, true
}

// decayedLevel lowers the level by one for every decay period of quiet time
// since the ban ended (offences while banned do not reset it: they are not
// counted at all).
func decayedLevel(e *ban, now int64, p banPolicy) int {
	if p.decay <= 0 {
		return e.level
	}
	quiet := now - e.until
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
