package control

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/control/alerts"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// getHealth is the next answer of GET /api/health/socket on the control
// port, checked against the client port's (PublicHealth) and the agent's
// verdict, which read the same state.
func getHealth(t *testing.T, f *fixture) (int, Health) {
	t.Helper()
	r := f.do("GET", PathHealth, "", nil)
	h := decodeHealth(t, r)
	status, body, ok := f.ctl.PublicHealth(PathHealth)
	var pub Health
	if !ok || json.Unmarshal(body, &pub) != nil || status != r.status || pub.Status != h.Status {
		t.Fatalf("client port health %d %s, control port %d %s", status, body, r.status, r.body)
	}
	if a := f.ctl.AgentReply(); a.Health != h.Status {
		t.Fatalf("agent health %q, control port %q", a.Health, h.Status)
	}
	return r.status, h
}

// State an operator changes shows in the very next health answer, while
// the health snapshot stays as it was (its goroutine stopped): maintenance
// on and off through the admin API, shedding load and the connection
// counts here, draining below, a stalled event loop in TestLivezStalled.
func TestHealthStateShowsAtOnce(t *testing.T) {
	f := newFixture(t)
	f.ctl.stopHealthSnapshots()
	frozen := f.ctl.healthSnap.Load()
	if s, h := getHealth(t, f); s != 200 || h.Status != StatusHealthy {
		t.Fatalf("before: %d %+v", s, h)
	}

	f.mustAdmin(ActionSetMaintenanceMode, map[string]any{"enabled": true, "reason": "upgrade"})
	if s, h := getHealth(t, f); s != 503 || h.Status != StatusMaintenance || !contains(h.Reasons, ReasonMaintenance) {
		t.Fatalf("the answer after maintenance on: %d %+v", s, h)
	}
	f.mustAdmin(ActionSetMaintenanceMode, map[string]any{"enabled": false})
	if s, h := getHealth(t, f); s != 200 || h.Status != StatusHealthy {
		t.Fatalf("the answer after maintenance off: %d %+v", s, h)
	}

	if err := f.ctl.Remediate(alerts.ShedLoad, true, "overload", "test"); err != nil {
		t.Fatal(err)
	}
	if s, h := getHealth(t, f); s != 503 || h.Status != StatusUnhealthy || !contains(h.Reasons, ReasonShedding) {
		t.Fatalf("the answer after shedding on: %d %+v", s, h)
	}
	if err := f.ctl.Remediate(alerts.ShedLoad, false, "overload", "test"); err != nil {
		t.Fatal(err)
	}
	if s, h := getHealth(t, f); s != 200 || h.Status != StatusHealthy {
		t.Fatalf("the answer after shedding off: %d %+v", s, h)
	}

	// The connection counts are live too.
	f.dial("")
	f.waitOpen(1)
	if _, h := getHealth(t, f); h.Details.Connections.Total != 1 || h.Details.Connections.Anonymous != 1 {
		t.Fatalf("connections: %+v", h.Details.Connections)
	}
	if f.ctl.healthSnap.Load() != frozen {
		t.Fatal("the health snapshot was taken again: the answers above did not come from it")
	}
}

// A drain shows in the very next answer.
func TestHealthDrainShowsAtOnce(t *testing.T) {
	f := newFixture(t)
	f.engineCfg.DrainDelay = 4 * time.Second // the drain waits until ctx ends
	f.restart(true)
	f.ctl.stopHealthSnapshots()
	if s, _ := getHealth(t, f); s != 200 {
		t.Fatalf("before the drain: %d", s)
	}
	done := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = f.engine.Shutdown(ctx)
		close(done)
	}()
	wstest.WaitFor(t, "draining", f.engine.Draining)
	if s, h := getHealth(t, f); s != 503 || h.Status != StatusDraining {
		t.Fatalf("the answer after the drain began: %d %+v", s, h)
	}
	<-done
}

// The numbers that need a metrics snapshot (the last minute's messages,
// latency, error rate) come from the health snapshot: answers between two
// snapshots show the same numbers, and each tick of the snapshot
// goroutine brings them up to date. The ticks are the test's; uptime keeps
// counting between snapshots.
func TestHealthSnapshotRefreshes(t *testing.T) {
	f := newFixture(t)
	f.ctl.stopHealthSnapshots()
	ticks, stop := make(chan time.Time), make(chan struct{})
	go f.ctl.runHealthSnapshots(ticks, stop)
	defer close(stop)
	tick := func() {
		old := f.ctl.healthSnap.Load()
		ticks <- time.Now()
		wstest.WaitFor(t, "a new health snapshot", func() bool { return f.ctl.healthSnap.Load() != old })
	}
	tick()
	_, before := getHealth(t, f)
	if before.Details.Performance.MessagesPerMinute != 0 {
		t.Fatalf("messages before any was sent: %+v", before.Details.Performance)
	}

	c := f.dial("")
	for range 5 {
		if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":1}`)); err != nil {
			t.Fatal(err)
		}
		readJSON(t, c)
	}
	if _, h := getHealth(t, f); h.Details.Performance != before.Details.Performance {
		t.Fatalf("the numbers changed without a snapshot: %+v, then %+v", before.Details.Performance, h.Details.Performance)
	}
	tick()
	_, after := getHealth(t, f)
	if p := after.Details.Performance; p.MessagesPerMinute <= 0 || p.AvgResponseTime <= 0 {
		t.Fatalf("after a snapshot: %+v", p)
	}
	if after.Uptime < before.Uptime {
		t.Fatalf("uptime went back: %d then %d", before.Uptime, after.Uptime)
	}
}

// The goroutine New starts takes a snapshot on its own (within
// healthRefreshInterval), and Shutdown stops it (TestShutdownLeavesNoGoroutines).
func TestHealthSnapshotGoroutine(t *testing.T) {
	f := newFixture(t)
	c := f.dial("")
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":1}`)); err != nil {
		t.Fatal(err)
	}
	readJSON(t, c)
	wstest.WaitFor(t, "the message in health", func() bool {
		_, h := getHealth(t, f)
		return h.Details.Performance.MessagesPerMinute > 0
	})
}
