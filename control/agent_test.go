package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockmon/sockmon/netcore/wstest"
)

func TestAgentWeight(t *testing.T) {
	for _, c := range []struct {
		load  float64
		atCap bool
		want  int
	}{
		{0, false, 100},
		{0.5, false, 100},
		{0.6, false, 80},
		{0.75, false, 50},
		{0.9, false, 20},
		{0.999, false, 1}, // busy, but below the cap: still takes some clients
		{1, false, 1},
		{1, true, 0}, // at --max-conns: the node refuses upgrades anyway
		{0.2, true, 0},
	} {
		if got := agentWeight(c.load, 0.5, c.atCap); got != c.want {
			t.Errorf("agentWeight(%g, 0.5, %v) = %d, want %d", c.load, c.atCap, got, c.want)
		}
	}
	if got := agentWeight(0.5, 0, false); got != 50 {
		t.Errorf("knee 0: weight %d at load 0.5, want 50", got)
	}
}

// serveAgent runs the fixture's agent listener on 127.0.0.1:0 and returns
// its address; ServeAgent must return ErrServerClosed once the control
// server shuts down.
func (f *fixture) serveAgent() string {
	t := f.t
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ctl := f.ctl
	go func() { done <- ctl.ServeAgent(ln) }()
	t.Cleanup(func() {
		f.stop()
		select {
		case err := <-done:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("ServeAgent returned %v, want ErrServerClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("ServeAgent did not return after Shutdown")
		}
	})
	return ln.Addr().String()
}

// agentLine connects as HAProxy does and returns the line the agent sent
// (without its newline); "" when the agent closed without one (a reset
// included: closing with agent-send unread resets the connection).
func agentLine(t testing.TB, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	// HAProxy's agent-send, which the agent reads and ignores.
	_, _ = io.WriteString(c, "backend/node1\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if errors.Is(err, syscall.ECONNRESET) {
		// Closed unanswered with agent-send unread.
		return ""
	}
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("read the agent's line: %v", err)
	}
	if line != "" && !strings.HasSuffix(line, "\n") {
		t.Fatalf("agent line %q does not end with a newline", line)
	}
	return strings.TrimSuffix(line, "\n")
}

// The agent's answers follow the node's state, and every answer after a
// drain, down or maint reverts it.
func TestAgentAnswersFollowState(t *testing.T) {
	f := newFixture(t)
	addr := f.serveAgent()
	if got := agentLine(t, addr); got != "up ready 100%" {
		t.Fatalf("idle node: %q, want \"up ready 100%%\"", got)
	}

	// Maintenance: drain (connected clients stay); off again: ready.
	f.mustAdmin(ActionSetMaintenanceMode, map[string]any{"enabled": true, "reason": "agent test"})
	// No "up": the health check answers 503 and takes the node DOWN.
	if got := agentLine(t, addr); got != "drain" {
		t.Fatalf("in maintenance: %q, want \"drain\"", got)
	}
	if r := f.ctl.AgentReply(); r.State != AgentDrain || r.Up || r.Health != StatusMaintenance || !contains(r.Reasons, ReasonMaintenance) {
		t.Fatalf("AgentReply in maintenance: %+v", r)
	}
	f.mustAdmin(ActionSetMaintenanceMode, map[string]any{"enabled": false})
	if got := agentLine(t, addr); got != "up ready 100%" {
		t.Fatalf("after maintenance: %q", got)
	}

	// An operator's maint, kept across a restart, until the operator's ready.
	d := f.mustAdmin(ActionSetAgentState, map[string]any{"state": "maint", "reason": "kernel upgrade"})
	var st AgentStatus
	if err := json.Unmarshal(d, &st); err != nil || st.Operator.State != AgentMaint || st.Operator.By != "alice" || st.Reply.Line != "maint" {
		t.Fatalf("set_agent_state maint: %s (%v)", d, err)
	}
	if got := agentLine(t, addr); got != "maint" {
		t.Fatalf("operator maint: %q", got)
	}
	f.restart(true)
	addr = f.serveAgent()
	if got := agentLine(t, addr); got != "maint" {
		t.Fatalf("operator maint after a restart: %q", got)
	}
	status, err := f.ctl.AdminStatus()
	if err != nil || status.Agent.Operator.State != AgentMaint || status.Agent.Operator.Reason != "kernel upgrade" {
		t.Fatalf("admin status agent: %+v %v", status.Agent, err)
	}
	f.mustAdmin(ActionSetAgentState, map[string]any{"state": "ready"})
	if got := agentLine(t, addr); got != "up ready 100%" {
		t.Fatalf("operator ready: %q", got)
	}

	// A bad state is refused and audited.
	r := f.admin(ActionSetAgentState, map[string]any{"state": "drain"})
	if _, _, code, field, _ := r.envelope(t); r.status != 422 || code != CodeInvalidField || field != "data.state" {
		t.Fatalf("state drain: %d %s", r.status, r.body)
	}
	hist, err := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 1})
	if err != nil || len(hist) != 1 || hist[0].Action != ActionSetAgentState || hist[0].Result != ResultRefused {
		t.Fatalf("audit of the refused set_agent_state: %+v %v", hist, err)
	}
	if !strings.Contains(f.logs.String(), `"msg":"agent state changed"`) {
		t.Fatalf("no log line for the agent's state changes:\n%s", f.logs.String())
	}
}

// Starting (the engine does not serve yet) is drain; a stalled engine is
// down with a reason.
func TestAgentStartingAndStalled(t *testing.T) {
	f := newFixture(t)
	f.restart(false)
	addr := f.serveAgent()
	if got := agentLine(t, addr); got != "drain" {
		t.Fatalf("starting: %q, want \"drain\"", got)
	}
	f.serveEngine()
	if got := agentLine(t, addr); got != "up ready 100%" {
		t.Fatalf("serving: %q", got)
	}

	stalled := newFixture(t, func(c *Config) { c.LivenessTimeout = time.Nanosecond }) // every heartbeat is late
	if got := agentLine(t, stalled.serveAgent()); got != "down#event loop stalled" {
		t.Fatalf("stalled engine: %q", got)
	}
	if r := stalled.ctl.AgentReply(); r.State != AgentDown || !contains(r.Reasons, ReasonStalled) {
		t.Fatalf("AgentReply stalled: %+v", r)
	}
}

// An unhealthy node (here: over its memory limit) keeps its weight and admin
// state but gets no "up", which would reset HAProxy's failing health check;
// a degraded one (200 on health) gets "up".
func TestAgentUpOnlyWhenHealthPasses(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MemoryLimit = 1 })
	r := f.ctl.AgentReply()
	if r.Up || r.State != AgentReady || r.Health != StatusUnhealthy || !strings.HasPrefix(r.Line, "ready ") {
		t.Fatalf("unhealthy node: %+v", r)
	}
	if got := agentLine(t, f.serveAgent()); !strings.HasPrefix(got, "ready ") || !strings.HasSuffix(got, "%") {
		t.Fatalf("unhealthy node's line: %q", got)
	}
	d := newFixture(t, func(c *Config) { c.MemoryLimit = 1 << 50; c.MemoryDegradedRatio = 1e-9 })
	if r := d.ctl.AgentReply(); !r.Up || r.Health != StatusDegraded || !strings.HasPrefix(r.Line, "up ready ") {
		t.Fatalf("degraded node: %+v", r)
	}
}

// The weight falls as connections near --max-conns, and comes back.
func TestAgentWeightFollowsConnections(t *testing.T) {
	f := newFixture(t)
	f.engineCfg.MaxConns = 4
	f.restart(true)
	addr := f.serveAgent()
	for range 3 {
		f.dial("")
	}
	f.waitOpen(3)
	r := f.ctl.AgentReply()
	// 3 of 4: load 0.75, weight 50 (less if the test process's CPU is higher).
	if r.State != AgentReady || r.Load < 0.75 || r.Weight > 50 || r.Weight < 1 {
		t.Fatalf("3 of 4 connections: %+v", r)
	}
	if got := agentLine(t, addr); !strings.HasPrefix(got, "up ready ") || got == "up ready 100%" {
		t.Fatalf("3 of 4 connections: %q", got)
	}
	last := f.dial("")
	f.waitOpen(4)
	if got := agentLine(t, addr); got != "up ready 0%" {
		t.Fatalf("at --max-conns: %q, want weight 0", got)
	}
	_ = last.Close()
	wstest.WaitFor(t, "the weight to come back", func() bool { return agentLine(t, addr) != "up ready 0%" })
}

// At most AgentMaxConns connections are answered at once; more are closed
// without a line; a peer that never closes is cut at AgentTimeout.
func TestAgentBoundsConnections(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.AgentMaxConns = 1
		c.AgentTimeout = 300 * time.Millisecond
	})
	addr := f.serveAgent()
	hold, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	br := bufio.NewReader(hold)
	if line, err := br.ReadString('\n'); err != nil || line != "up ready 100%\n" {
		t.Fatalf("first connection: %q %v", line, err)
	}
	// hold keeps its slot until the agent's deadline: it never closes.
	if got := agentLine(t, addr); got != "" {
		t.Fatalf("second connection while the one slot is taken: %q, want no line", got)
	}
	start := time.Now()
	_ = hold.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("held connection: %v, want EOF at the agent's deadline", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("held connection closed after %s, want about 300ms", d)
	}
	wstest.WaitFor(t, "the slot to free", func() bool { return agentLine(t, addr) == "up ready 100%" })
}
