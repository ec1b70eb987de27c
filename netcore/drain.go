package netcore

import (
	"context"
	"time"

	"github.com/gobwas/ws"
)

// Graceful drain, as Kubernetes terminates a pod (its endpoints are removed
// while the pod gets SIGTERM, not before): flip readiness off at once and
// refuse new upgrades with 503, wait DrainDelay for load balancers to
// notice, close the listener, close connections in jittered batches with
// 1001 and a reason, wait for their close handshakes, and drop what is left
// at the deadline.
//
// With no upgraded connection when the drain starts, the DrainDelay is
// skipped (Ctrl-C on an idle server exits at once). That is safe: the delay
// exists so that load balancers stop sending new clients before the ones
// connected here are moved, and there is no client to move. Readiness is
// still flipped off first; a client that dials during what would have been
// the delay finds the listener closed (connection refused) instead of a 503,
// and a balancer or a reconnecting client retries another node either way.

// drainBatches is how many batches the connections are closed in.
const drainBatches = 20

// Shutdown drains the server and stops it. It returns when every connection
// is closed, or when ctx ends or Config.ShutdownTimeout passes (whichever is
// first), after dropping the connections that remain. Serve then returns
// ErrServerClosed. Calling it again returns at once.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.drain(ctx, CloseGoingAway, "server shutting down")
}

func (s *Server) drain(ctx context.Context, code ws.StatusCode, reason string) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	evl, ln := s.evl, s.ln
	s.mu.Unlock()
	s.draining.Store(true)
	s.metrics.SetReady(false)

	ctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	s.log.Info("drain started", "connections", s.upgraded.Load(), "drain_delay", s.cfg.DrainDelay.String(), "deadline", time.Until(deadline).Round(time.Millisecond).String())

	if s.cfg.DrainDelay > 0 && s.upgraded.Load() == 0 {
		s.log.Info("no client connected: skipping the drain delay")
	} else if s.cfg.DrainDelay > 0 {
		select {
		case <-time.After(s.cfg.DrainDelay):
		case <-ctx.Done():
		}
	}
	if ln != nil {
		_ = ln.Close()
	}

	// Let the handlers tell their clients why, then close everyone in
	// jittered batches over half of the time left, keeping the other half
	// for the close handshakes.
	s.bgCancel()
	s.bgWG.Wait()
	for _, f := range s.hooks.drain {
		f(DrainEvent{Reason: reason})
	}
	conns := make([]*Conn, 0, s.reg.count.Load())
	for i := range s.reg.shards {
		conns = s.reg.snapshotShard(i, conns)
	}
	s.closeInBatches(ctx, conns, code, reason, 0, time.Until(deadline)/2/drainBatches)

	// Wait for the close handshakes; drop the rest at the deadline.
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for s.reg.count.Load() > 0 {
		select {
		case <-poll.C:
			continue
		case <-ctx.Done():
		}
		break
	}
	// Close outside the registry lock: netpoll runs the close callback,
	// which removes the connection from the registry, synchronously.
	left := s.reg.count.Load()
	var rest []*Conn
	for i := range s.reg.shards {
		rest = s.reg.snapshotShard(i, rest)
	}
	for _, c := range rest {
		_ = c.nc.Close()
	}

	close(s.stop)
	s.wg.Wait()
	s.metrics.SetReady(false)
	if s.ownsMetrics {
		_ = s.metrics.Close()
	}
	if evl != nil {
		sctx, scancel := context.WithTimeout(context.Background(), time.Second)
		_ = evl.Shutdown(sctx)
		scancel()
	}
	s.log.Info("drain finished", "dropped", left)
	if left > 0 {
		return ctx.Err()
	}
	return nil
}
