package control

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore"
	bolt "go.etcd.io/bbolt"
)

// The HAProxy agent-check listener (CONVENTIONS.md C3.4). HAProxy connects
// every agent-inter, reads one line ended by '\n' and applies its words:
//
//	up ready 85%          serving; the weight falls as the node nears
//	                      --max-conns or its CPU saturates (agentWeight)
//	drain                 maintenance, draining for shutdown, or starting:
//	                      connected clients stay, no new ones
//	down#event loop stalled
//	                      the engine's heartbeat is late (what /livez reports)
//	maint                 only when an operator asked (set_agent_state)
//
// HAProxy keeps what the agent said until the agent says otherwise, so
// every line restates the admin state it owns ("ready", "drain" or
// "maint"; down leaves it as it was and the next line restates it), and a
// recovery reverts drain, down and maint by itself, one agent-inter later.
//
// "up" is sent only when the node's health verdict is one the health
// endpoint answers 200 for (healthy or degraded), so the agent never
// contradicts the health check: HAProxy's agent parser sets the health
// check's counter to fully up on "up". HAProxy 2.6, tried with a node in
// maintenance, still marks the node DOWN after fall failed checks, but
// sockmon does not rely on that. So an unhealthy node gets "ready 85%" (its
// weight and admin state; the health check takes it down), and a node in
// maintenance gets "drain". The verdict is health's own (evaluate, on one
// metrics snapshot).
//
// The weight is sent as "NN%", which HAProxy applies relative to the
// server's configured weight: give the servers "weight 100" (HAProxy's
// default weight is 1, and 1 x 85% rounds down to 0, which is DRAIN). The
// "weight:NN%" form is not parsed by HAProxy's agent (2.6 reports it as an
// unknown word and keeps the old weight), so sockmon does not send it.
//
// The agent never touches the message path.

// Agent states: the admin word of the line, or "down".
const (
	AgentReady = "ready"
	AgentDrain = "drain"
	AgentDown  = "down"
	AgentMaint = "maint"
)

// AgentReply is what the agent tells HAProxy, and why.
type AgentReply struct {
	// Line is the line sent, without its '\n': "up ready 85%".
	Line string `json:"line"`
	// State is ready, drain, down or maint.
	State string `json:"state"`
	// Up says whether the line carries "up": only when Health is healthy
	// or degraded.
	Up bool `json:"up"`
	// Weight is the percentage of the configured weight sent with ready
	// (0-100); 0 for the other states, which send none.
	Weight int `json:"weight"`
	// Load is what the weight is computed from: the larger of the
	// connections' share of --max-conns and the CPU used (0-1).
	Load float64 `json:"load"`
	// Health and Reasons are the health verdict the line follows; Reasons
	// is "operator" for an operator's maint.
	Health  string   `json:"health,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
}

// AgentStateRecord is the agent state an operator set with set_agent_state,
// persisted so that a node restarted while in maint stays there.
type AgentStateRecord struct {
	State  string    `json:"state"` // "ready" or "maint"
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	By     string    `json:"by,omitempty"`
}

// agentWeight is the weight, in percent of the configured weight, for a
// load between 0 (idle) and 1 (at --max-conns or every core busy): 100 up
// to knee, then falling in a straight line to 0 at load 1. Below the
// connection cap it never falls under 1, so a node that is only busy on
// CPU still takes some clients: when every node is that busy, weight 0
// everywhere would turn the whole farm away.
func agentWeight(load, knee float64, atCap bool) int {
	if atCap {
		return 0
	}
	if load <= knee {
		return 100
	}
	w := int(math.Round(100 * (1 - load) / (1 - knee)))
	return max(1, min(100, w))
}

// agentLoad is the larger of the connections' share of maxConns and the
// CPU the process used over the last process sample p, as a share of the
// cores the engine serves on (netcore.Cores: GOMAXPROCS before the engine's
// spare P, which follows a container's CPU limit).
func (s *Server) agentLoad(p *metrics.ProcessStats) (load float64, atCap bool) {
	open := s.engine.Stats().Open
	if mc := s.engine.Config().MaxConns; mc > 0 {
		load = float64(open) / float64(mc)
		atCap = open >= int64(mc)
	}
	if p.Available && p.NumCPU > 0 {
		cpu := p.CPUFraction * float64(p.NumCPU) / float64(netcore.Cores())
		load = max(load, cpu)
	}
	return min(load, 1), atCap
}

// AgentReply computes the line the agent sends now (the Go side of the
// agent listener): the health verdict as GET /api/health/socket computes
// it, from health's snapshot (at most healthRefreshInterval old) and the
// engine's atomics.
func (s *Server) AgentReply() AgentReply {
	if op := s.agentState.Load(); op != nil && op.State == AgentMaint {
		return AgentReply{Line: "maint", State: AgentMaint, Reasons: []string{"operator"}}
	}
	now := time.Now()
	snap := &s.healthSnap.Load().snap // health's snapshot, never taken on a check's path
	v := s.evaluate(snap, s.upstreams(), now)
	r := AgentReply{Health: v.status, Reasons: v.reasons}
	if slices.Contains(v.reasons, ReasonStalled) {
		// The reason after '#' shows in HAProxy's stats and logs.
		r.Line, r.State = "down#event loop stalled", AgentDown
		return r
	}
	r.Up = v.status == StatusHealthy || v.status == StatusDegraded
	var atCap bool
	r.Load, atCap = s.agentLoad(&snap.Process)
	var words []string
	if r.Up {
		words = append(words, "up")
	}
	if slices.ContainsFunc(v.reasons, func(reason string) bool {
		return reason == ReasonMaintenance || reason == ReasonDraining || reason == ReasonStarting
	}) {
		r.State = AgentDrain
		words = append(words, AgentDrain)
	} else {
		r.State, r.Weight = AgentReady, agentWeight(r.Load, s.cfg.AgentWeightKnee, atCap)
		words = append(words, AgentReady, strconv.Itoa(r.Weight)+"%")
	}
	r.Line = strings.Join(words, " ")
	return r
}

// ServeAgent answers HAProxy's agent checks on ln until Shutdown, then
// returns ErrServerClosed. Each connection gets one line and is closed; at
// most Config.AgentMaxConns are answered at once (more are closed at once,
// which HAProxy does not count as a failure), each within
// Config.AgentTimeout.
func (s *Server) ServeAgent(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.agentLns[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.agentLns, ln)
		s.mu.Unlock()
	}()
	rln := newRetryListener(ln, s.log) // out of descriptors: wait, retry
	for {
		c, err := rln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			return fmt.Errorf("control: agent listener: %w", err)
		}
		select {
		case s.agentSem <- struct{}{}:
		default:
			_ = c.Close()
			continue
		}
		s.agentWG.Add(1)
		go func() {
			defer func() { <-s.agentSem; s.agentWG.Done() }()
			s.answerAgent(c)
		}()
	}
}

// answerAgent writes the reply line, half-closes, and drains what HAProxy
// sent (agent-send) until it closes, so that closing never resets a
// connection whose reply is still unread.
func (s *Server) answerAgent(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(s.cfg.AgentTimeout))
	r := s.AgentReply()
	// Log changes of state, not of weight: "drain", "up ready"...
	state := r.State
	if r.Up {
		state = "up " + state
	}
	if prev := s.agentLast.Swap(&state); prev == nil || *prev != state {
		from := ""
		if prev != nil {
			from = *prev
		}
		s.log.Info("agent state changed", "from", from, "to", state, "line", r.Line, "reasons", r.Reasons)
	}
	if _, err := io.WriteString(c, r.Line+"\n"); err != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_, _ = io.CopyN(io.Discard, c, 4<<10)
}

// AgentStatus is the agent as the admin API shows it: what an operator set
// and what the agent answers now.
type AgentStatus struct {
	Operator AgentStateRecord `json:"operator"`
	Reply    AgentReply       `json:"reply"`
}

// AgentStatus copies the agent's status.
func (s *Server) AgentStatus() AgentStatus {
	st := AgentStatus{Operator: AgentStateRecord{State: AgentReady}, Reply: s.AgentReply()}
	if op := s.agentState.Load(); op != nil {
		st.Operator = *op
	}
	return st
}

// AgentStateRequest is the data of set_agent_state.
type AgentStateRequest struct {
	// State is "maint" (HAProxy takes the node out and stops its health
	// checks) or "ready" (back to what the node's own state says).
	State  string `json:"state"`
	Reason string `json:"reason"`
}

func (s *Server) doSetAgentState(o *op, data json.RawMessage) (any, *Error) {
	var r AgentStateRequest
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	if r.State != AgentMaint && r.State != AgentReady {
		return nil, invalidField("data.state", "%q, want %q or %q", clip(r.State, 64), AgentMaint, AgentReady)
	}
	if e := checkReason("data.reason", r.Reason); e != nil {
		return nil, e
	}
	rec := AgentStateRecord{State: r.State, Reason: r.Reason, Since: o.start.UTC(), By: o.actor.Sub}
	s.cmdMu.Lock()
	defer s.cmdMu.Unlock()
	if e := o.commit(func(tx *bolt.Tx) error { return putAgentState(tx, rec) }); e != nil {
		return nil, e
	}
	s.agentState.Store(&rec)
	return s.AgentStatus(), nil
}

// restoreAgentState re-applies the agent state an operator set before a
// restart.
func (s *Server) restoreAgentState() error {
	rec, err := s.store.agentState()
	if err != nil {
		return fmt.Errorf("control: read agent state: %w", err)
	}
	if rec.State == AgentMaint {
		s.agentState.Store(&rec)
		s.log.Info("agent state maint restored from the store", "reason", rec.Reason, "since", rec.Since, "by", rec.By)
	}
	return nil
}
