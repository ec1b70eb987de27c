package netcore

import "time"

// Shedding load: new upgrades get 503 + Retry-After on every route and
// readiness is off, so a load balancer or a Kubernetes Service sends new
// clients to other nodes, while every connected client stays and is served
// as before: no hook runs, no system message is sent, nothing is closed.
// It is the softest way for a node to take itself out of rotation, meant
// for an automatic remediation (the alerts engine's shed_load) rather than
// for an operator, who has maintenance mode. Maintenance and draining take
// precedence in the refusal and in readiness; shedding is independent of
// both (turning maintenance off leaves shedding as it was).

// ShedState describes load shedding while it is on.
type ShedState struct {
	Reason string
	Since  time.Time
}

// SetShedLoad turns load shedding on or off; turning it on again replaces
// the reason and keeps the start time. Safe for concurrent use; it never
// blocks on the message path (one atomic store).
func (s *Server) SetShedLoad(on bool, reason string) {
	if !on {
		if s.shed.Swap(nil) != nil {
			s.log.Info("load shedding off")
		}
		s.metrics.SetReady(s.Ready())
		return
	}
	if reason == "" {
		reason = "shedding load"
	}
	st := &ShedState{Reason: reason, Since: time.Now()}
	if old := s.shed.Load(); old != nil {
		st.Since = old.Since
	}
	s.shed.Store(st)
	s.metrics.SetReady(false)
	s.log.Info("load shedding on: new clients refused with 503, connected clients stay", "reason", reason)
}

// ShedLoad returns the load-shedding state, or nil when it is off.
func (s *Server) ShedLoad() *ShedState {
	return s.shed.Load()
}
