package control

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/sockmon/sockmon/control/alerts"
	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore/protocol"
	"github.com/sockmon/sockmon/netcore/upstream"
	"github.com/valyala/fasthttp"
)

// The admin endpoints: GET /api/admin/socket (dashboard data), POST
// /api/admin/socket (commands, see actions.go) and POST /api/health/socket
// (the detailed health view). All need an admin token (auth.go); every
// POST is in the audit log (audit.go).

// AdminHealth is the status part of the admin views.
type AdminHealth struct {
	Status         string    `json:"status"`
	Reasons        []string  `json:"reasons,omitempty"`
	Ready          bool      `json:"ready"`
	Draining       bool      `json:"draining"`
	UptimeMs       int64     `json:"uptimeMs"`
	Timestamp      time.Time `json:"timestamp"`
	HeartbeatAgeMs *float64  `json:"heartbeatAgeMs,omitempty"`
	// MemoryLimitBytes is the limit of the memory check (0: none) and
	// MemoryLimitSource where it comes from: flag, GOMEMLIMIT, cgroup v2,
	// cgroup v1 or none.
	MemoryLimitBytes  int64  `json:"memoryLimitBytes"`
	MemoryLimitSource string `json:"memoryLimitSource"`
}

// ConnectionSummary counts connections, now and since start.
type ConnectionSummary struct {
	Total          int64  `json:"total"`
	Authenticated  int64  `json:"authenticated"`
	Anonymous      int64  `json:"anonymous"`
	Accepted       uint64 `json:"accepted"`
	Rejected       uint64 `json:"rejected"`
	Closed         uint64 `json:"closed"`
	SlowConsumers  uint64 `json:"slowConsumers"`
	ProtocolErrors uint64 `json:"protocolErrors"`
	Rooms          int    `json:"rooms"`
}

// Performance is traffic and latency: the rolling windows (1m, 5m, 15m,
// since start), latency by message kind, handshake latency and totals.
type Performance struct {
	// The seed's fields: the last minute, in milliseconds (as in the
	// public health body).
	HealthPerformance
	Windows   [metrics.NumWindows]metrics.Window `json:"windows"`
	Kinds     []metrics.KindLatency              `json:"kinds"`
	Handshake metrics.Latency                    `json:"handshake"`
	Totals    metrics.Totals                     `json:"totals"`
}

// AdminStatus is the dashboard data of GET /api/admin/socket.
type AdminStatus struct {
	Status      AdminHealth          `json:"status"`
	Connections ConnectionSummary    `json:"connections"`
	Performance Performance          `json:"performance"`
	Process     metrics.ProcessStats `json:"process"`
	Maintenance MaintenanceStatus    `json:"maintenance"`
	// Alerts are the alert rules in force with their state; ActiveAlerts
	// the alerts pending, firing or recently resolved; AlertChannels the
	// notification channels (no secret: only which ones are set).
	Alerts          []alerts.RuleStatus        `json:"alerts"`
	ActiveAlerts    []alerts.Alert             `json:"activeAlerts"`
	AlertChannels   []alerts.ChannelView       `json:"alertChannels"`
	ShedLoad        *ShedStatus                `json:"shedLoad,omitempty"`
	CircuitBreakers map[string]upstream.Status `json:"circuitBreakers"`
	RateLimits      []RateLimitView            `json:"rateLimits"`
	// Agent is the HAProxy agent-check state (agent.go).
	Agent AgentStatus `json:"agent"`
	// Cluster adds up the nodes of the cluster, with a backplane only.
	Cluster *ClusterTotals `json:"cluster,omitempty"`
}

// ShedStatus is load shedding (an alert's shed_load remediation) while it
// is on.
type ShedStatus struct {
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

func (s *Server) shedStatus() *ShedStatus {
	if st := s.engine.ShedLoad(); st != nil {
		return &ShedStatus{Reason: st.Reason, Since: st.Since.UTC()}
	}
	return nil
}

// breakerDetails is the admin form of ups: each upstream's breaker with its
// counts, last error class, when it opened and when it tries again.
func breakerDetails(ups []upstream.Status) map[string]upstream.Status {
	m := make(map[string]upstream.Status, len(ups))
	for _, u := range ups {
		m[u.Name] = u
	}
	return m
}

// AdminStatus copies the dashboard data (the Go side of GET
// /api/admin/socket): one metrics snapshot, the engine's counters and the
// stored rules.
func (s *Server) AdminStatus() (*AdminStatus, error) {
	now := time.Now()
	snap := s.metrics.Snapshot()
	ups := s.upstreams()
	rules, err := s.AlertConfigs()
	if err != nil {
		return nil, err
	}
	rls, err := s.rateLimitViews()
	if err != nil {
		return nil, err
	}
	maint, err := s.maintenanceStatus()
	if err != nil {
		return nil, err
	}
	return &AdminStatus{
		Status:      s.adminHealth(&snap, ups, now),
		Connections: s.connectionSummary(&snap),
		Performance: Performance{HealthPerformance: healthPerformance(&snap), Windows: snap.Windows, Kinds: snap.Kinds,
			Handshake: snap.Handshake, Totals: snap.Totals},
		Process:         snap.Process,
		Maintenance:     maint,
		Alerts:          rules,
		ActiveAlerts:    s.alerts.Alerts(),
		AlertChannels:   s.alerts.Channels(),
		ShedLoad:        s.shedStatus(),
		CircuitBreakers: breakerDetails(ups),
		RateLimits:      rls,
		Agent:           s.AgentStatus(),
		Cluster:         s.clusterTotals(),
	}, nil
}

func (s *Server) adminHealth(snap *metrics.Snapshot, ups []upstream.Status, now time.Time) AdminHealth {
	v := s.evaluate(snap, ups, now)
	h := AdminHealth{Status: v.status, Reasons: v.reasons, Ready: s.engine.Ready(), Draining: s.engine.Draining(),
		UptimeMs: snap.UptimeMs, Timestamp: now.UTC(), MemoryLimitBytes: s.cfg.MemoryLimit, MemoryLimitSource: s.cfg.MemoryLimitSource}
	if age, ok := s.heartbeatAge(now); ok {
		ms := float64(age.Microseconds()) / 1000
		h.HeartbeatAgeMs = &ms
	}
	return h
}

func (s *Server) connectionSummary(snap *metrics.Snapshot) ConnectionSummary {
	st := s.engine.Stats()
	return ConnectionSummary{
		Total: snap.Connections.Total, Authenticated: snap.Connections.Authenticated, Anonymous: snap.Connections.Anonymous,
		Accepted: st.Accepted, Rejected: st.Rejected, Closed: st.Closed, SlowConsumers: st.SlowConsumers,
		ProtocolErrors: st.ProtocolErrs, Rooms: len(s.proto.Rooms()),
	}
}

// maintenanceStatus is the engine's maintenance state (the truth), with
// who set it and since when from the store when they agree.
func (s *Server) maintenanceStatus() (MaintenanceStatus, error) {
	m := s.engine.Maintenance()
	if m == nil {
		return MaintenanceStatus{}, nil
	}
	out := MaintenanceStatus{Enabled: true, Reason: m.Reason, Drain: m.Drain, Since: m.Since.UTC()}
	rec, err := s.store.maintenance()
	if err != nil {
		return out, internalError("cannot read the maintenance state", err)
	}
	if rec.Enabled && rec.Reason == m.Reason {
		out.Since, out.By = rec.Since, rec.By
	}
	return out, nil
}

// rateLimitViews lists the engine's overrides, marking those persisted.
func (s *Server) rateLimitViews() ([]RateLimitView, error) {
	stored, err := s.store.rateLimits()
	if err != nil {
		return nil, internalError("cannot read the rate limits", err)
	}
	persisted := make(map[string]bool, len(stored))
	for _, o := range stored {
		persisted[o.UserID] = true
	}
	out := []RateLimitView{}
	for _, rl := range s.proto.RateLimits() {
		out = append(out, RateLimitView{UserID: rl.UserID, SocketID: rl.SocketID, Limit: rl.Limit,
			WindowMs: rl.Window.Milliseconds(), Persisted: rl.UserID != "" && persisted[rl.UserID]})
	}
	return out, nil
}

func (s *Server) handleAdminStatus(ctx *fasthttp.RequestCtx) {
	ip := s.clientIP(ctx)
	if _, r := s.authenticate(ctx, ip); r != nil {
		s.refuseUnauthenticated(ctx, PathAdmin, ip, r, 0)
		return
	}
	st, err := s.AdminStatus()
	if err != nil {
		writeError(ctx, asError(err))
		return
	}
	writeOK(ctx, st)
}

// DetailedHealthOptions selects the pages of the detailed health view.
// Zero values: the first 100 connections by connection time, the last 15
// minutes of history at the finest resolution, the last 50 commands.
type DetailedHealthOptions struct {
	Connections protocol.ConnQuery
	History     HistoryOptions
	Commands    CommandHistoryOptions
}

// DetailedHealth is the admin view of POST /api/health/socket: the public
// health body plus connections (summary and a page of details), metrics
// (current and history), process stats, recent commands and alert rules.
type DetailedHealth struct {
	// Success is true in the HTTP answer, as in every admin reply; the
	// view itself is at the top level, in the seed's shape.
	Success bool `json:"success"`
	*Health
	Connections DetailedConnections  `json:"connections"`
	Metrics     DetailedMetrics      `json:"metrics"`
	Process     metrics.ProcessStats `json:"process"`
	Maintenance MaintenanceStatus    `json:"maintenance"`
	Admin       DetailedAdmin        `json:"admin"`
	// ActiveAlerts are the alerts pending, firing or recently resolved.
	ActiveAlerts []alerts.Alert `json:"activeAlerts"`
	// CircuitBreakers is the upstreams' breakers in full (the public
	// details.circuitBreakers shows state and failures only).
	CircuitBreakers map[string]upstream.Status `json:"circuitBreakers"`
}

// DetailedConnections is the connections part of DetailedHealth, in the
// seed's shape: the summary and the page of connections as "detailed", with
// the page's total, limit and offset beside it.
type DetailedConnections struct {
	Summary  ConnectionSummary `json:"summary"`
	Detailed []ConnectionView  `json:"detailed"`
	Total    int               `json:"total"`
	Limit    int               `json:"limit"`
	Offset   int               `json:"offset"`
}

// DetailedMetrics is the metrics part of DetailedHealth, in the seed's
// shape: the current snapshot and the history as a list of points, with the
// history's span and resolution beside it.
type DetailedMetrics struct {
	Current             metrics.Snapshot `json:"current"`
	History             []metrics.Point  `json:"history"`
	HistoryFrom         time.Time        `json:"historyFrom"`
	HistoryTo           time.Time        `json:"historyTo"`
	HistoryResolutionMs int64            `json:"historyResolutionMs"`
}

// DetailedAdmin is the admin part of DetailedHealth, in the seed's shape:
// the recent commands and the alert rules, beside the admin health fields
// (ready, draining, heartbeat, memory limit).
type DetailedAdmin struct {
	AdminHealth
	CommandHistory []AuditRecord       `json:"commandHistory"`
	AlertConfigs   []alerts.RuleStatus `json:"alertConfigs"`
}

// DetailedHealth copies the detailed health view (the Go side of POST
// /api/health/socket).
func (s *Server) DetailedHealth(o DetailedHealthOptions) (*DetailedHealth, error) {
	start := time.Now()
	snap := s.metrics.Snapshot()
	ups := s.upstreams()
	h := s.health(&snap, ups, start)
	if o.History.From.IsZero() && o.History.To.IsZero() {
		o.History.From = start.Add(-15 * time.Minute)
	}
	conns, err := s.Connections(o.Connections)
	if err != nil {
		return nil, err
	}
	cmds, err := s.CommandHistory(o.Commands)
	if err != nil {
		return nil, err
	}
	rules, err := s.AlertConfigs()
	if err != nil {
		return nil, err
	}
	maint, err := s.maintenanceStatus()
	if err != nil {
		return nil, err
	}
	hist := s.MetricsHistory(o.History)
	if hist.Points == nil {
		hist.Points = []metrics.Point{}
	}
	return &DetailedHealth{
		Health: h,
		Connections: DetailedConnections{Summary: s.connectionSummary(&snap), Detailed: conns.Connections,
			Total: conns.Total, Limit: conns.Limit, Offset: conns.Offset},
		Metrics: DetailedMetrics{Current: snap, History: hist.Points, HistoryFrom: hist.From, HistoryTo: hist.To,
			HistoryResolutionMs: hist.ResolutionMs},
		Process:         snap.Process,
		Maintenance:     maint,
		ActiveAlerts:    s.alerts.Alerts(),
		Admin:           DetailedAdmin{AdminHealth: s.adminHealth(&snap, ups, start), CommandHistory: cmds, AlertConfigs: rules},
		CircuitBreakers: breakerDetails(ups),
	}, nil
}

// DetailsRequest is the optional body of POST /api/health/socket: the data
// of get_connections, get_metrics_history and get_command_history.
type DetailsRequest struct {
	Connections json.RawMessage `json:"connections"`
	History     json.RawMessage `json:"history"`
	Commands    json.RawMessage `json:"commands"`
}

func (s *Server) doHealthDetails(o *op, body json.RawMessage) (any, *Error) {
	var r DetailsRequest
	if e := decodeObject("", body, &r); e != nil {
		return nil, e
	}
	var opts DetailedHealthOptions
	var cr ConnectionsRequest
	if e := decodeObject("connections", r.Connections, &cr); e != nil {
		return nil, e
	}
	var e *Error
	if opts.Connections, e = cr.query("connections"); e != nil {
		return nil, e
	}
	var hr HistoryRequest
	if e := decodeObject("history", r.History, &hr); e != nil {
		return nil, e
	}
	if opts.History, e = hr.options("history"); e != nil {
		return nil, e
	}
	var chr CommandHistoryRequest
	if e := decodeObject("commands", r.Commands, &chr); e != nil {
		return nil, e
	}
	if opts.Commands, e = chr.options("commands"); e != nil {
		return nil, e
	}
	d, err := s.DetailedHealth(opts)
	if err != nil {
		return nil, asError(err)
	}
	return d, nil
}

func (s *Server) handleHealthDetails(ctx *fasthttp.RequestCtx) {
	s.handleAudited(ctx, PathHealth)
}

func (s *Server) handleCommand(ctx *fasthttp.RequestCtx) {
	s.handleAudited(ctx, PathAdmin)
}

// handleAudited serves an admin POST: authenticate, decode, run, reply,
// with an audit record for every outcome. Nothing of the body is parsed
// before the token verifies.
func (s *Server) handleAudited(ctx *fasthttp.RequestCtx, path string) {
	addr := s.clientIP(ctx)
	p, r := s.authenticate(ctx, addr)
	if r != nil {
		s.refuseUnauthenticated(ctx, path, addr, r, len(ctx.PostBody()))
		return
	}
	body := ctx.PostBody()
	actor := Actor{Sub: p.Sub, IP: addr.String(), Role: p.Role}
	var name string
	var data json.RawMessage
	var run action
	if path == PathHealth {
		name, data, run = ActionHealthDetails, body, (*Server).doHealthDetails
	} else {
		var env struct {
			Action string          `json:"action"`
			Data   json.RawMessage `json:"data"`
		}
		if e := decodeObject("", body, &env); e != nil {
			name := actionOf(path, body)
			s.refuse(ctx, actor, name, s.redactor.envelope(name, body), e)
			return
		}
		if env.Action == "" {
			s.refuse(ctx, actor, "", s.redactor.data("", env.Data), invalidField("action", "required; valid actions: %s", strings.Join(Actions(), ", ")))
			return
		}
		name, data = env.Action, env.Data
		if run = actions[name]; run == nil {
			run = func(*Server, *op, json.RawMessage) (any, *Error) { return nil, unknownAction(clip(name, 64)) }
		}
	}
	res, after, e := s.run(actor, name, data, run)
	if e != nil {
		writeError(ctx, e)
		return
	}
	if d, ok := res.(*DetailedHealth); ok {
		// The seed's shape: the view at the top level (with success
		// beside it), not under data.
		d.Success = true
		writeJSON(ctx, http.StatusOK, d)
	} else {
		writeOK(ctx, res)
	}
	if after != nil {
		// Run once the reply is written: fasthttp calls a hijack handler
		// after sending the response (and closes the connection after it).
		ctx.Hijack(func(net.Conn) { after() })
	}
}

// refuse audits and writes the refusal of an authenticated request that
// happened before an action ran; data is already redacted.
func (s *Server) refuse(ctx *fasthttp.RequestCtx, actor Actor, name string, data json.RawMessage, e *Error) {
	start := time.Now()
	rec := &AuditRecord{Time: start, Actor: actor.Sub, SourceIP: actor.IP, Action: name, Data: data}
	rec.finish(e, start)
	_ = s.record(rec)
	writeError(ctx, e)
}
