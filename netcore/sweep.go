package netcore

import (
	"time"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/metrics"
)

// The sweeper: one goroutine per server that advances the coarse clock and
// enforces every per-connection deadline (handshake, idle, ping, close) by
// walking the registry, so that no connection needs a timer of its own.

// sweepTick is how often the sweeper runs: a quarter of the shortest
// deadline it enforces, between 10 ms and 500 ms.
func (s *Server) sweepTick() time.Duration {
	d := 500 * time.Millisecond
	for _, v := range []time.Duration{s.cfg.HandshakeTimeout, s.cfg.IdleTimeout, s.cfg.PingInterval, s.cfg.CloseTimeout} {
		if v > 0 && v/4 < d {
			d = v / 4
		}
	}
	if d < 10*time.Millisecond {
		d = 10 * time.Millisecond
	}
	return d
}

func (s *Server) sweep() {
	defer s.wg.Done()
	t := time.NewTicker(s.sweepTick())
	defer t.Stop()
	var batch, pending []*Conn
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			mono := int64(now.Sub(s.base)) // the ticker's time is monotonic
			s.clock.Store(mono)
			// The heartbeat goes through the runner that serves connections,
			// so it stops when the runner cannot schedule work.
			taskRunner.run(s.beatFn)
			// Near the descriptor limit the oldest handshakes are shed
			// (pending.go): collect them on the way.
			pressure := s.underPressure()
			for i := range s.reg.shards {
				batch = s.reg.snapshotShard(i, batch[:0])
				for _, c := range batch {
					s.sweepConn(c, mono)
					if pressure && c.state.Load() == stateHandshake {
						pending = append(pending, c)
					}
				}
			}
			if pressure {
				if n := s.shedPending(pending); n > 0 {
					s.log.Warn("near the open-file limit: closed the oldest connections still in the handshake", "closed", n, "limit", s.fdLimit)
				}
			}
			clear(batch)
			clear(pending)
			pending = pending[:0]
		}
	}
}

// sweepConn applies the deadlines to one connection.
func (s *Server) sweepConn(c *Conn, now int64) {
	switch c.state.Load() {
	case stateHandshake:
		if now-c.connectedAt.Load() > int64(s.cfg.HandshakeTimeout) { // accepted at
			s.stats.rejected.Add(1)
			s.metrics.ConnectionRejected(metrics.RejectHandshake)
			_ = c.nc.Close()
		}
	case stateOpen:
		if s.cfg.IdleTimeout > 0 && now-c.lastActivity.Load() > int64(s.cfg.IdleTimeout) {
			c.setEndReason(metrics.ReasonIdleTimeout)
			c.sendClose(CloseNormal, "idle timeout", true, false)
			return
		}
		if s.cfg.PingInterval > 0 && now-c.lastPing.Load() >= int64(s.cfg.PingInterval) {
			c.lastPing.Store(now)
			_ = c.writeQueued(ws.OpPing, false, nil, true)
		}
	case stateClosing:
		// No close frame from the peer within CloseTimeout (or ours could
		// not even be flushed): stop waiting, linger in case it still reads.
		if by := c.closeBy.Load(); by != 0 && now > by {
			c.startLinger()
		}
	case stateLingering:
		if by := c.closeBy.Load(); by != 0 && now > by {
			_ = c.nc.Close()
		}
	}
}

// LastHeartbeat returns when the engine last proved it can run connection
// work: the sweeper submits a task to the connection runner every tick and
// the task records the time. A heartbeat older than a few ticks means the
// engine is stalled (what /livez reports). Zero before Serve.
func (s *Server) LastHeartbeat() time.Time {
	if ns := s.heartbeat.Load(); ns != 0 {
		return s.wall(ns)
	}
	return time.Time{}
}

// SweepInterval is the sweeper's tick, the heartbeat's period.
func (s *Server) SweepInterval() time.Duration { return s.sweepTick() }
