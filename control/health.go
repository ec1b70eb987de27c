package control

import (
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore/upstream"
	"github.com/valyala/fasthttp"
)

// Health statuses. Healthy and degraded answer 200, the others 503, so a
// load balancer (HAProxy option httpchk) takes the node out for all three.
const (
	StatusHealthy     = "healthy"
	StatusDegraded    = "degraded"
	StatusUnhealthy   = "unhealthy"
	StatusMaintenance = "maintenance"
	StatusDraining    = "draining"
)

// Reasons a node is not healthy, as listed in Health.Reasons. They name a
// check, never a value or a threshold (the public body shows no
// configuration).
const (
	ReasonMaintenance = "maintenance"
	ReasonDraining    = "draining"
	ReasonStarting    = "starting"
	ReasonStalled     = "event_loop_stalled"
	ReasonMemory      = "memory_over_limit"
	ReasonMemoryHigh  = "memory_high"
	ReasonErrorRate   = "error_rate_high"
	ReasonLatency     = "latency_high"
	// ReasonUpstream: an upstream's circuit breaker is not closed; the node
	// still serves WebSockets, so it is degraded (200).
	ReasonUpstream = "upstream_unavailable"
	// ReasonCriticalUpstream: the same for an upstream marked critical,
	// without which the node is not useful: unhealthy (503).
	ReasonCriticalUpstream = "critical_upstream_unavailable"
	// ReasonShedding: an alert's shed_load remediation refuses new clients
	// (503, readiness off) while connected ones are served: unhealthy
	// (503), so that a load balancer sends new clients to other nodes.
	ReasonShedding = "shedding_load"
)

// Health is the public health body (GET /api/health/socket), compatible
// with the seed's: times in milliseconds. It shows no user id, IP, token
// or configuration.
type Health struct {
	Status string `json:"status"`
	// ResponseTime is how long this check took, in milliseconds.
	ResponseTime float64 `json:"responseTime"`
	// Uptime is the time since the engine's metrics started, in
	// milliseconds.
	Uptime    int64     `json:"uptime"`
	Timestamp time.Time `json:"timestamp"`
	// Reasons names the checks that made the status other than healthy.
	Reasons []string      `json:"reasons,omitempty"`
	Details HealthDetails `json:"details"`
}

// HealthDetails is the "details" object of the public health body.
type HealthDetails struct {
	Connections     metrics.ConnectionCounts `json:"connections"`
	Performance     HealthPerformance        `json:"performance"`
	CircuitBreakers map[string]BreakerHealth `json:"circuitBreakers"`
}

// HealthPerformance is message handling over the last minute.
type HealthPerformance struct {
	AvgResponseTime   float64 `json:"avgResponseTime"`
	P95ResponseTime   float64 `json:"p95ResponseTime"`
	P99ResponseTime   float64 `json:"p99ResponseTime"`
	ErrorRate         float64 `json:"errorRate"`
	MessagesPerMinute float64 `json:"messagesPerMinute"`
}

// BreakerHealth is one upstream's circuit breaker in the public health
// body: its state (closed, open or half_open) and the failures in its
// window. Nothing else: no URL, no error text.
type BreakerHealth struct {
	Status   string `json:"status"`
	Failures int    `json:"failures"`
}

// upstreams copies the upstreams' state, or nil without upstreams.
func (s *Server) upstreams() []upstream.Status {
	if s.cfg.Upstreams == nil {
		return nil
	}
	return s.cfg.Upstreams.Snapshot()
}

// breakerHealth is the public form of ups.
func breakerHealth(ups []upstream.Status) map[string]BreakerHealth {
	m := make(map[string]BreakerHealth, len(ups))
	for _, u := range ups {
		m[u.Name] = BreakerHealth{Status: u.Breaker.State.String(), Failures: u.Breaker.Failures}
	}
	return m
}

// healthPerformance is message handling over the last minute of snap.
func healthPerformance(snap *metrics.Snapshot) HealthPerformance {
	w := &snap.Windows[metrics.Window1m]
	return HealthPerformance{
		AvgResponseTime:   w.Latency.AvgMs,
		P95ResponseTime:   w.Latency.P95Ms,
		P99ResponseTime:   w.Latency.P99Ms,
		ErrorRate:         w.ErrorRate,
		MessagesPerMinute: w.MessagesReceivedPerSec * 60,
	}
}

// HTTPStatus is the status code the health endpoint answers with.
func (h *Health) HTTPStatus() int {
	if h.Status == StatusHealthy || h.Status == StatusDegraded {
		return http.StatusOK
	}
	return http.StatusServiceUnavailable
}

// verdict is the outcome of the health checks on one snapshot.
type verdict struct {
	status  string
	reasons []string
}

// evaluate judges the engine's state, snap and the upstreams. The order of
// precedence: maintenance, draining, unhealthy, degraded, healthy; Reasons
// lists every check that failed.
func (s *Server) evaluate(snap *metrics.Snapshot, ups []upstream.Status, now time.Time) verdict {
	var v verdict
	unhealthy, degraded := false, false
	maint := s.engine.Maintenance() != nil
	draining := s.engine.Draining()
	if maint {
		v.reasons = append(v.reasons, ReasonMaintenance)
	}
	if draining {
		v.reasons = append(v.reasons, ReasonDraining)
	}
	switch {
	case s.engine.ShedLoad() != nil:
		unhealthy = true
		v.reasons = append(v.reasons, ReasonShedding)
	case !maint && !draining && !s.engine.Ready():
		unhealthy = true
		v.reasons = append(v.reasons, ReasonStarting)
	}
	if age, ok := s.heartbeatAge(now); ok && age > s.cfg.LivenessTimeout {
		unhealthy = true
		v.reasons = append(v.reasons, ReasonStalled)
	}
	if lim := s.cfg.MemoryLimit; lim > 0 {
		used := memoryUsed(&snap.Process)
		switch {
		case used > uint64(lim):
			unhealthy = true
			v.reasons = append(v.reasons, ReasonMemory)
		case float64(used) > s.cfg.MemoryDegradedRatio*float64(lim):
			degraded = true
			v.reasons = append(v.reasons, ReasonMemoryHigh)
		}
	}
	for _, u := range ups {
		if !u.Down() {
			continue
		}
		if u.Critical {
			unhealthy = true
			v.reasons = appendOnce(v.reasons, ReasonCriticalUpstream)
		} else {
			degraded = true
			v.reasons = appendOnce(v.reasons, ReasonUpstream)
		}
	}
	for _, d := range s.cfg.Dependencies {
		if reason, down := d.Degraded(); down {
			degraded = true
			v.reasons = appendOnce(v.reasons, reason)
		}
	}
	w := &snap.Windows[metrics.Window1m]
	if float64(w.Latency.Count) >= float64(s.cfg.DegradedMinMessages) {
		if w.ErrorRate > s.cfg.DegradedErrorRate {
			degraded = true
			v.reasons = append(v.reasons, ReasonErrorRate)
		}
		if w.Latency.P99Ms > float64(s.cfg.DegradedP99)/float64(time.Millisecond) {
			degraded = true
			v.reasons = append(v.reasons, ReasonLatency)
		}
	}
	switch {
	case maint:
		v.status = StatusMaintenance
	case draining:
		v.status = StatusDraining
	case unhealthy:
		v.status = StatusUnhealthy
	case degraded:
		v.status = StatusDegraded
	default:
		v.status = StatusHealthy
	}
	return v
}

func appendOnce(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// memoryUsed is the resident set when /proc is there, the Go heap
// otherwise.
func memoryUsed(p *metrics.ProcessStats) uint64 {
	if p.Available && p.RSSBytes > 0 {
		return p.RSSBytes
	}
	return p.HeapSysBytes
}

// heartbeatAge is the age of the engine's last heartbeat; ok is false
// before the engine serves (no heartbeat yet).
func (s *Server) heartbeatAge(now time.Time) (time.Duration, bool) {
	hb := s.engine.LastHeartbeat()
	if hb.IsZero() {
		return 0, false
	}
	return now.Sub(hb), true
}

// Health runs the health checks and returns the public health body, as
// GET /api/health/socket answers it on the control port and on the client
// port. What can change at once and matters at once is read live, from
// the engine's atomics: maintenance, draining, shedding load, starting,
// the event-loop heartbeat (stalled), the connection counts and the
// upstreams' circuit breakers. What needs a metrics snapshot (the last
// minute's latency and error rate, memory, uptime) comes from the health
// snapshot, taken off the request path at most once per
// healthRefreshInterval (runHealthSnapshots), so that a check costs
// microseconds however busy the node is: a state change shows in the very
// next answer, the numbers within healthRefreshInterval.
func (s *Server) Health() *Health {
	start := time.Now()
	hs := s.healthSnap.Load()
	snap := hs.snap // a copy: the live fields go into it
	auth, anon := s.metrics.Connections()
	snap.Connections = metrics.ConnectionCounts{Total: auth + anon, Authenticated: auth, Anonymous: anon}
	snap.UptimeMs += start.Sub(hs.taken).Milliseconds()
	return s.health(&snap, s.upstreams(), start)
}

// healthRefreshInterval is how often the health snapshot is taken.
const healthRefreshInterval = time.Second

// healthSnapshot is the metrics snapshot health answers from, and when it
// was taken (this process's clock, for the uptime).
type healthSnapshot struct {
	snap  metrics.Snapshot
	taken time.Time
}

// refreshHealth takes the health snapshot now.
func (s *Server) refreshHealth() {
	taken := time.Now()
	s.healthSnap.Store(&healthSnapshot{snap: s.metrics.Snapshot(), taken: taken})
}

// startHealthSnapshots takes the first health snapshot and starts the
// goroutine that takes one every healthRefreshInterval until
// stopHealthSnapshots. It is not one of the bg goroutines: Shutdown waits
// for those to end on their own, and this one never does.
func (s *Server) startHealthSnapshots() {
	s.refreshHealth()
	stop, done := make(chan struct{}), make(chan struct{})
	s.healthStop = sync.OnceFunc(func() { close(stop); <-done })
	t := time.NewTicker(healthRefreshInterval)
	go func() {
		defer close(done)
		defer t.Stop()
		s.runHealthSnapshots(t.C, stop)
	}()
}

// runHealthSnapshots refreshes the health snapshot on every tick until stop
// is closed.
func (s *Server) runHealthSnapshots(ticks <-chan time.Time, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-ticks:
			s.refreshHealth()
		}
	}
}

// stopHealthSnapshots stops the goroutine startHealthSnapshots started and
// waits for it (at most one snapshot's time). Calling it again does
// nothing.
func (s *Server) stopHealthSnapshots() { s.healthStop() }

// health builds the public body from snap and ups; start is when the check
// began.
func (s *Server) health(snap *metrics.Snapshot, ups []upstream.Status, start time.Time) *Health {
	v := s.evaluate(snap, ups, start)
	h := &Health{
		Status:    v.status,
		Uptime:    snap.UptimeMs,
		Timestamp: start.UTC().Truncate(time.Millisecond),
		Reasons:   v.reasons,
		Details: HealthDetails{
			Connections:     snap.Connections,
			Performance:     healthPerformance(snap),
			CircuitBreakers: breakerHealth(ups),
		},
	}
	h.ResponseTime = float64(time.Since(start).Microseconds()) / 1000
	return h
}

func (s *Server) handleHealth(ctx *fasthttp.RequestCtx) {
	h := s.Health()
	writeJSON(ctx, h.HTTPStatus(), h)
}

// Livez is the liveness answer: the engine's event-loop heartbeat only,
// never a dependency: a failing liveness probe restarts the container, so it
// must only fail when a restart helps (a stalled engine), never for a
// dependency outage, which would turn into a cascade of restarts.
type Livez struct {
	Status string `json:"status"` // "ok" or "stalled"
	// HeartbeatAgeMs is the age of the engine's last heartbeat; absent
	// before the engine serves.
	HeartbeatAgeMs *float64 `json:"heartbeatAgeMs,omitempty"`
}

// Livez reports whether the engine's event loops answer their heartbeat.
// Before the engine serves there is no heartbeat and the answer is "ok":
// a startup probe, not liveness, covers starting.
func (s *Server) Livez() *Livez {
	age, ok := s.heartbeatAge(time.Now())
	if !ok {
		return &Livez{Status: "ok"}
	}
	ms := float64(age.Microseconds()) / 1000
	l := &Livez{Status: "ok", HeartbeatAgeMs: &ms}
	if age > s.cfg.LivenessTimeout {
		l.Status = "stalled"
	}
	return l
}

// HTTPStatus is 200 for "ok", 503 otherwise.
func (l *Livez) HTTPStatus() int {
	if l.Status == "ok" {
		return http.StatusOK
	}
	return http.StatusServiceUnavailable
}

func (s *Server) handleLivez(ctx *fasthttp.RequestCtx) {
	l := s.Livez()
	writeJSON(ctx, l.HTTPStatus(), l)
}

// Readyz is the readiness answer: whether the node accepts new clients.
type Readyz struct {
	Status string `json:"status"` // "ready", "starting", "draining", "maintenance" or "shedding"
}

// Readyz reports whether the engine accepts new clients: not while
// starting, draining, in maintenance or shedding load (readiness is how a node takes itself
// out of a load balancer's or a Kubernetes Service's rotation).
func (s *Server) Readyz() *Readyz {
	switch {
	case s.engine.Ready():
		return &Readyz{Status: "ready"}
	case s.engine.Draining():
		return &Readyz{Status: "draining"}
	case s.engine.Maintenance() != nil:
		return &Readyz{Status: "maintenance"}
	case s.engine.ShedLoad() != nil:
		return &Readyz{Status: "shedding"}
	}
	return &Readyz{Status: "starting"}
}

// HTTPStatus is 200 for "ready", 503 otherwise.
func (r *Readyz) HTTPStatus() int {
	if r.Status == "ready" {
		return http.StatusOK
	}
	return http.StatusServiceUnavailable
}

func (s *Server) handleReadyz(ctx *fasthttp.RequestCtx) {
	r := s.Readyz()
	writeJSON(ctx, r.HTTPStatus(), r)
}
