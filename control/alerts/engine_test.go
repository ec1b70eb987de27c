package alerts

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// shed_load is applied when the alert fires and undone when it resolves;
// without an acknowledgement it turns off at maxRemediationMs, with one it
// stays until the resolve.
func TestRemediation(t *testing.T) {
	r := newRig(t, func(c *Config) { c.FlapWindow = -1 })
	shed := rule("overload", "connections", ">", 0, 0, LevelCritical)
	shed.Remediation, shed.MaxRemediationMs = ShedLoad, 60_000
	r.e.SetStoredRules([]Rule{shed})
	open(r.m, 1)
	r.step(0)
	if c := r.rem.list(); len(c) != 1 || c[0].kind != ShedLoad || !c[0].on || c[0].rule != "overload" {
		t.Fatalf("calls %+v", c)
	}
	if a := r.e.Alerts()[0]; !a.RemediationActive || a.Remediation != ShedLoad {
		t.Fatalf("alert %+v", a)
	}
	r.step(59 * time.Second)
	r.step(time.Second)
	c := r.rem.list()
	if len(c) != 2 || c[1].on {
		t.Fatalf("not expired at maxRemediationMs: %+v", c)
	}
	if a := r.e.Alerts()[0]; a.RemediationActive || !a.RemediationExpired || a.State != StateFiring {
		t.Fatalf("after expiry %+v", a)
	}
	closeConns(r.m, 1)
	r.step(time.Second) // resolves; nothing left to undo
	if c := r.rem.list(); len(c) != 2 {
		t.Fatalf("undone twice: %+v", c)
	}

	// Acknowledged: stays on past the cap, off at the resolve.
	open(r.m, 1)
	r.step(time.Second)
	if _, err := r.e.Acknowledge("overload", "alice", "looking"); err != nil {
		t.Fatal(err)
	}
	r.step(10 * time.Minute)
	if c := r.rem.list(); len(c) != 3 || !c[2].on {
		t.Fatalf("acknowledged remediation: %+v", c)
	}
	closeConns(r.m, 1)
	r.step(time.Second)
	if c := r.rem.list(); len(c) != 4 || c[3].on {
		t.Fatalf("not undone at the resolve: %+v", c)
	}
	k := r.kinds("overload")
	if n := strings.Count(strings.Join(k, ","), EventRemediation); n != 4 || !slices.Contains(k, EventAcknowledged) {
		t.Fatalf("history %v", k)
	}

	// Switching the rule to notify_only while it fires undoes the
	// remediation at the next evaluation.
	open(r.m, 1)
	r.step(time.Second)
	shed.Remediation = NotifyOnly
	r.e.SetStoredRules([]Rule{shed})
	r.step(time.Second)
	if c := r.rem.list(); len(c) != 6 || c[5].on || c[5].kind != ShedLoad {
		t.Fatalf("after switching to notify_only: %+v", c)
	}
	closeConns(r.m, 1)
	r.step(time.Second)
	if c := r.rem.list(); len(c) != 6 {
		t.Fatalf("undone twice: %+v", c)
	}
}

// Acknowledging stops the repeats; a silenced alert is not notified and
// the history says silenced once; a resolve still reaches the channels
// that were told it fired.
func TestAcknowledgeAndSilence(t *testing.T) {
	rc := newReceiver(t)
	r := newRig(t, func(c *Config) {
		c.RepeatInterval = time.Hour
		c.Channels = []ChannelConfig{{Name: "webhook", Type: TypeWebhook, URL: rc.srv.URL}}
	})
	r.e.SetStoredRules([]Rule{rule("a", "connections", ">", 0, 0, LevelWarning), rule("b", "connections", ">", 0, 0, LevelInfo)})
	if _, err := r.e.Acknowledge("a", "alice", ""); !errors.Is(err, ErrNotFiring) {
		t.Fatalf("ack of an inactive alert: %v", err)
	}
	s, err := r.e.AddSilence(Silence{Level: LevelInfo, EndsAt: r.clk.Now().Add(3 * time.Hour)}, "bob")
	if err != nil {
		t.Fatal(err)
	}
	open(r.m, 1)
	r.step(0)
	wstest.WaitFor(t, "the trigger of a", func() bool { return len(rc.delivered()) == 1 })
	if p := rc.webhooks(t)[0]; len(p.Alerts) != 1 || p.Alerts[0].Labels["alertname"] != "a" {
		t.Fatalf("sent %+v", p)
	}
	if a := r.e.Alerts(); a[1].Name != "b" || len(a[1].SilencedBy) != 1 || a[1].SilencedBy[0] != s.ID {
		t.Fatalf("b not silenced: %+v", a[1])
	}
	r.step(time.Hour) // repeat of a; b still silenced
	wstest.WaitFor(t, "the repeat of a", func() bool { return len(rc.delivered()) == 2 })
	if _, err := r.e.Acknowledge("a", "alice", "on it"); err != nil {
		t.Fatal(err)
	}
	r.step(time.Hour) // no repeat after the acknowledgement
	if _, err := r.e.ExpireSilence(s.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	r.step(time.Hour) // b now due for a (first) notification: a repeat past the silence
	wstest.WaitFor(t, "b after the silence", func() bool { return len(rc.delivered()) == 3 })
	closeConns(r.m, 1)
	r.step(time.Second)
	wstest.WaitFor(t, "the resolves", func() bool {
		n := 0
		for _, p := range rc.webhooks(t) {
			for _, a := range p.Alerts {
				if a.Status == "resolved" {
					n++
				}
			}
		}
		return n == 2
	})
	if got := r.kinds("b"); !slices.Equal(got, []string{EventFiring, EventSilenced, EventResolved}) {
		t.Fatalf("history of b %v", got)
	}
	if got := r.kinds("a"); !slices.Equal(got, []string{EventFiring, EventAcknowledged, EventResolved}) {
		t.Fatalf("history of a %v", got)
	}
	if sl := r.e.Silences(); len(sl) != 1 || sl[0].ExpiredBy != "bob" {
		t.Fatalf("silences %+v", sl)
	}
	for _, bad := range []struct {
		s     Silence
		field string
	}{
		{Silence{EndsAt: r.clk.Now().Add(time.Hour)}, "data.name"},
		{Silence{Name: "a"}, "data.endsAt"},
		{Silence{Name: "a", EndsAt: r.clk.Now().Add(-time.Hour)}, "data.endsAt"},
		{Silence{Level: "page", EndsAt: r.clk.Now().Add(time.Hour)}, "data.level"},
	} {
		_, err := r.e.AddSilence(bad.s, "x")
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != bad.field {
			t.Errorf("%+v: %v, want an error on %s", bad.s, err, bad.field)
		}
	}
}

// The history is bounded by count (and age), filters by name, level and
// time, and a firing alert is resumed after a restart on the same store,
// so that its resolve still goes out.
func TestHistoryBoundsAndRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "control.db")
	clk := newClock()
	m, _ := metrics.New(metrics.Options{Now: clk.Now})
	db := openDB(t, path)
	rc := newReceiver(t)
	cfg := Config{DB: db, Metrics: m, Now: clk.Now, HistoryMaxEntries: 10, GroupWait: -1, FlapWindow: -1, Instance: "n",
		Channels: []ChannelConfig{{Name: "webhook", Type: TypeWebhook, URL: rc.srv.URL}}}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.SetStoredRules([]Rule{rule("a", "connections", ">", 0, 0, LevelWarning), rule("b", "connections", ">", 5, 0, LevelCritical)})
	for range 10 {
		open(m, 1)
		clk.Advance(time.Second)
		e.Evaluate()
		closeConns(m, 1)
		clk.Advance(time.Second)
		e.Evaluate()
	}
	if n, _ := e.HistoryCount(); n != 10 {
		t.Fatalf("%d entries kept, want 10", n)
	}
	h, _ := e.History(HistoryQuery{Limit: 3, Since: clk.Now().Add(-3 * time.Second)})
	if len(h) != 3 || h[0].Kind != EventResolved || h[0].Time != clk.Now() {
		t.Fatalf("newest first: %+v", h)
	}
	if h, _ := e.History(HistoryQuery{Level: LevelCritical}); len(h) != 0 {
		t.Fatalf("critical: %+v", h)
	}
	if h, _ := e.History(HistoryQuery{Until: clk.Now().Add(-time.Second)}); len(h) != 9 {
		t.Fatalf("until: %d", len(h))
	}
	open(m, 1)
	clk.Advance(time.Second)
	e.Evaluate()
	wstest.WaitFor(t, "the trigger", func() bool {
		p := rc.webhooks(t)
		return len(p) > 0 && p[len(p)-1].Status == "firing"
	})
	before := len(rc.delivered())
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = e.Close(ctx)
	cancel()

	// Same store, new engine and metrics (no connection): a resumes firing
	// and resolves, and the webhook gets the resolve.
	m2, _ := metrics.New(metrics.Options{Now: clk.Now})
	cfg.Metrics = m2
	e2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e2.Close(context.Background()) })
	e2.SetStoredRules([]Rule{rule("a", "connections", ">", 0, 0, LevelWarning)})
	if rs := e2.Rules(); rs[0].State != StateInactive {
		t.Fatalf("before the first evaluation %+v", rs[0])
	}
	clk.Advance(time.Second)
	e2.Evaluate()
	wstest.WaitFor(t, "the resolve after the restart", func() bool { return len(rc.delivered()) == before+1 })
	if p := rc.webhooks(t); p[len(p)-1].Status != "resolved" {
		t.Fatalf("after the restart: %+v", p[len(p)-1])
	}
}

// A node restarted while a shed_load alert fires applies the remediation
// again (the engine state it changed did not survive the restart).
func TestRemediationResumedAfterRestart(t *testing.T) {
	clk := newClock()
	db := openDB(t, filepath.Join(t.TempDir(), "control.db"))
	shed := rule("overload", "connections", ">", 0, 0, LevelCritical)
	shed.Remediation = ShedLoad
	run := func() (*Engine, *remediator, *metrics.Metrics) {
		m, _ := metrics.New(metrics.Options{Now: clk.Now})
		rem := &remediator{}
		e, err := New(Config{DB: db, Metrics: m, Now: clk.Now, Remediator: rem, Instance: "n"})
		if err != nil {
			t.Fatal(err)
		}
		e.SetStoredRules([]Rule{shed})
		return e, rem, m
	}
	e, rem, m := run()
	open(m, 1)
	e.Evaluate()
	_ = e.Close(context.Background())
	if c := rem.list(); len(c) != 1 || !c[0].on {
		t.Fatalf("first run: %+v", c)
	}
	e2, rem2, m2 := run()
	defer e2.Close(context.Background())
	open(m2, 1)
	clk.Advance(time.Second)
	e2.Evaluate()
	if c := rem2.list(); len(c) != 1 || !c[0].on || c[0].kind != ShedLoad {
		t.Fatalf("after the restart: %+v", c)
	}
	closeConns(m2, 1)
	clk.Advance(time.Second)
	e2.Evaluate()
	if c := rem2.list(); len(c) != 2 || c[1].on {
		t.Fatalf("after the resolve: %+v", c)
	}
}

// OnAlert hooks run off the evaluation goroutine: a hook that blocks does
// not delay Evaluate, and events beyond the queue are dropped and counted.
func TestSlowHookDoesNotDelayEvaluation(t *testing.T) {
	r := newRig(t, func(c *Config) { c.HookQueue = 2; c.FlapWindow = -1 })
	release := make(chan struct{})
	r.e.OnAlert(func(AlertEvent) { <-release })
	defer close(release)
	r.e.SetStoredRules([]Rule{rule("a", "connections", ">", 0, 0, LevelWarning)})
	start := time.Now()
	for range 20 {
		open(r.m, 1)
		r.step(time.Second)
		closeConns(r.m, 1)
		r.step(time.Second)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("40 evaluations took %v behind a blocked hook", d)
	}
	if r.e.HookDropped() == 0 {
		t.Fatal("no event dropped")
	}
}

// Rule validation: the seed's aliases, the stored severity field, and a
// 422-worthy error naming the field for each bad input.
func TestRuleInput(t *testing.T) {
	gt, dur, sev := "gt", int64(300000), "critical"
	thr := 0.5
	r, fe := (&RuleInput{Name: "x", Metric: ptr("error_rate"), Comparison: &gt, Duration: &dur, Severity: &sev, Threshold: &thr}).Apply("data", NewRule("x"), false)
	if fe != nil || r.Operator != ">" || r.ForMs != 300000 || r.Level != LevelCritical {
		t.Fatalf("aliases: %+v %v", r, fe)
	}
	var stored Rule
	if err := stored.UnmarshalJSON([]byte(`{"name":"old","metric":"connections","operator":">","threshold":1,"forMs":0,"severity":"critical","enabled":true}`)); err != nil || stored.Level != LevelCritical {
		t.Fatalf("stored severity: %+v %v", stored, err)
	}
	nan, inf := math.NaN(), math.Inf(1)
	neg := int64(-1)
	for _, tc := range []struct {
		in    RuleInput
		field string
	}{
		{RuleInput{Name: "x"}, "data.metric"},
		{RuleInput{Name: "x", Metric: ptr("nope"), Threshold: &thr}, "data.metric"},
		{RuleInput{Name: "x", Metric: ptr("connections"), Threshold: &nan}, "data.threshold"},
		{RuleInput{Name: "x", Metric: ptr("connections"), Threshold: &inf}, "data.threshold"},
		{RuleInput{Name: "x", Metric: ptr("connections"), Threshold: &thr, ForMs: &neg}, "data.forMs"},
		{RuleInput{Name: "x", Metric: ptr("connections"), Threshold: &thr, KeepFiringForMs: &neg}, "data.keepFiringForMs"},
		{RuleInput{Name: "x", Metric: ptr("connections"), Threshold: &thr, Level: ptr("page")}, "data.level"},
		{RuleInput{Name: "x", Metric: ptr("connections"), Threshold: &thr, Comparison: ptr("eq")}, "data.comparison"},
		{RuleInput{Name: "x", Metric: ptr("connections"), Threshold: &thr, Remediation: ptr("maintenance")}, "data.remediation"},
		{RuleInput{Name: "x", Metric: ptr("connections"), Threshold: &thr, Remediation: ptr("reboot")}, "data.remediation"},
		{RuleInput{Name: "x", Metric: ptr("connections"), Threshold: &thr, Escalate: &[]Escalation{{AfterMs: 1000, Level: LevelInfo}}}, "data.escalate[0].level"},
		{RuleInput{Name: "x", Metric: ptr("connections"), Threshold: &thr, Escalate: &[]Escalation{{AfterMs: -5, Level: LevelCritical}}}, "data.escalate[0].afterMs"},
		{RuleInput{Name: "x", Metric: ptr("connections"), Threshold: &thr, Labels: map[string]string{"severity": "x"}}, "data.labels.severity"},
		{RuleInput{Name: "x", Metric: ptr("connections"), Threshold: &thr, RunbookURL: ptr("ftp://x")}, "data.runbookUrl"},
		{RuleInput{Name: "x", Metric: ptr("connections"), Threshold: &thr, Notify: &[]string{"Bad Name"}}, "data.notify[0]"},
	} {
		_, fe := tc.in.Apply("data", NewRule("x"), false)
		if fe == nil || fe.Field != tc.field {
			t.Errorf("%+v: %v, want an error on %s", tc.in, fe, tc.field)
		}
	}
	for _, d := range DefaultRules(time.Now()) {
		if fe := d.Validate(); fe != nil {
			t.Errorf("default %s: %v", d.Name, fe)
		}
	}
}

func ptr[T any](v T) *T { return &v }
