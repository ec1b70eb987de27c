package alerts

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore/wstest"
)

const (
	webhookSecret = "whsec-0123456789abcdef"
	routingKey    = "R0UT1NGKEY0123456789abcdefABCDEF"
	slackSecret   = "XOXSECRETslackPATH"
)

// The webhook body is Alertmanager's v4 payload, signed with HMAC-SHA256
// over the raw body; labels.alertname is the rule and labels.severity its
// level; a trigger and a resolve of the same alert share a fingerprint.
func TestWebhookPayloadAndSignature(t *testing.T) {
	rc := newReceiver(t)
	r := newRig(t, func(c *Config) {
		c.ExternalURL = "http://node1:8081/dashboard"
		c.Channels = []ChannelConfig{{Name: "webhook", Type: TypeWebhook, URL: rc.srv.URL + "/hook", Secret: webhookSecret}}
	})
	k := rule("conns", "connections", ">", 0, 0, LevelCritical)
	k.Description, k.RunbookURL, k.Labels = "someone is connected", "https://runbooks.example.com/conns", map[string]string{"team": "rt"}
	r.e.SetStoredRules([]Rule{k})
	open(r.m, 1)
	r.step(0)
	closeConns(r.m, 1)
	wstest.WaitFor(t, "the trigger", func() bool { return len(rc.delivered()) == 1 })
	r.step(time.Second)
	wstest.WaitFor(t, "the resolve", func() bool { return len(rc.delivered()) == 2 })

	for i, body := range rc.delivered() {
		h := rc.heads[i]
		if h.Get("Content-Type") != "application/json" || !VerifySignature([]byte(webhookSecret), body, h.Get(SignatureHeader)) ||
			!strings.HasPrefix(h.Get(SignatureHeader), "sha256=") {
			t.Fatalf("request %d: headers %v", i, h)
		}
		var raw map[string]any
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels", "commonAnnotations", "externalURL", "alerts"} {
			if _, ok := raw[key]; !ok {
				t.Errorf("payload without %q: %s", key, body)
			}
		}
		alert := raw["alerts"].([]any)[0].(map[string]any)
		for _, key := range []string{"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"} {
			if _, ok := alert[key]; !ok {
				t.Errorf("alert without %q: %s", key, body)
			}
		}
	}
	p := rc.webhooks(t)
	f, res := p[0], p[1]
	if f.Version != "4" || f.Status != "firing" || f.Receiver != "webhook" || f.ExternalURL != "http://node1:8081/dashboard" ||
		f.Alerts[0].Labels["alertname"] != "conns" || f.Alerts[0].Labels["severity"] != "critical" || f.Alerts[0].Labels["team"] != "rt" ||
		f.Alerts[0].Annotations["runbook_url"] != k.RunbookURL || f.Alerts[0].Annotations["description"] != k.Description ||
		f.Alerts[0].EndsAt != "0001-01-01T00:00:00Z" || f.CommonLabels["alertname"] != "conns" {
		t.Fatalf("trigger %+v", f)
	}
	if res.Status != "resolved" || res.Alerts[0].Status != "resolved" || res.Alerts[0].Fingerprint != f.Alerts[0].Fingerprint ||
		res.Alerts[0].StartsAt != f.Alerts[0].StartsAt || res.Alerts[0].EndsAt == "0001-01-01T00:00:00Z" {
		t.Fatalf("resolve %+v", res)
	}
	if VerifySignature([]byte("wrong"), rc.delivered()[0], rc.heads[0].Get(SignatureHeader)) {
		t.Fatal("a wrong secret verifies")
	}
}

// Slack gets {"text": ...} in mrkdwn, one line per alert of the group;
// a 4xx answer such as invalid_payload is not retried.
func TestSlackPayload(t *testing.T) {
	rc := newReceiver(t)
	r := newRig(t, func(c *Config) {
		c.GroupWait = 200 * time.Millisecond
		c.Channels = []ChannelConfig{{Name: "slack", Type: TypeSlack, URL: rc.srv.URL + "/services/T0/B0/" + slackSecret}}
	})
	a := rule("error_rate", "connections", ">", 0, 0, LevelWarning)
	a.Description = "more than 10% <errors> & more"
	b := rule("busy", "connections", ">=", 1, 0, LevelCritical)
	b.RunbookURL = "https://runbooks.example.com/busy"
	r.e.SetStoredRules([]Rule{a, b})
	open(r.m, 1)
	r.step(0)
	wstest.WaitFor(t, "one grouped message", func() bool { return len(rc.delivered()) == 1 })
	var p map[string]string
	if err := json.Unmarshal(rc.delivered()[0], &p); err != nil || len(p) != 1 {
		t.Fatalf("slack body %s: %v", rc.delivered()[0], err)
	}
	text := p["text"]
	for _, want := range []string{"*[FIRING:2] sockmon on node1*", ":large_orange_circle: *error_rate* (warning) firing: error_rate: connections 1 &gt; 0",
		">more than 10% &lt;errors&gt; &amp; more", ":red_circle: *busy* (critical) firing", "><https://runbooks.example.com/busy|Runbook>"} {
		if !strings.Contains(text, want) {
			t.Errorf("slack text lacks %q:\n%s", want, text)
		}
	}
	rc.set(func(rc *receiver) { rc.fail = func(int) int { return http.StatusBadRequest } })
	closeConns(r.m, 1)
	r.step(time.Second)
	wstest.WaitFor(t, "the refused resolve", func() bool { return rc.attempts() == 2 })
	time.Sleep(100 * time.Millisecond) // would a retry come? (RetryBase is 10 ms)
	if n := rc.attempts(); n != 2 {
		t.Fatalf("a 400 was retried: %d attempts", n)
	}
}

// PagerDuty gets Events API v2: trigger with a stable dedup_key and a
// payload, acknowledge and resolve with the same key and only the three
// fields.
func TestPagerDutyEvents(t *testing.T) {
	var mu sync.Mutex
	var events []map[string]any
	pd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev map[string]any
		if r.URL.Path != "/v2/enqueue" || r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&ev) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"status":"success","message":"Event processed","dedup_key":"x"}`))
	}))
	defer pd.Close()
	r := newRig(t, func(c *Config) {
		c.Cluster = "prod"
		c.Channels = []ChannelConfig{{Name: "pagerduty", Type: TypePagerDuty, URL: pd.URL + "/v2/enqueue", RoutingKey: routingKey}}
	})
	k := rule("busy", "connections", ">", 0, 0, LevelWarning)
	k.Escalate = []Escalation{{AfterMs: 60_000, Level: LevelEmergency}}
	k.Notify = []string{"pagerduty"}
	r.e.SetStoredRules([]Rule{k})
	open(r.m, 1)
	r.step(0)
	got := func(n int) []map[string]any {
		wstest.WaitFor(t, "PagerDuty events", func() bool { mu.Lock(); defer mu.Unlock(); return len(events) >= n })
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(events)
	}
	got(1)
	r.step(time.Minute) // escalated: a new trigger, same key
	got(2)
	if _, err := r.e.Acknowledge("busy", "alice", ""); err != nil {
		t.Fatal(err)
	}
	got(3)
	closeConns(r.m, 1)
	r.step(time.Second)
	ev := got(4)
	key := ev[0]["dedup_key"].(string)
	if !strings.HasPrefix(key, "prod/node1/busy/") || len(key) > 255 {
		t.Fatalf("dedup_key %q", key)
	}
	for i, want := range []string{"trigger", "trigger", "acknowledge", "resolve"} {
		if ev[i]["event_action"] != want || ev[i]["dedup_key"] != key || ev[i]["routing_key"] != routingKey {
			t.Fatalf("event %d: %v", i, ev[i])
		}
	}
	p := ev[0]["payload"].(map[string]any)
	if p["source"] != "node1" || p["severity"] != "warning" || p["component"] != "sockmon" || p["group"] != "prod" ||
		!strings.Contains(p["summary"].(string), "busy: connections 1 > 0") || p["timestamp"] == "" {
		t.Fatalf("trigger payload %v", p)
	}
	if s := ev[1]["payload"].(map[string]any)["severity"]; s != "critical" {
		t.Fatalf("escalated to emergency: PagerDuty severity %v", s)
	}
	for _, i := range []int{2, 3} {
		if len(ev[i]) != 3 {
			t.Fatalf("%s carries more than routing_key, dedup_key, event_action: %v", ev[i]["event_action"], ev[i])
		}
	}
}

// A receiver that hangs, one that answers 500 and one that resets the
// connection: evaluation stays on time, a healthy channel delivers both
// trigger and resolve at once, and each failing one gets the resolve once
// it recovers. No secret reaches the logs or the channel views.
func TestFailingReceivers(t *testing.T) {
	good, hang, fail := newReceiver(t), newReceiver(t), newReceiver(t)
	release := make(chan struct{})
	hang.set(func(rc *receiver) { rc.block = release })
	var failing sync.Mutex
	broken := true
	fail.set(func(rc *receiver) {
		rc.fail = func(int) int {
			failing.Lock()
			defer failing.Unlock()
			if broken {
				return 500
			}
			return 0
		}
	})
	// Resets every connection until healed, then serves like Slack.
	var resetMu sync.Mutex
	resetting := true
	var slackBodies [][]byte
	reset := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resetMu.Lock()
		rs := resetting
		resetMu.Unlock()
		if rs {
			c, _, _ := w.(http.Hijacker).Hijack()
			_ = c.(*net.TCPConn).SetLinger(0)
			_ = c.Close()
			return
		}
		var b json.RawMessage
		_ = json.NewDecoder(r.Body).Decode(&b)
		resetMu.Lock()
		slackBodies = append(slackBodies, b)
		resetMu.Unlock()
		_, _ = w.Write([]byte("ok"))
	}))
	defer reset.Close()

	r := newRig(t, func(c *Config) {
		c.Now = time.Now
		c.Interval = 20 * time.Millisecond
		c.Notify.SendTimeout = 200 * time.Millisecond
		c.Channels = []ChannelConfig{
			{Name: "good", Type: TypeWebhook, URL: good.srv.URL},
			{Name: "hang", Type: TypeWebhook, URL: hang.srv.URL, Secret: webhookSecret},
			{Name: "fail", Type: TypeWebhook, URL: fail.srv.URL},
			{Name: "slack", Type: TypeSlack, URL: reset.URL + "/services/T0/B0/" + slackSecret},
		}
		c.Routes = map[Level][]string{LevelWarning: {"*"}}
	})
	r.e.SetStoredRules([]Rule{rule("conns", "connections", ">", 0, 0, LevelWarning)})
	r.e.Start()
	open(r.m, 1)
	wstest.WaitFor(t, "the healthy channel's trigger", func() bool { return len(good.delivered()) == 1 })
	closeConns(r.m, 1)
	wstest.WaitFor(t, "the healthy channel's resolve", func() bool { return len(good.delivered()) == 2 })

	// Evaluation keeps its pace while three channels fail.
	for range 3 {
		last := r.e.LastEvaluation()
		wstest.WaitFor(t, "the next evaluation", func() bool { return r.e.LastEvaluation().Sub(last) > 0 })
		if d := time.Since(last); d > 500*time.Millisecond {
			t.Fatalf("an evaluation came %v after the previous one", d)
		}
	}
	wstest.WaitFor(t, "failed attempts", func() bool { return fail.attempts() >= 2 })
	if len(hang.delivered()) != 0 || len(fail.delivered()) != 0 {
		t.Fatal("a failing receiver got something")
	}

	wstest.WaitFor(t, "the hanging receiver retried after a timeout", func() bool { return hang.attempts() >= 2 })

	// Recovery: each gets the resolve (the trigger it never got was
	// overtaken by it).
	close(release)
	failing.Lock()
	broken = false
	failing.Unlock()
	resetMu.Lock()
	resetting = false
	resetMu.Unlock()
	for name, rc := range map[string]*receiver{"hang": hang, "fail": fail} {
		wstest.WaitFor(t, name+" gets the resolve", func() bool {
			p := rc.delivered()
			return len(p) > 0 && strings.Contains(string(p[len(p)-1]), `"status":"resolved"`)
		})
	}
	wstest.WaitFor(t, "slack gets the resolve", func() bool {
		resetMu.Lock()
		defer resetMu.Unlock()
		return len(slackBodies) > 0 && strings.Contains(string(slackBodies[len(slackBodies)-1]), "RESOLVED")
	})
	var page strings.Builder
	r.m.WritePrometheus(&page)
	for _, want := range []string{`sockmon_alert_notifications_total{channel="fail",result="failure"}`, `sockmon_alert_notifications_total{channel="good",result="success"} 2`} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	views, _ := json.Marshal(r.e.Channels())
	for _, secret := range []string{webhookSecret, slackSecret} {
		if strings.Contains(r.logs.String(), secret) || strings.Contains(string(views), secret) {
			t.Errorf("secret %q in the logs or the channel views", secret)
		}
	}
	if !strings.Contains(r.logs.String(), "alert notification failed") {
		t.Fatal("failures not logged")
	}
}

// The queue is bounded: past QueueLimit the oldest trigger is dropped,
// counted and logged, never a resolve.
func TestQueueLimitDropsTriggersFirst(t *testing.T) {
	rc := newReceiver(t)
	release := make(chan struct{})
	rc.set(func(rc *receiver) { rc.block = release })
	r := newRig(t, func(c *Config) {
		c.FlapWindow = -1
		c.Notify.QueueLimit = 2
		c.Notify.SendTimeout = 50 * time.Millisecond
		c.Channels = []ChannelConfig{{Name: "webhook", Type: TypeWebhook, URL: rc.srv.URL}}
	})
	r.e.SetStoredRules([]Rule{rule("a", "connections_anonymous", ">", 0, 0, LevelWarning), rule("b", "connections_authenticated", ">", 0, 0, LevelWarning),
		rule("c", "connections_authenticated", ">", 1, 0, LevelWarning)})
	r.m.ConnectionOpened(metrics.Anonymous)
	r.step(0) // a fires
	wstest.WaitFor(t, "an attempt at a", func() bool { return rc.attempts() >= 1 })
	r.m.ConnectionClosed(metrics.Anonymous, metrics.InitiatorClient, metrics.ReasonNormal)
	r.step(time.Second) // a resolves: its resolve replaces its trigger
	open(r.m, 2)
	r.step(time.Second) // b and c fire: the queue (limit 2) drops b's trigger
	var page strings.Builder
	r.m.WritePrometheus(&page)
	if !strings.Contains(page.String(), `sockmon_alert_notifications_total{channel="webhook",result="dropped"} 1`) {
		t.Fatalf("drop not counted:\n%s", page.String())
	}
	if !strings.Contains(r.logs.String(), "queue is full") {
		t.Fatal("drop not logged")
	}
	close(release)
	wstest.WaitFor(t, "the rest", func() bool {
		var got []string
		for _, p := range rc.webhooks(t) {
			for _, a := range p.Alerts {
				got = append(got, a.Labels["alertname"]+":"+a.Status)
			}
		}
		return slices.Contains(got, "a:resolved") && slices.Contains(got, "c:firing") && !slices.Contains(got, "b:firing")
	})
}

// The engine's series pass promlint.
func TestMetricsLint(t *testing.T) {
	r := newRig(t, func(c *Config) {
		c.Channels = []ChannelConfig{{Name: "webhook", Type: TypeWebhook, URL: "http://127.0.0.1:1/"}, {Name: "am", Type: TypeAlertmanager, URLs: []string{"http://127.0.0.1:1"}}}
	})
	r.e.SetStoredRules(DefaultRules(r.clk.Now()))
	r.step(time.Second)
	var page strings.Builder
	r.m.WritePrometheus(&page)
	problems, err := promlint.New(strings.NewReader(page.String())).Lint()
	if err != nil || len(problems) > 0 {
		t.Fatalf("promlint: %v %v", err, problems)
	}
	for _, want := range []string{"# TYPE sockmon_alerts gauge", "# TYPE sockmon_alert_notifications_total counter",
		`sockmon_alerts{level="emergency",state="inactive"} 1`, `sockmon_alert_notifications_total{channel="am",result="dropped"} 0`} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("no %s", want)
		}
	}
}

// Test sends one notification at once and reports the outcome.
func TestTestNotification(t *testing.T) {
	rc := newReceiver(t)
	r := newRig(t, func(c *Config) {
		c.Channels = []ChannelConfig{{Name: "webhook", Type: TypeWebhook, URL: rc.srv.URL}, {Name: "dead", Type: TypeWebhook, URL: "http://127.0.0.1:1/"}}
	})
	if err := r.e.Test(context.Background(), "webhook", "alice"); err != nil {
		t.Fatal(err)
	}
	if p := rc.webhooks(t); len(p) != 1 || p[0].Alerts[0].Labels["alertname"] != "sockmon_test" || !strings.Contains(p[0].Alerts[0].Annotations["summary"], "alice") {
		t.Fatalf("test payload %+v", p)
	}
	if err := r.e.Test(context.Background(), "dead", "alice"); err == nil {
		t.Fatal("a dead receiver passed the test")
	}
	if err := r.e.Test(context.Background(), "nope", "alice"); err == nil || !strings.Contains(err.Error(), "configured") {
		t.Fatalf("unknown channel: %v", err)
	}
}
