package netcore

import (
	"context"
	"time"
)

// Maintenance mode: new upgrades get 503 + Retry-After on every route,
// readiness is off (so load balancers drain the node), the OnMaintenance
// hooks run (the sockmon protocol tells its clients) and, with Drain,
// connections are closed with 1012 in staggered batches.

// MaintenanceState describes maintenance mode while it is on.
type MaintenanceState struct {
	Reason string
	Since  time.Time
	Drain  bool
}

// SetMaintenance turns maintenance mode on or off. Turning it on again
// replaces the reason. With drain, connected clients are closed with 1012
// (reconnect later) in up to 20 batches of at least 50, a quarter of a
// second apart; without it they stay.
func (s *Server) SetMaintenance(on bool, reason string, drain bool) {
	if !on {
		s.maintenance.Store(nil)
		s.metrics.SetMaintenance(false)
		s.metrics.SetReady(s.Ready())
		s.log.Info("maintenance mode off")
		for _, f := range s.hooks.maintenance {
			f(MaintenanceEvent{})
		}
		return
	}
	if reason == "" {
		reason = "maintenance"
	}
	st := &MaintenanceState{Reason: reason, Since: time.Now(), Drain: drain}
	s.maintenance.Store(st)
	s.metrics.SetMaintenance(true)
	s.metrics.SetReady(false)
	s.log.Info("maintenance mode on", "reason", reason, "drain", drain)
	for _, f := range s.hooks.maintenance {
		f(MaintenanceEvent{State: st})
	}
	if drain {
		conns := s.AppendOpenConns(nil, nil)
		s.spawn(func(ctx context.Context) {
			s.closeInBatches(ctx, conns, CloseServiceRestart, reason, max(50, (len(conns)+drainBatches-1)/drainBatches), 250*time.Millisecond)
		})
	}
}

// Maintenance returns the maintenance state, or nil when it is off.
func (s *Server) Maintenance() *MaintenanceState {
	return s.maintenance.Load()
}
