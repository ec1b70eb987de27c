package control

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/control/alerts"
	"github.com/sockmon/sockmon/netcore/wstest"
)

const (
	testWebhookSecret = "hook-secret-0123456789"
	testRoutingKey    = "ROUTINGKEY0123456789abcdefABCDEF"
	testSlackPath     = "/services/T0/B0/SLACKSECRETPATH"
)

// hookReceiver records webhook bodies.
type hookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []alerts.WebhookPayload
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var p alerts.WebhookPayload
		if json.Unmarshal(b, &p) == nil && alerts.VerifySignature([]byte(testWebhookSecret), b, r.Header.Get(alerts.SignatureHeader)) {
			h.mu.Lock()
			h.bodies = append(h.bodies, p)
			h.mu.Unlock()
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) statuses() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, p := range h.bodies {
		for _, a := range p.Alerts {
			out = append(out, a.Labels["alertname"]+":"+a.Status)
		}
	}
	return out
}

// alertsFixture is a node whose alerts engine evaluates every 20 ms and
// notifies a local webhook receiver (signed), a Slack URL and a PagerDuty
// key that must never show.
func alertsFixture(t *testing.T) (*fixture, *hookReceiver) {
	hook := newHookReceiver(t)
	f := newFixture(t, func(c *Config) {
		c.Alerts = alerts.Config{Interval: 20 * time.Millisecond, GroupWait: -1, FlapWindow: -1,
			Channels: []alerts.ChannelConfig{
				{Name: "webhook", Type: alerts.TypeWebhook, URL: hook.srv.URL, Secret: testWebhookSecret},
				{Name: "slack", Type: alerts.TypeSlack, URL: "http://127.0.0.1:1" + testSlackPath},
				{Name: "pagerduty", Type: alerts.TypePagerDuty, URL: "http://127.0.0.1:1/v2/enqueue", RoutingKey: testRoutingKey},
			}}
	})
	return f, hook
}

func (f *fixture) alertState(name string) string {
	f.t.Helper()
	var d struct{ Alerts []alerts.Alert }
	if err := json.Unmarshal(f.mustAdmin(ActionGetAlerts, nil), &d); err != nil {
		f.t.Fatal(err)
	}
	for _, a := range d.Alerts {
		if a.Name == name {
			return string(a.State)
		}
	}
	return "inactive"
}

// A rule configured through the admin API fires when a client connects:
// the webhook gets it signed, get_alerts and the admin views list it, its
// shed_load remediation refuses new clients with 503 while the connected
// one is served, readiness and health say so, the audit log has the
// remediation by "alerts"; acknowledge, silences and the history work
// through the API; and it all resolves when the client leaves.
func TestAlertsThroughTheAdminAPI(t *testing.T) {
	f, hook := alertsFixture(t)
	f.mustAdmin(ActionConfigureAlert, map[string]any{"name": "conns", "metric": "connections", "comparison": "gt", "threshold": 0,
		"duration": 0, "severity": "critical", "remediation": "shed_load", "notify": []string{"webhook"}, "labels": map[string]string{"team": "rt"}})
	c := f.dial("carol")
	wstest.WaitFor(t, "the alert firing", func() bool { return f.alertState("conns") == "firing" })
	wstest.WaitFor(t, "the signed webhook", func() bool { return strings.Join(hook.statuses(), ",") == "conns:firing" })

	st, err := f.ctl.AdminStatus()
	if err != nil || len(st.ActiveAlerts) != 1 || st.ActiveAlerts[0].Level != "critical" || st.ShedLoad == nil {
		t.Fatalf("admin status: %+v %v", st, err)
	}
	d, err := f.ctl.DetailedHealth(DetailedHealthOptions{})
	if err != nil || len(d.ActiveAlerts) != 1 {
		t.Fatalf("detailed health: %+v %v", d.ActiveAlerts, err)
	}

	// Shedding: new clients 503 + Retry-After, the connected one served.
	_, resp, err := dialRaw(f.wsAddr)
	if err == nil || resp == nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a new client while shedding: %v %+v", err, resp)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":1}`)); err != nil {
		t.Fatal(err)
	}
	if m := readJSON(t, c); m["type"] != "pong" {
		t.Fatalf("connected client got %v", m)
	}
	if r := f.do("GET", PathReadyz, "", nil); r.status != 503 || !strings.Contains(string(r.body), `"shedding"`) {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	if r := f.do("GET", PathHealth, "", nil); r.status != 503 || !strings.Contains(string(r.body), ReasonShedding) {
		t.Fatalf("health: %d %s", r.status, r.body)
	}

	a := unmarshal[struct{ Alert alerts.Alert }](t, f.mustAdmin(ActionAcknowledgeAlert, map[string]any{"name": "conns", "comment": "looking"}))
	if !a.Alert.Acknowledged || a.Alert.AcknowledgedBy != "alice" {
		t.Fatalf("acknowledged %+v", a.Alert)
	}
	s := unmarshal[struct{ Silence alerts.Silence }](t, f.mustAdmin(ActionSilenceAlerts, map[string]any{"labels": map[string]string{"team": "rt"}, "durationMs": 3600000, "comment": "deploy"}))
	if s.Silence.ID == "" || s.Silence.CreatedBy != "alice" || s.Silence.EndsAt.Sub(s.Silence.StartsAt) != time.Hour {
		t.Fatalf("silence %+v", s.Silence)
	}
	list := unmarshal[struct{ Silences []alerts.Silence }](t, f.mustAdmin(ActionGetSilences, nil))
	if len(list.Silences) != 1 {
		t.Fatalf("silences %+v", list)
	}
	f.mustAdmin(ActionExpireSilence, map[string]any{"id": s.Silence.ID})
	if r := f.admin(ActionExpireSilence, map[string]any{"id": "nope"}); r.status != 404 {
		t.Fatalf("expire an unknown silence: %d", r.status)
	}

	_ = c.Close()
	wstest.WaitFor(t, "the resolve", func() bool { return f.alertState("conns") == "resolved" })
	wstest.WaitFor(t, "the webhook's resolve", func() bool { return strings.Join(hook.statuses(), ",") == "conns:firing,conns:resolved" })
	wstest.WaitFor(t, "readiness back", func() bool { return f.engine.Ready() })
	if r := f.do("GET", PathReadyz, "", nil); r.status != 200 {
		t.Fatalf("readyz after the resolve: %d %s", r.status, r.body)
	}

	h := unmarshal[struct{ History []alerts.HistoryEntry }](t, f.mustAdmin(ActionGetAlertHistory, map[string]any{"name": "conns", "level": "critical"}))
	var kinds []string
	for i := len(h.History) - 1; i >= 0; i-- {
		kinds = append(kinds, h.History[i].Kind)
	}
	want := "firing,remediation,acknowledged,resolved,remediation"
	if got := strings.Join(kinds, ","); !strings.HasPrefix(got, want) {
		t.Fatalf("history %s, want %s...", got, want)
	}
	recs, _ := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 100})
	var rem []string
	for _, r := range recs {
		if r.Action == ActionAlertRemediation && r.Actor == "alerts" && strings.Contains(string(r.Data), `"rule":"conns"`) {
			rem = append(rem, string(r.Data))
		}
	}
	if len(rem) != 2 || !strings.Contains(rem[1], `"on":true`) || !strings.Contains(rem[0], `"on":false`) {
		t.Fatalf("remediation audit records %v", rem)
	}
}

// Bad input is 422 naming the field; a rule of the alerts file cannot be
// changed through the API (409); acknowledging what does not fire is 404.
func TestAlertActionErrors(t *testing.T) {
	f, _ := alertsFixture(t)
	file, err := alerts.ParseFile("rules.yaml", []byte("rules:\n  - {name: from_file, metric: connections, threshold: 5}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ctl.Alerts().ApplyFile(file); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		action, data, field string
		status              int
	}{
		{ActionConfigureAlert, `{"name":"x","metric":"connections","threshold":1,"level":"page"}`, "data.level", 422},
		{ActionConfigureAlert, `{"name":"x","metric":"connections","threshold":1e999}`, "data.threshold", 422},
		{ActionConfigureAlert, `{"name":"x","metric":"connections","threshold":"NaN"}`, "data.threshold", 422},
		{ActionConfigureAlert, `{"name":"x","metric":"connections","threshold":1,"forMs":-1}`, "data.forMs", 422},
		{ActionConfigureAlert, `{"name":"x","metric":"connections","threshold":1,"keepFiringForMs":-1}`, "data.keepFiringForMs", 422},
		{ActionConfigureAlert, `{"name":"x","metric":"connections","threshold":1,"escalate":[{"afterMs":-1,"level":"critical"}]}`, "data.escalate[0].afterMs", 422},
		{ActionConfigureAlert, `{"name":"x","metric":"connections","threshold":1,"notify":["teams"]}`, "data.notify[0]", 422},
		{ActionConfigureAlert, `{"name":"x","metric":"connections","threshold":1,"colour":"red"}`, "data.colour", 422},
		{ActionConfigureAlert, `{"name":"from_file","threshold":1}`, "", 409},
		{ActionGetAlertHistory, `{"level":"page"}`, "data.level", 422},
		{ActionGetAlertHistory, `{"limit":0}`, "data.limit", 422},
		{ActionGetAlertHistory, `{"since":"yesterday"}`, "data.since", 422},
		{ActionAcknowledgeAlert, `{}`, "data.name", 422},
		{ActionAcknowledgeAlert, `{"name":"error_rate"}`, "", 404},
		{ActionSilenceAlerts, `{"durationMs":1000}`, "data.name", 422},
		{ActionSilenceAlerts, `{"name":"a","durationMs":-5}`, "data.durationMs", 422},
		{ActionSilenceAlerts, `{"name":"a","level":"loud","durationMs":5}`, "data.level", 422},
		{ActionSilenceAlerts, `{"name":"a"}`, "data.endsAt", 422},
		{ActionTestAlertChannel, `{"channel":"teams"}`, "", 404},
		{ActionTestAlertChannel, `{"channel":"pagerduty"}`, "", 502},
	} {
		r := f.do("POST", PathAdmin, f.token(), []byte(`{"action":"`+tc.action+`","data":`+tc.data+`}`))
		_, _, _, field, _ := r.envelope(t)
		if r.status != tc.status || field != tc.field {
			t.Errorf("%s %s: %d %s, want %d on %q", tc.action, tc.data, r.status, r.body, tc.status, tc.field)
		}
	}
}

// Secrets never show: not in the admin GET, the alert configs, the audit
// log or the logs, even after failed sends.
func TestAlertSecretsAreRedacted(t *testing.T) {
	f, _ := alertsFixture(t)
	f.mustAdmin(ActionConfigureAlert, map[string]any{"name": "conns", "metric": "connections", "threshold": 0, "forMs": 0, "level": "emergency"})
	f.dial("erin")
	wstest.WaitFor(t, "failed sends to slack and pagerduty", func() bool {
		return strings.Contains(f.logs.String(), `"channel":"slack"`) && strings.Contains(f.logs.String(), `"channel":"pagerduty"`)
	})
	_ = f.admin(ActionTestAlertChannel, map[string]any{"channel": "slack"})
	_ = f.admin(ActionTestAlertChannel, map[string]any{"channel": "pagerduty"})
	get := f.do("GET", PathAdmin, f.token(), nil)
	configs := f.admin(ActionGetAlertConfigs, nil)
	history, _ := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 1000})
	audit, _ := json.Marshal(history)
	if !strings.Contains(string(get.body), `"alertChannels"`) || !strings.Contains(string(get.body), "[REDACTED]") {
		t.Fatalf("admin GET does not show the channels redacted: %s", get.body)
	}
	for _, secret := range []string{testWebhookSecret, testRoutingKey, "SLACKSECRETPATH"} {
		for name, text := range map[string]string{"admin GET": string(get.body), "alert configs": string(configs.body),
			"audit log": string(audit), "logs": f.logs.String()} {
			if strings.Contains(text, secret) {
				t.Errorf("%s shows the secret %q", name, secret)
			}
		}
	}
}

// An emergency rule with the maintenance remediation turns maintenance on
// while it fires and off when it resolves; an operator's maintenance is
// left alone.
func TestMaintenanceRemediation(t *testing.T) {
	f, _ := alertsFixture(t)
	f.mustAdmin(ActionConfigureAlert, map[string]any{"name": "meltdown", "metric": "connections", "threshold": 0, "forMs": 0,
		"level": "emergency", "remediation": "maintenance"})
	if r := f.admin(ActionConfigureAlert, map[string]any{"name": "x", "metric": "connections", "threshold": 0, "level": "critical", "remediation": "maintenance"}); r.status != 422 {
		t.Fatalf("maintenance on a critical rule: %d", r.status)
	}
	c := f.dial("frank")
	wstest.WaitFor(t, "maintenance on", func() bool { m := f.engine.Maintenance(); return m != nil && strings.Contains(m.Reason, "meltdown") })
	_ = c.Close()
	wstest.WaitFor(t, "maintenance off", func() bool { return f.engine.Maintenance() == nil })

	// An operator's maintenance stays.
	f.mustAdmin(ActionSetMaintenanceMode, map[string]any{"enabled": true, "reason": "planned"})
	f.ctl.Remediate(alerts.Maintenance, true, "meltdown", "test")
	f.ctl.Remediate(alerts.Maintenance, false, "meltdown", "test")
	if m := f.engine.Maintenance(); m == nil || m.Reason != "planned" {
		t.Fatalf("the operator's maintenance: %+v", m)
	}
}

// The alert history survives SIGKILL: a node killed while its alert fires
// comes back with the firing in its history, resumes the alert, and
// resolves it (no client is connected any more).
func TestAlertHistorySurvivesSIGKILL(t *testing.T) {
	t.Setenv(alertIntervalEnv, "20ms")
	dir := t.TempDir()
	cmd, addrs := startChild(t, dir)
	tok, err := AdminToken([]byte(testAdminSecret), "crash-test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	if ok, err := post(client, addrs.Control, tok, ActionConfigureAlert, map[string]any{"name": "conns", "metric": "connections", "threshold": 0, "forMs": 0, "level": "critical"}); !ok || err != nil {
		t.Fatalf("configure_alert: %v %v", ok, err)
	}
	history := func(addr string) []alerts.HistoryEntry {
		body, _ := json.Marshal(map[string]any{"action": ActionGetAlertHistory, "data": map[string]any{"name": "conns"}})
		req, _ := http.NewRequest("POST", "http://"+addr+PathAdmin, strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var env struct {
			Data struct{ History []alerts.HistoryEntry } `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
			t.Fatal(err)
		}
		return env.Data.History
	}
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addrs.WS+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wstest.WaitFor(t, "the alert firing", func() bool { h := history(addrs.Control); return len(h) > 0 && h[0].Kind == alerts.EventFiring })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	_, addrs = startChild(t, dir)
	h := history(addrs.Control)
	if len(h) == 0 || h[len(h)-1].Kind != alerts.EventFiring || h[len(h)-1].Value != 1 || h[len(h)-1].Level != "critical" {
		t.Fatalf("history after SIGKILL: %+v", h)
	}
	wstest.WaitFor(t, "the resumed alert resolved", func() bool { h := history(addrs.Control); return h[0].Kind == alerts.EventResolved })
}

// A rule's description follows its threshold and operator unless an
// operator wrote one: the default error_rate rule no longer says "more than
// 10%" once its threshold is 0.2.
func TestAlertDescriptionFollowsTheRule(t *testing.T) {
	f := newFixture(t)
	configure := func(data map[string]any) string {
		t.Helper()
		var r struct {
			Alert struct{ Description string } `json:"alert"`
		}
		if err := json.Unmarshal(f.mustAdmin(ActionConfigureAlert, data), &r); err != nil {
			t.Fatal(err)
		}
		return r.Alert.Description
	}
	list, _ := f.ctl.AlertConfigs()
	for _, a := range list {
		if a.Name == "error_rate" && a.Description != "more than 10% of messages answered with an error" {
			t.Fatalf("default rule: %+v", a)
		}
	}
	for _, s := range []struct {
		data map[string]any
		want string
	}{
		{map[string]any{"name": "error_rate", "threshold": 0.2}, "more than 20% of messages answered with an error"},
		{map[string]any{"name": "error_rate", "operator": ">="}, "at least 20% of messages answered with an error"},
		{map[string]any{"name": "error_rate", "description": "page the on-call"}, "page the on-call"},
		{map[string]any{"name": "error_rate", "threshold": 0.3}, "page the on-call"}, // the operator's text stays
		{map[string]any{"name": "error_rate", "description": ""}, "at least 30% of messages answered with an error"},
		{map[string]any{"name": "conns", "metric": "connections", "threshold": 9000}, "open connections above 9000"},
		{map[string]any{"name": "conns", "operator": "<", "threshold": 10}, "open connections below 10"},
		{map[string]any{"name": "mem", "metric": "memory_usage", "threshold": 0.07}, "memory above 7% of the limit"},
	} {
		if got := configure(s.data); got != s.want {
			t.Errorf("%v: description %q, want %q", s.data, got, s.want)
		}
	}
}
