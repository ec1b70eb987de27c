package alerts

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore/wstest"
)

func open(m *metrics.Metrics, n int) {
	for range n {
		m.ConnectionOpened(metrics.Authenticated)
	}
}

func closeConns(m *metrics.Metrics, n int) {
	for range n {
		m.ConnectionClosed(metrics.Authenticated, metrics.InitiatorClient, metrics.ReasonNormal)
	}
}

// inactive -> pending -> firing -> resolved -> inactive, each transition
// in the history with the value and threshold; a pending condition that
// clears goes back to inactive and forMs starts over.
func TestStatesPendingFiringResolved(t *testing.T) {
	r := newRig(t, func(c *Config) { c.ResolvedRetention = 10 * time.Minute })
	r.e.SetStoredRules([]Rule{rule("busy", "connections", ">", 2, 60_000, LevelWarning)})
	r.step(0)
	r.expect("busy", StateInactive)

	open(r.m, 3)
	r.step(5 * time.Second)
	r.expect("busy", StatePending)
	r.step(30 * time.Second)
	r.expect("busy", StatePending)
	closeConns(r.m, 2) // clears before forMs: back to inactive
	r.step(5 * time.Second)
	r.expect("busy", StateInactive)
	open(r.m, 2)
	r.step(5 * time.Second)
	r.expect("busy", StatePending)
	r.step(55 * time.Second) // 55 s after pending: not yet
	r.expect("busy", StatePending)
	r.step(5 * time.Second)
	r.expect("busy", StateFiring)

	a := r.e.Alerts()
	if len(a) != 1 || a[0].Value != 3 || a[0].Threshold != 2 || a[0].Labels["alertname"] != "busy" || a[0].Labels["severity"] != "warning" ||
		a[0].Labels["instance"] != "node1" || a[0].StartsAt != r.clk.Now() {
		t.Fatalf("alerts %+v", a)
	}
	closeConns(r.m, 3)
	r.step(5 * time.Second)
	r.expect("busy", StateResolved)
	if a := r.e.Alerts(); len(a) != 1 || a[0].EndsAt != r.clk.Now() {
		t.Fatalf("resolved alert listed as %+v", a)
	}
	r.step(11 * time.Minute)
	r.expect("busy", StateInactive)
	if a := r.e.Alerts(); len(a) != 0 {
		t.Fatalf("after the retention: %+v", a)
	}
	want := []string{EventPending, EventInactive, EventPending, EventFiring, EventResolved}
	if got := r.kinds("busy"); !slices.Equal(got, want) {
		t.Fatalf("history %v, want %v", got, want)
	}
	h, _ := r.e.History(HistoryQuery{Name: "busy", Limit: 1})
	if h[0].Value != 0 || h[0].Threshold != 2 || h[0].Level != LevelWarning || h[0].State != StateResolved || h[0].Metric != "connections" {
		t.Fatalf("last entry %+v", h[0])
	}
	var buf strings.Builder
	r.m.WritePrometheus(&buf)
	if !strings.Contains(buf.String(), `sockmon_alerts{level="warning",state="inactive"} 1`) {
		t.Fatalf("gauge:\n%s", buf.String())
	}
}

// keepFiringForMs holds a firing alert until the condition has been clear
// that long; a condition that comes back within it keeps the same alert.
func TestKeepFiringFor(t *testing.T) {
	r := newRig(t, nil)
	k := rule("conns", "connections", ">", 0, 0, LevelWarning)
	k.KeepFiringForMs = 30_000
	r.e.SetStoredRules([]Rule{k})
	open(r.m, 1)
	r.step(0)
	r.expect("conns", StateFiring)
	started := r.e.Alerts()[0].StartsAt
	closeConns(r.m, 1)
	r.step(5 * time.Second)
	r.expect("conns", StateFiring)
	r.step(20 * time.Second)
	r.expect("conns", StateFiring)
	open(r.m, 1) // back before the 30 s: same alert, the clock starts over
	r.step(1 * time.Second)
	closeConns(r.m, 1)
	r.step(5 * time.Second)
	r.step(25 * time.Second)
	r.expect("conns", StateFiring)
	if r.e.Alerts()[0].StartsAt != started {
		t.Fatal("the alert restarted")
	}
	r.step(5 * time.Second)
	r.expect("conns", StateResolved)
	if got := r.kinds("conns"); !slices.Equal(got, []string{EventFiring, EventResolved}) {
		t.Fatalf("history %v", got)
	}
}

// A warning still firing after its escalation's afterMs becomes critical:
// history, hooks and the gauge say so, and a later escalation to emergency
// follows.
func TestEscalation(t *testing.T) {
	r := newRig(t, nil)
	var mu sync.Mutex
	var events []AlertEvent
	r.e.OnAlert(func(ev AlertEvent) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	})
	esc := rule("conns", "connections", ">", 0, 0, LevelWarning)
	esc.Escalate = []Escalation{{AfterMs: 600_000, Level: LevelCritical}, {AfterMs: 1_200_000, Level: LevelEmergency}}
	r.e.SetStoredRules([]Rule{esc})
	open(r.m, 1)
	r.step(0)
	r.step(9 * time.Minute)
	if a := r.e.Alerts()[0]; a.Level != LevelWarning {
		t.Fatalf("level %s at 9 min", a.Level)
	}
	r.step(time.Minute)
	if a := r.e.Alerts()[0]; a.Level != LevelCritical || a.Labels["severity"] != "critical" {
		t.Fatalf("level %s at 10 min", a.Level)
	}
	r.step(10 * time.Minute)
	if a := r.e.Alerts()[0]; a.Level != LevelEmergency {
		t.Fatalf("level %s at 20 min", a.Level)
	}
	if got := r.kinds("conns"); !slices.Equal(got, []string{EventFiring, EventEscalated, EventEscalated}) {
		t.Fatalf("history %v", got)
	}
	wstest.WaitFor(t, "the hooks", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) == 3
	})
	if events[1].Kind != EventEscalated || events[1].Alert.Level != LevelCritical || events[2].Alert.Level != LevelEmergency {
		t.Fatalf("events %+v", events)
	}
	var buf strings.Builder
	r.m.WritePrometheus(&buf)
	if !strings.Contains(buf.String(), `sockmon_alerts{level="emergency",state="firing"} 1`) {
		t.Fatal("gauge does not show the escalated level")
	}
	closeConns(r.m, 1)
	r.step(5 * time.Second)
	r.expect("conns", StateResolved)
}

// A condition that flaps every evaluation does not page every time: the
// first firing and its resolve go out, the second firing within the flap
// window goes out marked flapping, and then the alert stays firing until
// the condition has been clear for a whole flap window: two triggers in
// ten minutes of flapping every 10 seconds.
func TestFlappingIsDamped(t *testing.T) {
	rc := newReceiver(t)
	r := newRig(t, func(c *Config) {
		c.Channels = []ChannelConfig{{Name: "webhook", Type: TypeWebhook, URL: rc.srv.URL}}
	})
	r.e.SetStoredRules([]Rule{rule("conns", "connections", ">", 0, 0, LevelWarning)})
	up := false
	for i := range 60 { // 10 minutes, flipping every 10 s
		if up {
			closeConns(r.m, 1)
		} else {
			open(r.m, 1)
		}
		up = !up
		r.step(10 * time.Second)
		// Let the sender deliver before the next flip, as real time would.
		want := min(i+1, 3)
		wstest.WaitFor(t, "deliveries", func() bool { return len(rc.delivered()) >= want })
	}
	r.expect("conns", StateFiring)
	got := rc.webhooks(t)
	if len(got) != 3 || got[0].Status != "firing" || got[1].Status != "resolved" || got[2].Status != "firing" {
		t.Fatalf("%d notifications: %+v", len(got), got)
	}
	if a := r.e.Alerts()[0]; !a.Flapping {
		t.Fatal("not marked flapping")
	}
	// Calm: resolved only after a whole flap window (10 min) clear.
	if up {
		closeConns(r.m, 1)
	}
	r.step(5 * time.Minute)
	r.expect("conns", StateFiring)
	r.step(5 * time.Minute)
	r.expect("conns", StateResolved)
	wstest.WaitFor(t, "the resolve", func() bool { return len(rc.delivered()) == 4 })
	if got := rc.webhooks(t); got[3].Status != "resolved" {
		t.Fatalf("last %+v", got[3])
	}
	h, _ := r.e.History(HistoryQuery{Name: "conns", Limit: 1000})
	if n := len(h); n != 4 {
		t.Fatalf("%d history entries, want 4 (fire, resolve, fire flapping, resolve)", n)
	}
}

// An alert that fires and resolves within the group wait, before
// anything was sent, is not sent at all.
func TestBlipWithinGroupWaitIsNotSent(t *testing.T) {
	rc := newReceiver(t)
	r := newRig(t, func(c *Config) {
		c.GroupWait = 300 * time.Millisecond
		c.Channels = []ChannelConfig{{Name: "webhook", Type: TypeWebhook, URL: rc.srv.URL}}
	})
	r.e.SetStoredRules([]Rule{rule("blip", "connections", ">", 0, 0, LevelWarning), rule("steady", "connections", ">=", 0, 0, LevelWarning)})
	open(r.m, 1)
	r.step(0)
	closeConns(r.m, 1)
	r.step(time.Second)
	r.expect("blip", StateResolved)
	wstest.WaitFor(t, "the group", func() bool { return len(rc.delivered()) == 1 })
	p := rc.webhooks(t)[0]
	if len(p.Alerts) != 1 || p.Alerts[0].Labels["alertname"] != "steady" {
		t.Fatalf("sent %+v", p)
	}
}

// Metrics a rule watches, computed from a real metrics instance with
// recorded traffic.
func TestMetricValues(t *testing.T) {
	hb := time.Time{}
	var hbMu sync.Mutex
	open := 0
	r := newRig(t, func(c *Config) {
		c.Sources = Sources{
			Heartbeat: func() time.Time {
				hbMu.Lock()
				defer hbMu.Unlock()
				return hb
			},
			HeartbeatTimeout: 3 * time.Second,
			SlowConsumers:    func() uint64 { return 6 },
			OpenBreakers:     func() int { return open },
		}
	})
	m := r.m
	sh := m.Shard(1)
	for i := range 100 {
		sh.MessageReceived(10)
		sh.ObserveMessage(metrics.KindEcho, time.Duration(i+1)*time.Millisecond)
	}
	for range 20 {
		sh.MessageError(metrics.ErrBadRequest)
	}
	m.ConnectionOpened(metrics.Authenticated)
	m.ConnectionOpened(metrics.Anonymous)
	m.ConnectionOpened(metrics.Anonymous)
	m.ConnectionRejected(metrics.RejectLimit)
	r.clk.Advance(30 * time.Second)
	snap := m.Snapshot()
	v := r.e.values(&snap, r.clk.Now())
	checks := map[string]func(float64) bool{
		"error_rate":                func(x float64) bool { return x == 0.2 },
		"response_time":             func(x float64) bool { return x >= 98 && x <= 101 },
		"response_time_p95":         func(x float64) bool { return x >= 94 && x <= 96 },
		"response_time_avg":         func(x float64) bool { return x > 49 && x < 52 },
		"connections":               func(x float64) bool { return x == 3 },
		"connections_authenticated": func(x float64) bool { return x == 1 },
		"connections_anonymous":     func(x float64) bool { return x == 2 },
		"messages_per_second":       func(x float64) bool { return x > 0 },
		"heap_bytes":                func(x float64) bool { return x > 0 },
		"breaker_open":              func(x float64) bool { return x == 0 },
		"event_loop_stalled":        func(x float64) bool { return x == 0 },
	}
	for name, ok := range checks {
		if !v[name].Known || !ok(v[name].V) {
			t.Errorf("%s = %+v", name, v[name])
		}
	}
	if mpm := v["messages_per_minute"].V; mpm != v["messages_per_second"].V*60 {
		t.Errorf("messages_per_minute %v", mpm)
	}
	if v["memory_usage"].Known || !strings.Contains(v["memory_usage"].Why, "no memory limit") {
		t.Errorf("memory_usage without a limit: %+v", v["memory_usage"])
	}
	if v["rejected_connections_per_second"].Known {
		t.Errorf("a rate from one sample: %+v", v["rejected_connections_per_second"])
	}
	for _, name := range MetricNames() {
		if _, ok := v[name]; !ok {
			t.Errorf("metric %s not computed", name)
		}
	}
	// Second sample, 30 s later: 30 more refusals; 6 slow consumers since.
	for range 30 {
		m.ConnectionRejected(metrics.RejectRate)
	}
	hbMu.Lock()
	hb = r.clk.Now()
	hbMu.Unlock()
	open = 2
	r.clk.Advance(30 * time.Second)
	snap = m.Snapshot()
	v = r.e.values(&snap, r.clk.Now())
	if x := v["rejected_connections_per_second"]; !x.Known || x.V != 1 {
		t.Errorf("rejected_connections_per_second %+v, want 1", x)
	}
	if x := v["slow_consumer_closes_per_minute"]; !x.Known || x.V != 0 {
		t.Errorf("slow_consumer_closes_per_minute %+v, want 0", x)
	}
	if x := v["event_loop_stalled"]; x.V != 1 {
		t.Errorf("heartbeat 30 s old: stalled %+v", x)
	}
	if x := v["breaker_open"]; x.V != 2 {
		t.Errorf("breaker_open %+v", x)
	}
	if p := snap.Process; p.Available {
		if !v["rss_bytes"].Known || v["rss_bytes"].V <= 0 || !v["cpu_usage"].Known || !v["load_average_1m"].Known {
			t.Errorf("process metrics %+v %+v %+v", v["rss_bytes"], v["cpu_usage"], v["load_average_1m"])
		}
	}

	// A rule on an unknown metric never fires and says why.
	r.e.SetStoredRules([]Rule{rule("mem", "memory_usage", ">", 0, 0, LevelCritical)})
	r.step(time.Second)
	rs := r.e.Rules()
	if rs[0].State != StateInactive || rs[0].Value != nil || !strings.Contains(rs[0].Unknown, "no memory limit") {
		t.Fatalf("rule on an unknown metric: %+v", rs[0])
	}
}

// With a memory limit, memory_usage is the resident set over it.
func TestMemoryUsage(t *testing.T) {
	r := newRig(t, func(c *Config) { c.Sources.MemoryLimit = 1 << 40 })
	snap := r.m.Snapshot()
	v := r.e.values(&snap, r.clk.Now())
	if x := v["memory_usage"]; !x.Known || x.V <= 0 || x.V >= 0.01 {
		t.Fatalf("memory_usage %+v", x)
	}
}
