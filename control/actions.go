package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/protocol"
	"github.com/sockmon/sockmon/netcore/upstream"
	bolt "go.etcd.io/bbolt"
)

// The actions of POST /api/admin/socket ({"action":..., "data":{...}}).
// Each decodes its data strictly (unknown fields and wrong types are a 422
// naming the field), and those that change persistent state commit the
// change together with their audit record before touching the engine, all
// under cmdMu: the store and the engine see state changes in one order,
// and a crash after the commit is repaired by New re-applying the store.
const (
	ActionExecuteCommand        = "execute_command"
	ActionConfigureAlert        = "configure_alert"
	ActionSetRateLimit          = "set_rate_limit"
	ActionResetCircuitBreaker   = "reset_circuit_breaker"
	ActionSetMaintenanceMode    = "set_maintenance_mode"
	ActionForceDisconnectUser   = "force_disconnect_user"
	ActionForceDisconnectSocket = "force_disconnect_socket"
	ActionGetConnections        = "get_connections"
	ActionGetMetricsHistory     = "get_metrics_history"
	ActionGetCommandHistory     = "get_command_history"
	ActionGetAlertConfigs       = "get_alert_configs"
	ActionSetAgentState         = "set_agent_state"

	// ActionHealthDetails is how POST /api/health/socket appears in the
	// audit log.
	ActionHealthDetails = "health_details"
)

// Commands of execute_command.
const (
	CommandBroadcast         = "broadcast"
	CommandDisconnectAll     = "disconnect_all"
	CommandEmergencyShutdown = "emergency_shutdown"

	// EmergencyConfirm is the confirm value emergency_shutdown requires.
	EmergencyConfirm = "EMERGENCY_SHUTDOWN"
)

// defaultAdminReason is the close reason when an admin gives none.
const defaultAdminReason = "disconnected by an administrator"

type action func(s *Server, o *op, data json.RawMessage) (any, *Error)

var actions = map[string]action{
	ActionExecuteCommand:        (*Server).doExecuteCommand,
	ActionConfigureAlert:        (*Server).doConfigureAlert,
	ActionSetRateLimit:          (*Server).doSetRateLimit,
	ActionResetCircuitBreaker:   (*Server).doResetCircuitBreaker,
	ActionSetMaintenanceMode:    (*Server).doSetMaintenanceMode,
	ActionForceDisconnectUser:   (*Server).doForceDisconnectUser,
	ActionForceDisconnectSocket: (*Server).doForceDisconnectSocket,
	ActionGetConnections:        (*Server).doGetConnections,
	ActionGetMetricsHistory:     (*Server).doGetMetricsHistory,
	ActionGetCommandHistory:     (*Server).doGetCommandHistory,
	ActionGetAlertConfigs:       (*Server).doGetAlertConfigs,
	ActionSetAgentState:         (*Server).doSetAgentState,
	ActionGetAlerts:             (*Server).doGetAlerts,
	ActionGetAlertHistory:       (*Server).doGetAlertHistory,
	ActionAcknowledgeAlert:      (*Server).doAcknowledgeAlert,
	ActionSilenceAlerts:         (*Server).doSilenceAlerts,
	ActionGetSilences:           (*Server).doGetSilences,
	ActionExpireSilence:         (*Server).doExpireSilence,
	ActionTestAlertChannel:      (*Server).doTestAlertChannel,
	ActionGetCluster:            (*Server).doGetCluster,
}

// Actions lists the valid actions of POST /api/admin/socket, sorted.
func Actions() []string { return sortedKeys(actions) }

func unknownAction(name string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeUnknownAction,
		Message: fmt.Sprintf("unknown action %q; valid actions: %s", name, strings.Join(Actions(), ", "))}
}

// Actor is who runs a command: the token's sub and the source IP, as the
// audit log records them, and the token's role. A ViewerRole actor may run
// only the actions ReadOnlyAction allows; the empty role is AdminRole (the
// caller of Command vouches for the actor).
type Actor struct {
	Sub  string
	IP   string
	Role string
	// Via is the node a cluster command came from (empty: this one).
	Via string
}

// op is one command being run: its audit record and whether that record
// was already committed with the command's state change.
type op struct {
	s         *Server
	actor     Actor
	rec       *AuditRecord
	start     time.Time
	committed bool
	// after runs once the reply is on its way (emergency shutdown).
	after func()
}

// commit runs fn and writes the audit record, as a success, in one
// transaction. An *Error returned by fn (a validation that needs the
// stored state) rolls back and is returned as is.
func (o *op) commit(fn func(tx *bolt.Tx) error) *Error {
	o.rec.finish(nil, o.start)
	err := o.s.store.db.Update(func(tx *bolt.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return o.s.store.putAudit(tx, o.rec)
	})
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return e
		}
		return internalError("the change could not be stored; nothing was applied", err)
	}
	o.committed = true
	return nil
}

// Command runs one admin action as actor and returns its data, or an
// *Error with the HTTP status and code of the refusal. It is the Go side
// of POST /api/admin/socket, minus authentication: the caller vouches for
// actor. Every call, refused or not, is in the audit log, committed before
// Command returns.
func (s *Server) Command(actor Actor, action string, data json.RawMessage) (any, error) {
	run := actions[action]
	if run == nil {
		run = func(*Server, *op, json.RawMessage) (any, *Error) { return nil, unknownAction(clip(action, 64)) }
	}
	res, after, e := s.run(actor, action, data, run)
	if after != nil {
		after()
	}
	if e != nil {
		return nil, e
	}
	return res, nil
}

// Read runs a read-only action (ReadOnlyAction: get_connections,
// get_metrics_history, get_command_history, get_alert_configs...) for
// actor, with the same decoding and validation as Command but no audit
// record: the dashboard's reads, which refresh every few seconds and would
// otherwise bury the commands in the audit log. Any other action is a 400.
func (s *Server) Read(actor Actor, action string, data json.RawMessage) (any, error) {
	run := actions[action]
	if run == nil || !ReadOnlyAction(action) {
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeUnknownAction,
			Message: fmt.Sprintf("%q is not a read-only action", clip(action, 64))}
	}
	start := time.Now()
	o := &op{s: s, actor: actor, start: start, rec: &AuditRecord{Time: start, Actor: actor.Sub, SourceIP: actor.IP, Action: action}}
	res, e := run(s, o, data)
	if e != nil {
		return nil, e
	}
	return res, nil
}

// run runs one audited admin request and returns its data, or the
// refusal, and the hook to run once the reply is on its way.
func (s *Server) run(actor Actor, name string, data json.RawMessage, do action) (any, func(), *Error) {
	start := time.Now()
	rec := &AuditRecord{Time: start, Actor: actor.Sub, SourceIP: actor.IP, Via: actor.Via, Action: clip(name, 64), Data: s.redactor.data(name, data)}
	o := &op{s: s, actor: actor, rec: rec, start: start}
	if _, known := actions[name]; known && actor.Role != "" && actor.Role != AdminRole && !ReadOnlyAction(name) {
		do = func(*Server, *op, json.RawMessage) (any, *Error) { return nil, viewerRefusal(name) }
	}
	return s.runOp(o, data, do)
}

// runOp is run once the actor may run the action: it runs do and records
// o's audit record.
func (s *Server) runOp(o *op, data json.RawMessage, do action) (any, func(), *Error) {
	rec, start := o.rec, o.start
	res, e := do(s, o, data)
	if o.committed {
		s.logAudit(rec, nil)
		return res, o.after, nil
	}
	rec.finish(e, start)
	if err := s.record(rec); err != nil && e == nil {
		// The command ran (a disconnect cannot be undone) but is not in the
		// audit log: say so rather than acknowledge it.
		return nil, nil, internalError("the command ran but its audit record could not be stored", err)
	}
	if e != nil {
		return nil, nil, e
	}
	return res, o.after, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// MaintenanceRequest is the data of set_maintenance_mode.
type MaintenanceRequest struct {
	Enabled *bool  `json:"enabled"`
	Reason  string `json:"reason"`
	// Drain closes connected clients with 1012 in staggered batches.
	Drain bool `json:"drain"`
	// Scope is "node" (default) or "cluster" (clusterops.go).
	Scope string `json:"scope"`
}

// MaintenanceStatus is maintenance mode as the admin API shows it.
type MaintenanceStatus struct {
	Enabled bool      `json:"enabled"`
	Reason  string    `json:"reason,omitempty"`
	Drain   bool      `json:"drain"`
	Since   time.Time `json:"since,omitzero"`
	By      string    `json:"by,omitempty"`
}

func (s *Server) doSetMaintenanceMode(o *op, data json.RawMessage) (any, *Error) {
	var r MaintenanceRequest
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	if r.Enabled == nil {
		return nil, invalidField("data.enabled", "required (true or false)")
	}
	if e := checkReason("data.reason", r.Reason); e != nil {
		return nil, e
	}
	if scope, e := s.scope("data.scope", r.Scope, ScopeNode); e != nil {
		return nil, e
	} else if scope == ScopeCluster {
		return s.fanOut(o, ActionSetMaintenanceMode, (*Server).doSetMaintenanceMode, data, "", map[string]any{"enabled": *r.Enabled})
	}
	m := MaintenanceRecord{Enabled: *r.Enabled, By: o.actor.Sub}
	if m.Enabled {
		m.Reason, m.Drain, m.Since = r.Reason, r.Drain, o.start.UTC()
		if m.Reason == "" {
			m.Reason = "maintenance"
		}
	}
	s.cmdMu.Lock()
	defer s.cmdMu.Unlock()
	if e := o.commit(func(tx *bolt.Tx) error { return putMaintenance(tx, m) }); e != nil {
		return nil, e
	}
	s.engine.SetMaintenance(m.Enabled, m.Reason, m.Drain)
	// An operator's maintenance is the operator's: an alert's remediation
	// no longer turns it off.
	s.remMu.Lock()
	s.maintReason = ""
	s.remMu.Unlock()
	return MaintenanceStatus(m), nil
}

// DisconnectUserRequest is the data of force_disconnect_user.
type DisconnectUserRequest struct {
	UserID string `json:"userId"`
	Reason string `json:"reason"`
	// Scope is "cluster" (the default with a backplane) or "node".
	Scope string `json:"scope"`
}

func (s *Server) doForceDisconnectUser(o *op, data json.RawMessage) (any, *Error) {
	var r DisconnectUserRequest
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	if r.UserID == "" {
		return nil, invalidField("data.userId", "required")
	}
	if e := checkReason("data.reason", r.Reason); e != nil {
		return nil, e
	}
	if scope, e := s.scope("data.scope", r.Scope, s.defaultUserScope()); e != nil {
		return nil, e
	} else if scope == ScopeCluster {
		return s.fanOut(o, ActionForceDisconnectUser, (*Server).doForceDisconnectUser, data, "disconnected", map[string]any{"userId": r.UserID})
	}
	if r.Reason == "" {
		r.Reason = defaultAdminReason
	}
	n := s.engine.DisconnectUser(r.UserID, r.Reason)
	return map[string]any{"userId": r.UserID, "disconnected": n}, nil
}

// DisconnectSocketRequest is the data of force_disconnect_socket. SocketID
// may be a number or a numeric string.
type DisconnectSocketRequest struct {
	SocketID json.RawMessage `json:"socketId"`
	Reason   string          `json:"reason"`
}

func (s *Server) doForceDisconnectSocket(o *op, data json.RawMessage) (any, *Error) {
	var r DisconnectSocketRequest
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	id, e := parseSocketID("data.socketId", r.SocketID)
	if e != nil {
		return nil, e
	}
	if id == 0 {
		return nil, invalidField("data.socketId", "required")
	}
	if e := checkReason("data.reason", r.Reason); e != nil {
		return nil, e
	}
	if r.Reason == "" {
		r.Reason = defaultAdminReason
	}
	if !s.engine.DisconnectSocket(id, r.Reason) {
		return nil, notFound("socket %d is not connected", id)
	}
	return map[string]any{"socketId": id, "disconnected": true}, nil
}

// RateLimitRequest is the data of set_rate_limit: a message rate of Limit
// per WindowMs for one user (persisted) or one socket (not persisted:
// socket ids do not survive a restart). Limit 0 removes the override.
type RateLimitRequest struct {
	UserID   string          `json:"userId"`
	SocketID json.RawMessage `json:"socketId"`
	Limit    *int            `json:"limit"`
	WindowMs *int64          `json:"windowMs"`
}

// Rate-limit bounds.
const (
	maxRateLimit       = 1_000_000
	maxRateLimitWindow = int64(24 * time.Hour / time.Millisecond)
)

// RateLimitView is a rate-limit override as the admin API shows it.
type RateLimitView struct {
	UserID    string `json:"userId,omitempty"`
	SocketID  uint64 `json:"socketId,omitempty"`
	Limit     int    `json:"limit"`
	WindowMs  int64  `json:"windowMs"`
	Persisted bool   `json:"persisted"`
	Removed   bool   `json:"removed,omitempty"`
	// NotShared says why a per-user limit set with a backplane reached
	// this node only (Redis unreachable).
	NotShared string `json:"notShared,omitempty"`
}

func (s *Server) doSetRateLimit(o *op, data json.RawMessage) (any, *Error) {
	var r RateLimitRequest
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	socketID, e := parseSocketID("data.socketId", r.SocketID)
	if e != nil {
		return nil, e
	}
	if (r.UserID == "") == (socketID == 0) {
		return nil, invalidField("data.userId", "give exactly one of userId and socketId")
	}
	if r.Limit == nil {
		return nil, invalidField("data.limit", "required (messages per window; 0 removes the override)")
	}
	if *r.Limit < 0 || *r.Limit > maxRateLimit {
		return nil, invalidField("data.limit", "%d is not between 0 and %d", *r.Limit, maxRateLimit)
	}
	var windowMs int64
	if *r.Limit > 0 {
		if r.WindowMs == nil {
			return nil, invalidField("data.windowMs", "required when limit is positive")
		}
		if *r.WindowMs < 1 || *r.WindowMs > maxRateLimitWindow {
			return nil, invalidField("data.windowMs", "%d is not between 1 and %d (24 h)", *r.WindowMs, maxRateLimitWindow)
		}
		windowMs = *r.WindowMs
	}
	rl := protocol.RateLimit{UserID: r.UserID, SocketID: socketID, Limit: *r.Limit, Window: time.Duration(windowMs) * time.Millisecond}
	view := RateLimitView{UserID: r.UserID, SocketID: socketID, Limit: rl.Limit, WindowMs: windowMs, Removed: rl.Limit == 0}

	s.cmdMu.Lock()
	defer s.cmdMu.Unlock()
	if socketID != 0 {
		if err := s.proto.SetRateLimit(rl); errors.Is(err, protocol.ErrNoSuchSocket) {
			return nil, notFound("socket %d is not connected", socketID)
		} else if err != nil {
			return nil, invalidField("data", "%v", err)
		}
		return view, nil
	}
	over := RateLimitOverride{UserID: r.UserID, Limit: rl.Limit, WindowMs: windowMs, UpdatedAt: o.start.UTC(), UpdatedBy: o.actor.Sub}
	if e := o.commit(func(tx *bolt.Tx) error { return putRateLimit(tx, over) }); e != nil {
		return nil, e
	}
	// Validated above as the protocol validates it; an error here would be
	// a contract change, and the store already holds the override.
	if err := s.proto.SetRateLimit(rl); err != nil {
		s.log.Error("engine refused a stored rate limit", "userId", r.UserID, "err", err)
	}
	view.NotShared = s.shareRateLimit(rl)
	view.Persisted = true
	return view, nil
}

// ConnectionsRequest is the data of get_connections.
type ConnectionsRequest struct {
	UserID        string `json:"userId"`
	Authenticated *bool  `json:"authenticated"`
	Room          string `json:"room"`
	// RemoteAddress matches the start of the client's address, without a
	// port ("10.1."): the address limits and bans key on, which behind a
	// trusted proxy is the X-Forwarded-For client (netcore.ConnQuery's
	// RemotePrefix).
	RemoteAddress string `json:"remoteAddress"`
	// SortBy is "connectedAt" (default), "messages" or "errors".
	SortBy string `json:"sortBy"`
	// Order is "asc" (default) or "desc".
	Order  string `json:"order"`
	Limit  *int   `json:"limit"`
	Offset int    `json:"offset"`
	// Scope "cluster" merges the first page of every node (clusterops.go);
	// default "node".
	Scope string `json:"scope"`
}

// query checks r and turns it into a netcore query; prefix is the field
// path of r.
func (r *ConnectionsRequest) query(prefix string) (protocol.ConnQuery, *Error) {
	q := protocol.ConnQuery{ConnQuery: netcore.ConnQuery{UserID: r.UserID, Authenticated: r.Authenticated, RemotePrefix: r.RemoteAddress, SortBy: r.SortBy, Limit: 100, Offset: r.Offset}, Room: r.Room}
	if !slices.Contains([]string{"", "connectedAt", "messages", "errors"}, r.SortBy) {
		return q, invalidField(prefix+".sortBy", "%q is not one of connectedAt, messages, errors", r.SortBy)
	}
	switch r.Order {
	case "", "asc":
	case "desc":
		q.Desc = true
	default:
		return q, invalidField(prefix+".order", "%q is not asc or desc", r.Order)
	}
	if r.Limit != nil {
		if *r.Limit < 1 || *r.Limit > netcore.MaxPageSize {
			return q, invalidField(prefix+".limit", "%d is not between 1 and %d", *r.Limit, netcore.MaxPageSize)
		}
		q.Limit = *r.Limit
	}
	if r.Offset < 0 {
		return q, invalidField(prefix+".offset", "%d is negative", r.Offset)
	}
	return q, nil
}

// ConnectionView is one connection as the admin API shows it.
// RemoteAddress is the client's address as admission determined it (what
// limits and bans key on: behind a trusted proxy, the X-Forwarded-For
// client); PeerAddress is the TCP peer's host:port, the proxy's when there
// is one.
type ConnectionView struct {
	SocketID      uint64    `json:"socketId"`
	UserID        string    `json:"userId,omitempty"`
	Authenticated bool      `json:"authenticated"`
	RemoteAddress string    `json:"remoteAddress"`
	PeerAddress   string    `json:"peerAddress"`
	ConnectedAt   time.Time `json:"connectedAt"`
	LastActivity  time.Time `json:"lastActivity"`
	MessagesIn    uint64    `json:"messagesIn"`
	MessagesOut   uint64    `json:"messagesOut"`
	BytesIn       uint64    `json:"bytesIn"`
	BytesOut      uint64    `json:"bytesOut"`
	Errors        uint64    `json:"errors"`
	Compressed    bool      `json:"compressed"`
	Rooms         []string  `json:"rooms"`
	// Node is the node the connection is on (scope cluster only).
	Node string `json:"node,omitempty"`
}

// ConnectionsPage is one page of connections and how many matched.
type ConnectionsPage struct {
	Total       int              `json:"total"`
	Limit       int              `json:"limit"`
	Offset      int              `json:"offset"`
	Connections []ConnectionView `json:"connections"`
	// Scope and Nodes are set with scope cluster: each node's status and
	// total.
	Scope string     `json:"scope,omitempty"`
	Nodes []NodePage `json:"nodes,omitempty"`
}

// Connections returns the page of connections q selects (the Go side of
// get_connections). It copies per-connection atomics from the engine's
// registry; it never touches a lock of the message path.
func (s *Server) Connections(q protocol.ConnQuery) (*ConnectionsPage, error) {
	page, err := s.proto.Connections(q)
	if err != nil {
		return nil, invalidField("data", "%v", err)
	}
	out := &ConnectionsPage{Total: page.Total, Limit: q.Limit, Offset: q.Offset, Connections: make([]ConnectionView, len(page.Items))}
	if out.Limit == 0 {
		out.Limit = 100
	}
	for i, c := range page.Items {
		rooms := c.Rooms
		if rooms == nil {
			rooms = []string{}
		}
		out.Connections[i] = ConnectionView{SocketID: c.ID, UserID: c.UserID, Authenticated: c.Authenticated, RemoteAddress: c.ClientIP.String(), PeerAddress: c.RemoteAddr,
			ConnectedAt: c.ConnectedAt.UTC(), LastActivity: c.LastActivity.UTC(), MessagesIn: c.MessagesIn, MessagesOut: c.MessagesOut,
			BytesIn: c.BytesIn, BytesOut: c.BytesOut, Errors: c.Errors, Compressed: c.Compressed, Rooms: rooms}
	}
	return out, nil
}

func (s *Server) doGetConnections(o *op, data json.RawMessage) (any, *Error) {
	var r ConnectionsRequest
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	q, e := r.query("data")
	if e != nil {
		return nil, e
	}
	if scope, e := s.scope("data.scope", r.Scope, ScopeNode); e != nil {
		return nil, e
	} else if scope == ScopeCluster {
		return s.clusterConnections(r, q, data)
	}
	page, err := s.Connections(q)
	if err != nil {
		return nil, asError(err)
	}
	return page, nil
}

// HistoryRequest is the data of get_metrics_history. From and To are Unix
// milliseconds or RFC 3339; Resolution is milliseconds or a duration
// string ("1m"). Absent: the whole finest history, up to now.
type HistoryRequest struct {
	From       json.RawMessage `json:"from"`
	To         json.RawMessage `json:"to"`
	Resolution json.RawMessage `json:"resolution"`
}

// HistoryOptions selects metrics history (see metrics.Metrics.History).
type HistoryOptions struct {
	From, To   time.Time
	Resolution time.Duration
}

func (r *HistoryRequest) options(prefix string) (HistoryOptions, *Error) {
	var h HistoryOptions
	var e *Error
	if h.From, e = parseTime(prefix+".from", r.From); e != nil {
		return h, e
	}
	if h.To, e = parseTime(prefix+".to", r.To); e != nil {
		return h, e
	}
	if h.Resolution, e = parseDuration(prefix+".resolution", r.Resolution); e != nil {
		return h, e
	}
	if !h.From.IsZero() && !h.To.IsZero() && !h.From.Before(h.To) {
		return h, invalidField(prefix+".from", "must be before to")
	}
	return h, nil
}

// MetricsHistory returns the metrics history o selects (the Go side of
// get_metrics_history).
func (s *Server) MetricsHistory(o HistoryOptions) metrics.HistoryResult {
	return s.metrics.History(o.From, o.To, o.Resolution)
}

func (s *Server) doGetMetricsHistory(o *op, data json.RawMessage) (any, *Error) {
	var r HistoryRequest
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	h, e := r.options("data")
	if e != nil {
		return nil, e
	}
	return s.MetricsHistory(h), nil
}

// CommandHistoryRequest is the data of get_command_history.
type CommandHistoryRequest struct {
	// Limit is the number of records, newest first: 1 to 1000, default 50.
	Limit *int `json:"limit"`
	// Since keeps records at or after this time (Unix ms or RFC 3339).
	Since json.RawMessage `json:"since"`
	// Before keeps records with a seq below it (paging back).
	Before uint64 `json:"before"`
	// Unauthenticated lists the admin POSTs refused before a token
	// verified (kept apart, with their own seq) instead of the operators'
	// records.
	Unauthenticated bool `json:"unauthenticated"`
	// Actor, Action and Result keep the records whose field equals them
	// (Result: ok, refused or error).
	Actor  string `json:"actor"`
	Action string `json:"action"`
	Result string `json:"result"`
}

// CommandHistoryOptions selects audit records: at most Limit, newest
// first, at or after Since, with a seq below Before, and, for each of
// Actor, Action and Result that is set, the records whose field equals it.
type CommandHistoryOptions struct {
	Limit  int
	Since  time.Time
	Before uint64
	// Unauthenticated selects the refusals before authentication instead
	// of the operators' records.
	Unauthenticated bool
	Actor           string
	Action          string
	Result          string
}

// match reports whether r passes the field filters of o.
func (o *CommandHistoryOptions) match(r *AuditRecord) bool {
	return (o.Actor == "" || r.Actor == o.Actor) && (o.Action == "" || r.Action == o.Action) && (o.Result == "" || r.Result == o.Result)
}

func (r *CommandHistoryRequest) options(prefix string) (CommandHistoryOptions, *Error) {
	c := CommandHistoryOptions{Limit: DefaultCommandHistoryLimit, Before: r.Before, Unauthenticated: r.Unauthenticated,
		Actor: r.Actor, Action: r.Action, Result: r.Result}
	switch r.Result {
	case "", ResultOK, ResultRefused, ResultError:
	default:
		return c, invalidField(prefix+".result", "%q is not one of %s, %s, %s", clip(r.Result, 64), ResultOK, ResultRefused, ResultError)
	}
	if r.Limit != nil {
		if *r.Limit < 1 || *r.Limit > 1000 {
			return c, invalidField(prefix+".limit", "%d is not between 1 and 1000", *r.Limit)
		}
		c.Limit = *r.Limit
	}
	var e *Error
	c.Since, e = parseTime(prefix+".since", r.Since)
	return c, e
}

// CommandHistory returns audit records, newest first (the Go side of
// get_command_history): the operators' records, or with
// o.Unauthenticated the refusals before authentication.
func (s *Server) CommandHistory(o CommandHistoryOptions) ([]AuditRecord, error) {
	if o.Limit <= 0 {
		o.Limit = DefaultCommandHistoryLimit
	}
	recs, err := s.store.auditList(o.Unauthenticated, o.Limit, o.Since, o.Before, o.match)
	if err != nil {
		return nil, internalError("cannot read the audit log", err)
	}
	if recs == nil {
		recs = []AuditRecord{}
	}
	return recs, nil
}

func (s *Server) doGetCommandHistory(o *op, data json.RawMessage) (any, *Error) {
	var r CommandHistoryRequest
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	c, e := r.options("data")
	if e != nil {
		return nil, e
	}
	recs, err := s.CommandHistory(c)
	if err != nil {
		return nil, asError(err)
	}
	return map[string]any{"commands": recs, "count": len(recs)}, nil
}

// BreakerRequest is the data of reset_circuit_breaker.
type BreakerRequest struct {
	Service string `json:"service"`
}

// doResetCircuitBreaker closes one upstream's breaker, or every one with
// "*", and answers with their state after the reset. An unknown service is
// 404, naming the known ones.
func (s *Server) doResetCircuitBreaker(o *op, data json.RawMessage) (any, *Error) {
	var r BreakerRequest
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	if r.Service == "" {
		return nil, invalidField("data.service", `required: an upstream's name, or "*" for all`)
	}
	if s.cfg.Upstreams == nil {
		return nil, notFound("no circuit breakers are configured on this node (service %q)", r.Service)
	}
	if err := s.cfg.Upstreams.Reset(r.Service); err != nil {
		var unknown *upstream.UnknownServiceError
		if errors.As(err, &unknown) {
			return nil, notFound("no upstream %q; known: %s", r.Service, strings.Join(unknown.Known, ", "))
		}
		return nil, internalError("cannot reset the circuit breaker", err)
	}
	ups := s.upstreams()
	if r.Service != "*" {
		ups = slices.DeleteFunc(ups, func(u upstream.Status) bool { return u.Name != r.Service })
	}
	return map[string]any{"service": r.Service, "circuitBreakers": breakerDetails(ups)}, nil
}

// ExecuteRequest is the data of execute_command. Command picks which other
// fields apply:
//
//	broadcast           message (any JSON value, required), room
//	disconnect_all      reason, batchSize (default 100), intervalMs (default 100)
//	emergency_shutdown  reason (required), confirm: "EMERGENCY_SHUTDOWN"
type ExecuteRequest struct {
	Command    string          `json:"command"`
	Message    json.RawMessage `json:"message"`
	Room       string          `json:"room"`
	Reason     string          `json:"reason"`
	BatchSize  *int            `json:"batchSize"`
	IntervalMs *int64          `json:"intervalMs"`
	Confirm    string          `json:"confirm"`
	// Scope is "node" (default) or "cluster" for broadcast and
	// disconnect_all (clusterops.go).
	Scope string `json:"scope"`
}

var executeCommands = []string{CommandBroadcast, CommandDisconnectAll, CommandEmergencyShutdown}

func (s *Server) doExecuteCommand(o *op, data json.RawMessage) (any, *Error) {
	var r ExecuteRequest
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	scope, e := s.scope("data.scope", r.Scope, ScopeNode)
	if e != nil {
		return nil, e
	}
	if scope == ScopeCluster {
		switch r.Command {
		case CommandBroadcast:
			return s.fanOut(o, ActionExecuteCommand, (*Server).doExecuteCommand, data, "recipients", map[string]any{"command": r.Command, "room": r.Room})
		case CommandDisconnectAll:
			return s.fanOut(o, ActionExecuteCommand, (*Server).doExecuteCommand, data, "disconnecting", map[string]any{"command": r.Command})
		case CommandEmergencyShutdown:
			return nil, invalidField("data.scope", "emergency_shutdown stops one node: scope cluster is refused")
		}
	}
	switch r.Command {
	case CommandBroadcast:
		msg := bytes.TrimSpace(r.Message)
		if len(msg) == 0 || string(msg) == "null" {
			return nil, invalidField("data.message", "required (any JSON value)")
		}
		n, err := s.proto.Broadcast(msg, r.Room)
		if err != nil {
			return nil, invalidField("data.message", "%v", err)
		}
		return map[string]any{"command": r.Command, "room": r.Room, "recipients": n}, nil

	case CommandDisconnectAll:
		if e := checkReason("data.reason", r.Reason); e != nil {
			return nil, e
		}
		if r.Reason == "" {
			r.Reason = defaultAdminReason
		}
		batch, interval := 100, int64(100)
		if r.BatchSize != nil {
			if *r.BatchSize < 1 || *r.BatchSize > 100_000 {
				return nil, invalidField("data.batchSize", "%d is not between 1 and 100000", *r.BatchSize)
			}
			batch = *r.BatchSize
		}
		if r.IntervalMs != nil {
			if *r.IntervalMs < 1 || *r.IntervalMs > 60_000 {
				return nil, invalidField("data.intervalMs", "%d is not between 1 and 60000", *r.IntervalMs)
			}
			interval = *r.IntervalMs
		}
		n := s.engine.DisconnectAll(r.Reason, batch, time.Duration(interval)*time.Millisecond)
		return map[string]any{"command": r.Command, "disconnecting": n, "batchSize": batch, "intervalMs": interval}, nil

	case CommandEmergencyShutdown:
		if r.Confirm != EmergencyConfirm {
			return nil, invalidField("data.confirm", "must be %q", EmergencyConfirm)
		}
		if r.Reason == "" {
			return nil, invalidField("data.reason", "required")
		}
		if e := checkReason("data.reason", r.Reason); e != nil {
			return nil, e
		}
		s.cmdMu.Lock()
		defer s.cmdMu.Unlock()
		// The record is committed before anything stops.
		if e := o.commit(func(*bolt.Tx) error { return nil }); e != nil {
			return nil, e
		}
		o.after = func() { s.emergencyShutdown(r.Reason) }
		return map[string]any{"command": r.Command, "shuttingDown": true, "reason": r.Reason}, nil

	case "":
		return nil, invalidField("data.command", "required; one of %s", strings.Join(executeCommands, ", "))
	}
	return nil, invalidField("data.command", "%q is not one of %s", clip(r.Command, 64), strings.Join(executeCommands, ", "))
}

// emergencyShutdown runs once: the configured callback on its own
// goroutine, or, without one, a shutdown of the engine on a goroutine the
// server owns.
func (s *Server) emergencyShutdown(reason string) {
	s.emergency.Do(func() {
		s.log.Warn("emergency shutdown", "reason", reason)
		if f := s.cfg.OnEmergencyShutdown; f != nil {
			go f(reason)
			return
		}
		s.spawn(func(ctx context.Context) {
			if err := s.engine.Shutdown(ctx); err != nil {
				s.log.Warn("engine shutdown after an emergency shutdown", "err", err)
			}
		})
	})
}
