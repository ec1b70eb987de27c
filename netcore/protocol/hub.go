package protocol

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/sockmon/sockmon/netcore"
)

// The hub: rooms by name, spread over independently locked shards. A
// publish copies the member list under the room's read lock and writes
// outside any lock; the frame is encoded once for every member.
//
// Lock order: session.mu, then hubShard.mu, then room.mu. No engine lock is
// held with any of them (a fan-out writes after the member list is copied).
// The broker's Subscribe and Unsubscribe run under hubShard.mu when a room
// is created and deleted, so they see a room's first join and last leave
// in order; they take only the broker's leaf lock.

const hubShards = 64

type hub struct {
	seed   maphash.Seed
	shards [hubShards]hubShard
	broker netcore.Broker // told of each room's first join and last leave
}

type hubShard struct {
	mu    sync.RWMutex
	rooms map[string]*room
}

type room struct {
	mu      sync.RWMutex
	members map[*netcore.Conn]struct{}

	pubMu sync.Mutex // guards pub; taken per publish, never with mu
	pub   gcra       // the room's publish rate (Config.RoomPublishRate)
}

// init readies the hub with the in-process broker (Service.UseBroker
// replaces it before anyone joins).
func (h *hub) init() {
	h.seed = maphash.MakeSeed()
	h.broker = netcore.LocalBroker{}
	for i := range h.shards {
		h.shards[i].rooms = make(map[string]*room)
	}
}

func (h *hub) shard(name []byte) *hubShard {
	return &h.shards[maphash.Bytes(h.seed, name)&(hubShards-1)]
}

// join adds c to the room, creating it. It reports whether c was not yet a
// member.
func (h *hub) join(name string, c *netcore.Conn) bool {
	s := h.shard([]byte(name))
	s.mu.Lock()
	r := s.rooms[name]
	if r == nil {
		r = &room{members: make(map[*netcore.Conn]struct{})}
		s.rooms[name] = r
		h.broker.Subscribe(name)
	}
	r.mu.Lock()
	_, had := r.members[c]
	r.members[c] = struct{}{}
	r.mu.Unlock()
	s.mu.Unlock()
	return !had
}

// leave removes c from the room and deletes the room when it empties.
func (h *hub) leave(name string, c *netcore.Conn) bool {
	s := h.shard([]byte(name))
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[name]
	if r == nil {
		return false
	}
	r.mu.Lock()
	_, had := r.members[c]
	delete(r.members, c)
	empty := len(r.members) == 0
	r.mu.Unlock()
	if empty {
		delete(s.rooms, name)
		h.broker.Unsubscribe(name)
	}
	return had
}

// members appends the room's members to dst.
func (h *hub) members(name []byte, dst []*netcore.Conn) []*netcore.Conn {
	s := h.shard(name)
	s.mu.RLock()
	r := s.rooms[string(name)]
	s.mu.RUnlock()
	if r == nil {
		return dst
	}
	r.mu.RLock()
	for c := range r.members {
		dst = append(dst, c)
	}
	r.mu.RUnlock()
	return dst
}

// RoomInfo is a room's name and size.
type RoomInfo struct {
	Name    string
	Members int
}

// rooms lists every room.
func (h *hub) rooms() []RoomInfo {
	var out []RoomInfo
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		for name, r := range s.rooms {
			r.mu.RLock()
			out = append(out, RoomInfo{Name: name, Members: len(r.members)})
			r.mu.RUnlock()
		}
		s.mu.RUnlock()
	}
	return out
}

// connSlices recycles member lists of publishes.
var connSlices = sync.Pool{New: func() any { s := make([]*netcore.Conn, 0, 256); return &s }}

// allowPublish charges one publish to the room's rate (a fresh room's
// bucket comes from limit). A room with no members takes anything: the
// publish reaches nobody.
func (h *hub) allowPublish(name []byte, now int64, limit func() gcra) (bool, time.Duration) {
	s := h.shard(name)
	s.mu.RLock()
	r := s.rooms[string(name)]
	s.mu.RUnlock()
	if r == nil {
		return true, 0
	}
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	if r.pub.interval == 0 && r.pub.burst == 0 {
		r.pub = limit()
	}
	return r.pub.allow(now)
}
