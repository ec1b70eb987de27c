package control

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/sockmon/sockmon/control/cluster"
	"github.com/sockmon/sockmon/netcore/protocol"
	bolt "go.etcd.io/bbolt"
)

// Several nodes (Config.Cluster, serve's --redis-url). set_maintenance_mode,
// execute_command's broadcast and disconnect_all, force_disconnect_user
// and get_connections take data.scope: "node" (this node only) or
// "cluster" (every registered node). A cluster command runs here first,
// as a node-scope command with its own audit record, then on every other
// node (each records it with via: this node's id), and answers with each
// node's result; the audit record of the cluster command holds the scope
// and the per-node outcomes. A node that does not answer within the
// cluster's CommandTimeout is reported as timed out. While Redis cannot be
// reached a cluster command is refused (503 unavailable, nothing applied)
// and node scope works as ever.

// Scopes.
const (
	ScopeNode    = "node"
	ScopeCluster = "cluster"
)

// ActionGetCluster lists the nodes of the cluster.
const ActionGetCluster = "get_cluster"

// clusterActions are the actions another node may run here.
var clusterActions = map[string]bool{
	ActionSetMaintenanceMode:  true,
	ActionExecuteCommand:      true,
	ActionForceDisconnectUser: true,
	ActionGetConnections:      true,
}

// scope checks a request's scope; empty is def.
func (s *Server) scope(field, scope, def string) (string, *Error) {
	switch scope {
	case "":
		return def, nil
	case ScopeNode:
		return scope, nil
	case ScopeCluster:
		if s.cfg.Cluster == nil {
			return "", invalidField(field, "cluster needs the Redis backplane: this node runs without --redis-url")
		}
		return scope, nil
	}
	return "", invalidField(field, "%q is not node or cluster", clip(scope, 64))
}

// defaultUserScope is force_disconnect_user's scope: the whole cluster
// when there is one.
func (s *Server) defaultUserScope() string {
	if s.cfg.Cluster != nil {
		return ScopeCluster
	}
	return ScopeNode
}

// unavailable is the 503 of a cluster command while Redis is unreachable.
func clusterUnavailable(err error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Err: err,
		Message: fmt.Sprintf("%v; nothing was applied: use scope node on each node until Redis answers", err)}
}

// NodeOutcome is one node's result of a cluster command, as the audit log
// keeps it (without the data).
type NodeOutcome struct {
	Node    string `json:"node"`
	Status  string `json:"status"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// NodeResult is one node's result of a cluster command.
type NodeResult struct {
	Node       string          `json:"node"`
	Self       bool            `json:"self,omitempty"`
	Status     string          `json:"status"`
	HTTPStatus int             `json:"httpStatus,omitempty"`
	Code       string          `json:"code,omitempty"`
	Message    string          `json:"message,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
}

// withScope returns data with its scope set to scope.
func withScope(data json.RawMessage, scope string) json.RawMessage {
	m := map[string]json.RawMessage{}
	_ = json.Unmarshal(data, &m)
	m["scope"], _ = json.Marshal(scope)
	b, _ := json.Marshal(m)
	return b
}

// remoteEnvelope is a command's data as it travels to other nodes.
type remoteEnvelope struct {
	Sub  string          `json:"sub"`
	IP   string          `json:"ip"`
	Data json.RawMessage `json:"data"`
}

// fanOut runs action on every node of the cluster: here first (refused
// here, it is refused as is and sent nowhere), then on the others. total
// names the number field of the node replies to add up in the answer.
func (s *Server) fanOut(o *op, name string, do action, data json.RawMessage, total string, extra map[string]any) (any, *Error) {
	if reason, down := s.cfg.Cluster.Degraded(); down {
		return nil, clusterUnavailable(&cluster.UnavailableError{Reason: reason})
	}
	nodeData := withScope(data, ScopeNode)
	self := s.cfg.Cluster.ID()
	start := time.Now()
	lo := &op{s: s, actor: o.actor, start: start, rec: &AuditRecord{Time: start, Actor: o.actor.Sub, SourceIP: o.actor.IP,
		Action: name, Data: s.redactor.data(name, nodeData)}}
	res, _, e := s.runOp(lo, nodeData, do)
	if e != nil {
		return nil, e
	}
	local, _ := json.Marshal(res)
	results := []NodeResult{{Node: self, Self: true, Status: ResultOK, HTTPStatus: http.StatusOK, Data: local}}
	env, _ := json.Marshal(remoteEnvelope{Sub: o.actor.Sub, IP: o.actor.IP, Data: nodeData})
	replies, err := s.cfg.Cluster.Send(s.bg, name, env)
	if err != nil {
		// Applied here; whether others got it is unknown.
		results = append(results, NodeResult{Node: "*", Status: cluster.ReplyUnreachable, Message: err.Error()})
	}
	for _, r := range replies {
		results = append(results, NodeResult{Node: r.Node, Status: r.Status, HTTPStatus: r.HTTPStatus, Code: r.Code, Message: r.Message, Data: r.Data})
	}
	o.rec.Scope = ScopeCluster
	for _, r := range results {
		o.rec.Nodes = append(o.rec.Nodes, NodeOutcome{Node: r.Node, Status: r.Status, Code: r.Code, Message: clip(r.Message, 256)})
	}
	out := map[string]any{"scope": ScopeCluster, "nodes": results}
	for k, v := range extra {
		out[k] = v
	}
	if total != "" {
		var sum int64
		for _, r := range results {
			var m map[string]any
			if r.Status == ResultOK && json.Unmarshal(r.Data, &m) == nil {
				if f, ok := m[total].(float64); ok {
					sum += int64(f)
				}
			}
		}
		out[total] = sum
	}
	return out, nil
}

// runRemote runs another node's command here (the cluster's Handler).
func (s *Server) runRemote(ctx context.Context, c cluster.Command) cluster.Reply {
	var env remoteEnvelope
	if err := json.Unmarshal(c.Data, &env); err != nil || !clusterActions[c.Kind] {
		return cluster.Reply{Status: ResultRefused, HTTPStatus: http.StatusBadRequest, Code: CodeBadRequest,
			Message: fmt.Sprintf("%q is not a cluster command", clip(c.Kind, 64))}
	}
	actor := Actor{Sub: env.Sub, IP: env.IP, Role: AdminRole, Via: c.From}
	var (
		res any
		err error
	)
	if ReadOnlyAction(c.Kind) {
		res, err = s.Read(actor, c.Kind, env.Data)
	} else {
		var e *Error
		var after func()
		res, after, e = s.run(actor, c.Kind, env.Data, actions[c.Kind])
		if after != nil {
			after()
		}
		if e != nil {
			err = e
		}
	}
	if err != nil {
		e := asError(err)
		status := ResultRefused
		if e.Status >= 500 {
			status = ResultError
		}
		return cluster.Reply{Status: status, HTTPStatus: e.Status, Code: e.Code, Message: e.Message}
	}
	b, _ := json.Marshal(res)
	return cluster.Reply{Status: ResultOK, HTTPStatus: http.StatusOK, Data: b}
}

// ClusterView is the data of get_cluster.
type ClusterView struct {
	// Backplane is false on a node without --redis-url: no nodes listed.
	Backplane bool               `json:"backplane"`
	Self      string             `json:"self,omitempty"`
	Nodes     []cluster.NodeInfo `json:"nodes"`
	Totals    ClusterTotals      `json:"totals"`
}

// ClusterTotals adds up the registered nodes.
type ClusterTotals struct {
	Nodes       int            `json:"nodes"`
	Connections int64          `json:"connections"`
	ByStatus    map[string]int `json:"byStatus"`
	// Error says why the totals could not be read (Redis unreachable).
	Error string `json:"error,omitempty"`
}

func totals(nodes []cluster.NodeInfo) ClusterTotals {
	t := ClusterTotals{Nodes: len(nodes), ByStatus: map[string]int{}}
	for _, n := range nodes {
		t.Connections += n.Connections
		t.ByStatus[n.Status]++
	}
	return t
}

// Cluster lists the nodes of the cluster (the Go side of get_cluster).
func (s *Server) Cluster(ctx context.Context) (*ClusterView, error) {
	if s.cfg.Cluster == nil {
		return &ClusterView{Nodes: []cluster.NodeInfo{}, Totals: totals(nil)}, nil
	}
	nodes, err := s.cfg.Cluster.Nodes(ctx)
	if err != nil {
		return nil, clusterUnavailable(err)
	}
	if nodes == nil {
		nodes = []cluster.NodeInfo{}
	}
	return &ClusterView{Backplane: true, Self: s.cfg.Cluster.ID(), Nodes: nodes, Totals: totals(nodes)}, nil
}

func (s *Server) doGetCluster(o *op, data json.RawMessage) (any, *Error) {
	var r struct{}
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	v, err := s.Cluster(s.bg)
	if err != nil {
		return nil, asError(err)
	}
	return v, nil
}

// clusterTotals are the admin GET's cluster totals, nil without a cluster.
func (s *Server) clusterTotals() *ClusterTotals {
	if s.cfg.Cluster == nil {
		return nil
	}
	nodes, err := s.cfg.Cluster.Recent(s.bg)
	if err != nil {
		return &ClusterTotals{ByStatus: map[string]int{}, Error: err.Error()}
	}
	t := totals(nodes)
	return &t
}

// NodePage is one node's part of a cluster get_connections.
type NodePage struct {
	Node    string `json:"node"`
	Self    bool   `json:"self,omitempty"`
	Status  string `json:"status"`
	Total   int    `json:"total"`
	Message string `json:"message,omitempty"`
}

// clusterConnections is get_connections with scope cluster: the first
// page of each node (offset must be 0), merged in the query's order and
// cut to its limit; total adds up the nodes that answered.
func (s *Server) clusterConnections(r ConnectionsRequest, q protocol.ConnQuery, data json.RawMessage) (any, *Error) {
	if r.Offset != 0 {
		return nil, invalidField("data.offset", "scope cluster returns the first page of every node merged: offset must be 0 (page through one node with scope node)")
	}
	if reason, down := s.cfg.Cluster.Degraded(); down {
		return nil, clusterUnavailable(&cluster.UnavailableError{Reason: reason})
	}
	self := s.cfg.Cluster.ID()
	page, err := s.Connections(q)
	if err != nil {
		return nil, asError(err)
	}
	out := &ConnectionsPage{Scope: ScopeCluster, Total: page.Total, Limit: page.Limit, Connections: page.Connections,
		Nodes: []NodePage{{Node: self, Self: true, Status: ResultOK, Total: page.Total}}}
	for i := range out.Connections {
		out.Connections[i].Node = self
	}
	env, _ := json.Marshal(remoteEnvelope{Data: withScope(data, ScopeNode)})
	replies, err := s.cfg.Cluster.Send(s.bg, ActionGetConnections, env)
	if err != nil {
		out.Nodes = append(out.Nodes, NodePage{Node: "*", Status: cluster.ReplyUnreachable, Message: err.Error()})
	}
	for _, rp := range replies {
		np := NodePage{Node: rp.Node, Status: rp.Status, Message: rp.Message}
		var p ConnectionsPage
		if rp.Status == ResultOK && json.Unmarshal(rp.Data, &p) == nil {
			np.Total = p.Total
			out.Total += p.Total
			for _, c := range p.Connections {
				c.Node = rp.Node
				out.Connections = append(out.Connections, c)
			}
		}
		out.Nodes = append(out.Nodes, np)
	}
	key := func(a, b ConnectionView) int { return a.ConnectedAt.Compare(b.ConnectedAt) }
	switch q.SortBy {
	case "messages":
		key = func(a, b ConnectionView) int {
			return cmp.Compare(a.MessagesIn+a.MessagesOut, b.MessagesIn+b.MessagesOut)
		}
	case "errors":
		key = func(a, b ConnectionView) int { return cmp.Compare(a.Errors, b.Errors) }
	}
	slices.SortStableFunc(out.Connections, func(a, b ConnectionView) int {
		if q.Desc {
			return key(b, a)
		}
		return key(a, b)
	})
	if len(out.Connections) > out.Limit {
		out.Connections = out.Connections[:out.Limit]
	}
	return out, nil
}

// shareRateLimit stores a per-user rate limit for the cluster; the reply
// says when it could not be.
func (s *Server) shareRateLimit(rl protocol.RateLimit) string {
	if s.cfg.Cluster == nil || rl.UserID == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(s.bg, 2*time.Second)
	defer cancel()
	if err := s.cfg.Cluster.ShareRateLimit(ctx, rl.UserID, rl.Limit, rl.Window); err != nil {
		s.log.Warn("rate limit applied on this node only: not shared with the cluster", "userId", rl.UserID, "err", err)
		return "applied on this node only: " + err.Error()
	}
	return ""
}

// applySharedRateLimit applies, and stores here, a per-user rate limit
// set on another node (so that it is back after a restart even before
// Redis answers).
func (s *Server) applySharedRateLimit(userID string, limit int, window time.Duration) {
	s.cmdMu.Lock()
	defer s.cmdMu.Unlock()
	over := RateLimitOverride{UserID: userID, Limit: limit, WindowMs: window.Milliseconds(), UpdatedAt: time.Now().UTC(), UpdatedBy: "cluster"}
	if err := s.store.db.Update(func(tx *bolt.Tx) error { return putRateLimit(tx, over) }); err != nil {
		s.log.Error("cannot store a rate limit of the cluster", "userId", userID, "err", err)
	}
	if err := s.proto.SetRateLimit(protocol.RateLimit{UserID: userID, Limit: limit, Window: window}); err != nil && !errors.Is(err, protocol.ErrNoSuchSocket) {
		s.log.Error("engine refused a rate limit of the cluster", "userId", userID, "err", err)
	}
}
