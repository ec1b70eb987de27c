package netcore

import (
	"sync"
	"sync/atomic"
)

// registryShards spreads connections over independently locked maps so that
// connects and disconnects on different cores rarely meet. A power of two.
const registryShards = 64

// registry holds every accepted connection by socket id. The per-message path
// never touches it: it is used on connect, disconnect, by the sweeper and by
// snapshot readers.
type registry struct {
	nextID atomic.Uint64
	count  atomic.Int64 // accepted, not yet closed (handshaking included)
	shards [registryShards]registryShard
}

type registryShard struct {
	mu sync.RWMutex
	m  map[uint64]*Conn
	_  [40]byte // keep neighbouring shard locks off one cache line
}

func (r *registry) init() {
	for i := range r.shards {
		r.shards[i].m = make(map[uint64]*Conn)
	}
}

// newID returns a process-unique socket id (never 0).
func (r *registry) newID() uint64 { return r.nextID.Add(1) }

func (r *registry) add(c *Conn) {
	s := &r.shards[c.id&(registryShards-1)]
	s.mu.Lock()
	s.m[c.id] = c
	s.mu.Unlock()
	r.count.Add(1)
}

func (r *registry) remove(c *Conn) {
	s := &r.shards[c.id&(registryShards-1)]
	s.mu.Lock()
	_, ok := s.m[c.id]
	delete(s.m, c.id)
	s.mu.Unlock()
	if ok {
		r.count.Add(-1)
	}
}

func (r *registry) get(id uint64) *Conn {
	s := &r.shards[id&(registryShards-1)]
	s.mu.RLock()
	c := s.m[id]
	s.mu.RUnlock()
	return c
}

// each calls f for every connection, one shard at a time. f runs under the
// shard's read lock: it must not block, and must not close a connection
// (netpoll runs the close callback, which removes it from the registry,
// synchronously: a deadlock). Use snapshotShard to act on connections.
func (r *registry) each(f func(c *Conn)) {
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		for _, c := range s.m {
			f(c)
		}
		s.mu.RUnlock()
	}
}

// snapshot copies the connections out of one shard (to act on them without
// holding its lock).
func (r *registry) snapshotShard(i int, dst []*Conn) []*Conn {
	s := &r.shards[i]
	s.mu.RLock()
	for _, c := range s.m {
		dst = append(dst, c)
	}
	s.mu.RUnlock()
	return dst
}
