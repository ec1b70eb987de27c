package netcore

import (
	"net/netip"
	"slices"
	"sync"
	"syscall"

	"github.com/sockmon/sockmon/metrics"
)

// Connections still in the handshake (accepted, not yet upgraded, refused
// or answered) hold a descriptor and cost nothing to open: without a cap,
// idle TCP connections would exhaust the process's descriptors within the
// handshake timeout, and then the control side could not accept a health
// check. So:
//
//   - at most Config.MaxPending of them at once, and Config.MaxPendingPerIP
//     from one peer address (a trusted proxy's is exempt: it carries many
//     clients); a new one over either cap is closed at once and counted as
//     a rejection (reason limit);
//   - when the process nears its descriptor limit (connections at 90 % of
//     RLIMIT_NOFILE less fdReserve, the descriptors it needs for the rest),
//     the sweeper closes the oldest ones until it is back under 80 %: an
//     attacker's idle sockets go first, new clients and health checks get
//     in.
//
// A connection leaves the count exactly once, with the state change out of
// handshake (upgraded, refused, answered, closed): endPending.

type pendingIPs struct {
	shards [16]pendingShard
}

type pendingShard struct {
	mu sync.Mutex
	m  map[netip.Addr]int32
}

func (p *pendingIPs) shard(ip netip.Addr) *pendingShard {
	b := ip.As16()
	return &p.shards[(b[15]^b[13]^b[11])&15]
}

// add counts one more pending connection from ip, unless that would pass
// limit.
func (p *pendingIPs) add(ip netip.Addr, limit int) bool {
	s := p.shard(ip)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[netip.Addr]int32)
	}
	if int(s.m[ip]) >= limit {
		return false
	}
	s.m[ip]++
	return true
}

func (p *pendingIPs) remove(ip netip.Addr) {
	s := p.shard(ip)
	s.mu.Lock()
	if s.m[ip]--; s.m[ip] <= 0 {
		delete(s.m, ip)
	}
	s.mu.Unlock()
}

// admitPending counts a newly accepted connection as pending, or reports
// that a cap refuses it. It runs on netpoll's poller: cheap, no I/O.
func (s *Server) admitPending(c *Conn, peer netip.Addr) bool {
	if s.pending.Add(1) > int64(s.cfg.MaxPending) {
		s.pending.Add(-1)
		return false
	}
	if peer.IsValid() && !InPrefixes(peer, s.cfg.TrustedProxies) {
		if !s.pendingIPs.add(peer, s.cfg.MaxPendingPerIP) {
			s.pending.Add(-1)
			return false
		}
		c.pendingByIP = true
	}
	return true
}

// endPending takes a connection out of the pending count; its caller moved
// the state out of stateHandshake, so it runs once per connection.
func (c *Conn) endPending() {
	s := c.srv
	s.pending.Add(-1)
	if c.pendingByIP {
		s.pendingIPs.remove(addrIP(c.nc.RemoteAddr()))
	}
}

// fdBudget is the descriptors left for client connections.
func (s *Server) fdBudget() int64 {
	return max(int64(s.fdLimit)-fdReserve, 1)
}

// underPressure reports connections past 90 % of the descriptor budget.
func (s *Server) underPressure() bool {
	return s.fdLimit > 0 && s.reg.count.Load() > s.fdBudget()*9/10
}

// refusePending closes a connection a pending cap refused.
func (s *Server) refusePending() {
	s.stats.rejected.Add(1)
	s.metrics.ConnectionRejected(metrics.RejectLimit)
}

// fdLimit returns the process's soft limit on open descriptors, or 0 when
// it cannot be read or is unlimited.
func fdLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > 1<<40 {
		return 0
	}
	return r.Cur
}

// shedPending closes the oldest pending connections of batch (the
// sweeper's copy of one registry shard at a time is not enough to find the
// oldest overall, so it collects them) while the registry holds more than
// 80 % of the descriptor limit. It runs on the sweeper once the count
// passed 90 %.
func (s *Server) shedPending(pending []*Conn) int {
	slices.SortFunc(pending, func(a, b *Conn) int { return int(a.connectedAt.Load() - b.connectedAt.Load()) })
	target := s.fdBudget() * 8 / 10
	n := 0
	for _, c := range pending {
		if s.reg.count.Load() <= target {
			break
		}
		if c.state.Load() == stateHandshake {
			s.stats.rejected.Add(1)
			s.metrics.ConnectionRejected(metrics.RejectLimit)
			_ = c.nc.Close()
			n++
		}
	}
	return n
}
