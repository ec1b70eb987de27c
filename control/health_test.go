package control

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/netcore/wstest"
)

func decodeHealth(t *testing.T, r *response) Health {
	t.Helper()
	var h Health
	if err := json.Unmarshal(r.body, &h); err != nil {
		t.Fatalf("health body: %v: %s", err, r.body)
	}
	return h
}

// The public body has the seed's shape and nothing sensitive; HEAD answers
// the same status without a body; the Go method agrees.
func TestHealthHealthy(t *testing.T) {
	f := newFixture(t)
	c := f.dial("bob-the-user")
	f.dial("")
	f.waitOpen(2)
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":1}`)); err != nil {
		t.Fatal(err)
	}
	readJSON(t, c)

	r := f.do("GET", PathHealth, "", nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", r.status, r.header.Get("Content-Type"))
	}
	var raw map[string]any
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"status", "responseTime", "uptime", "timestamp", "details"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("no %q in %s", k, r.body)
		}
	}
	details := raw["details"].(map[string]any)
	for _, k := range []string{"connections", "performance", "circuitBreakers"} {
		if _, ok := details[k]; !ok {
			t.Errorf("no details.%s in %s", k, r.body)
		}
	}
	for _, k := range []string{"avgResponseTime", "p95ResponseTime", "p99ResponseTime", "errorRate", "messagesPerMinute"} {
		if _, ok := details["performance"].(map[string]any)[k]; !ok {
			t.Errorf("no details.performance.%s", k)
		}
	}
	h := decodeHealth(t, r)
	if h.Status != StatusHealthy || len(h.Reasons) != 0 {
		t.Fatalf("status %q reasons %v", h.Status, h.Reasons)
	}
	if h.Details.Connections.Total != 2 || h.Details.Connections.Authenticated != 1 || h.Details.Connections.Anonymous != 1 {
		t.Fatalf("connections %+v", h.Details.Connections)
	}
	if h.ResponseTime <= 0 || h.ResponseTime > 1000 || h.Uptime <= 0 || time.Since(h.Timestamp) > time.Minute {
		t.Fatalf("responseTime %v uptime %v timestamp %v", h.ResponseTime, h.Uptime, h.Timestamp)
	}
	if _, err := time.Parse(time.RFC3339, raw["timestamp"].(string)); err != nil {
		t.Fatalf("timestamp %q is not RFC 3339", raw["timestamp"])
	}
	body := string(r.body)
	for _, secret := range []string{"bob-the-user", "127.0.0.1", testAdminSecret, testClientSecret, f.dir, f.wsAddr} {
		if strings.Contains(body, secret) {
			t.Errorf("public health shows %q: %s", secret, body)
		}
	}

	head := f.do("HEAD", PathHealth, "", nil)
	if head.status != 200 || len(head.body) != 0 {
		t.Fatalf("HEAD: status %d, %d body bytes", head.status, len(head.body))
	}
	if g := f.ctl.Health(); g.Status != StatusHealthy || g.HTTPStatus() != 200 || g.Details.Connections.Total != 2 {
		t.Fatalf("Health(): %+v", g)
	}
	if r := f.do("PUT", PathHealth, "", nil); r.status != 405 || r.header.Get("Allow") == "" {
		t.Fatalf("PUT: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
	if r := f.do("GET", "/nope", "", nil); r.status != 404 {
		t.Fatalf("unknown path: %d", r.status)
	}
}

// Maintenance: health 503 "maintenance", readyz 503, livez still 200.
func TestHealthMaintenance(t *testing.T) {
	f := newFixture(t)
	f.engine.SetMaintenance(true, "upgrade", false)
	r := f.do("GET", PathHealth, "", nil)
	if h := decodeHealth(t, r); r.status != 503 || h.Status != StatusMaintenance || h.Reasons[0] != ReasonMaintenance {
		t.Fatalf("health: %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "upgrade") {
		t.Errorf("the public body shows the maintenance reason: %s", r.body)
	}
	if r := f.do("HEAD", PathHealth, "", nil); r.status != 503 {
		t.Fatalf("HEAD: %d", r.status)
	}
	if r := f.do("GET", PathReadyz, "", nil); r.status != 503 || !strings.Contains(string(r.body), `"maintenance"`) {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	if rz := f.ctl.Readyz(); rz.Status != "maintenance" || rz.HTTPStatus() != 503 {
		t.Fatalf("Readyz(): %+v", rz)
	}
	if r := f.do("GET", PathLivez, "", nil); r.status != 200 {
		t.Fatalf("livez in maintenance: %d", r.status)
	}
	f.engine.SetMaintenance(false, "", false)
	if r := f.do("GET", PathHealth, "", nil); r.status != 200 {
		t.Fatalf("after maintenance: %d %s", r.status, r.body)
	}
	if r := f.do("GET", PathReadyz, "", nil); r.status != 200 || f.ctl.Readyz().Status != "ready" {
		t.Fatalf("readyz after maintenance: %d %s", r.status, r.body)
	}
}

// While the engine drains: health 503 "draining", readyz 503.
func TestHealthDraining(t *testing.T) {
	f := newFixture(t)
	f.engineCfg.DrainDelay = 4 * time.Second // the drain waits until ctx ends
	f.restart(true)
	done := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = f.engine.Shutdown(ctx)
		close(done)
	}()
	wstest.WaitFor(t, "draining", f.engine.Draining)
	r := f.do("GET", PathHealth, "", nil)
	if h := decodeHealth(t, r); r.status != 503 || h.Status != StatusDraining {
		t.Fatalf("health while draining: %d %s", r.status, r.body)
	}
	if r := f.do("GET", PathReadyz, "", nil); r.status != 503 || !strings.Contains(string(r.body), "draining") {
		t.Fatalf("readyz while draining: %d %s", r.status, r.body)
	}
	if f.ctl.Health().Status != StatusDraining || f.ctl.Readyz().Status != "draining" {
		t.Fatal("Go methods disagree")
	}
	<-done
}

// Before the engine serves: unhealthy ("starting"), not ready, but alive.
func TestHealthStarting(t *testing.T) {
	f := newFixture(t)
	f.restart(false)
	r := f.do("GET", PathHealth, "", nil)
	if h := decodeHealth(t, r); r.status != 503 || h.Status != StatusUnhealthy || h.Reasons[0] != ReasonStarting {
		t.Fatalf("health while starting: %d %s", r.status, r.body)
	}
	if r := f.do("GET", PathReadyz, "", nil); r.status != 503 || !strings.Contains(string(r.body), "starting") {
		t.Fatalf("readyz while starting: %d %s", r.status, r.body)
	}
	if r := f.do("GET", PathLivez, "", nil); r.status != 200 || f.ctl.Livez().HeartbeatAgeMs != nil {
		t.Fatalf("livez while starting: %d %s", r.status, r.body)
	}
	f.serveEngine()
	if r := f.do("GET", PathReadyz, "", nil); r.status != 200 {
		t.Fatalf("readyz once serving: %d", r.status)
	}
}

// A heartbeat older than LivenessTimeout: livez 503 "stalled", health
// unhealthy.
func TestLivezStalled(t *testing.T) {
	f := newFixture(t)
	if r := f.do("GET", PathLivez, "", nil); r.status != 200 || f.ctl.Livez().HeartbeatAgeMs == nil {
		t.Fatalf("livez: %d %s", r.status, r.body)
	}
	f = newFixture(t, func(c *Config) { c.LivenessTimeout = time.Nanosecond }) // every heartbeat is too old
	r := f.do("GET", PathLivez, "", nil)
	if r.status != 503 || !strings.Contains(string(r.body), `"stalled"`) {
		t.Fatalf("livez with a stale heartbeat: %d %s", r.status, r.body)
	}
	if l := f.ctl.Livez(); l.Status != "stalled" || l.HTTPStatus() != 503 {
		t.Fatalf("Livez(): %+v", l)
	}
	h := f.ctl.Health()
	if h.Status != StatusUnhealthy || !contains(h.Reasons, ReasonStalled) || h.HTTPStatus() != 503 {
		t.Fatalf("health with a stale heartbeat: %+v", h)
	}
}

// The error rate and memory checks.
func TestHealthDegradedAndMemory(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.DegradedMinMessages = 5
		c.DegradedErrorRate = 0.2
	})
	c := f.dial("")
	for i := range 10 {
		msg := `{"type":"ping","id":1}`
		if i%2 == 0 {
			msg = `not json`
		}
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		readJSON(t, c)
	}
	f.ctl.refreshHealth() // what the health snapshot goroutine does every second
	r := f.do("GET", PathHealth, "", nil)
	h := decodeHealth(t, r)
	if r.status != 200 || h.Status != StatusDegraded || !contains(h.Reasons, ReasonErrorRate) || h.Details.Performance.ErrorRate < 0.4 {
		t.Fatalf("health with half the messages in error: %d %s", r.status, r.body)
	}

	// The memory checks through the Go method only: cfg is changed while no
	// request is in flight.
	snap := f.ctl.metrics.Snapshot()
	used := memoryUsed(&snap.Process)
	f.ctl.cfg.MemoryLimit = int64(used) * 4
	f.ctl.cfg.MemoryDegradedRatio = 0.01
	if h := f.ctl.Health(); h.Status != StatusDegraded || !contains(h.Reasons, ReasonMemoryHigh) {
		t.Fatalf("memory over the degraded ratio: %+v", h)
	}
	f.ctl.cfg.MemoryLimit = 1
	if h := f.ctl.Health(); h.Status != StatusUnhealthy || !contains(h.Reasons, ReasonMemory) || h.HTTPStatus() != 503 {
		t.Fatalf("memory over the limit: %+v", h)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
