package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/protocol"
)

func unmarshal[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	return v
}

// asJSON marshals a Go method's result, to compare it with the HTTP reply.
func asJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var alice = Actor{Sub: "alice", IP: "192.0.2.1"}

// GET /api/admin/socket and AdminStatus: status, connections, performance,
// maintenance, alerts, breakers, rate limits.
func TestAdminStatus(t *testing.T) {
	f := newFixture(t)
	f.dial("carol")
	f.waitOpen(1)
	r := f.do("GET", PathAdmin, f.token(), nil)
	ok, data, _, _, _ := r.envelope(t)
	if r.status != 200 || !ok {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	raw := unmarshal[map[string]json.RawMessage](t, data)
	for _, k := range []string{"status", "connections", "performance", "process", "maintenance", "alerts", "activeAlerts", "alertChannels", "circuitBreakers", "rateLimits"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("no %q in %s", k, data)
		}
	}
	st := unmarshal[AdminStatus](t, data)
	if st.Status.Status != StatusHealthy || !st.Status.Ready || st.Connections.Total != 1 || st.Connections.Authenticated != 1 ||
		st.Connections.Accepted != 1 || len(st.Alerts) != 4 || st.Maintenance.Enabled || st.Status.HeartbeatAgeMs == nil {
		t.Fatalf("admin status: %s", data)
	}
	if len(st.Performance.Windows) != 4 || st.Performance.Windows[0].Name != "1m" {
		t.Fatalf("windows: %+v", st.Performance.Windows)
	}
	g, err := f.ctl.AdminStatus()
	if err != nil || g.Connections.Total != 1 || len(g.Alerts) != 4 || g.Status.Status != StatusHealthy {
		t.Fatalf("AdminStatus(): %+v %v", g, err)
	}
	if r := f.do("DELETE", PathAdmin, f.token(), nil); r.status != 405 {
		t.Fatalf("DELETE: %d", r.status)
	}
}

// set_maintenance_mode: on refuses new clients with 503, tells connected
// ones, flips health and readiness; drain closes them with 1012; off
// restores everything. Through HTTP and through Command.
func TestSetMaintenanceMode(t *testing.T) {
	f := newFixture(t)
	c := f.dial("")
	data := f.mustAdmin(ActionSetMaintenanceMode, map[string]any{"enabled": true, "reason": "kernel upgrade"})
	st := unmarshal[MaintenanceStatus](t, data)
	if !st.Enabled || st.Reason != "kernel upgrade" || st.By != "alice" || st.Since.IsZero() {
		t.Fatalf("reply %s", data)
	}
	if m := f.engine.Maintenance(); m == nil || m.Reason != "kernel upgrade" {
		t.Fatalf("engine maintenance %+v", m)
	}
	if msg := readJSON(t, c); msg["type"] != "system" || msg["event"] != "maintenance" || msg["message"] != "kernel upgrade" {
		t.Fatalf("connected client got %v", msg)
	}
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+f.wsAddr+"/ws", nil)
	if err == nil || resp == nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("new client in maintenance: %v %v", err, resp)
	}
	if r := f.do("GET", PathHealth, "", nil); r.status != 503 {
		t.Fatalf("health: %d", r.status)
	}
	if r := f.do("GET", PathReadyz, "", nil); r.status != 503 {
		t.Fatalf("readyz: %d", r.status)
	}
	st2, err := f.ctl.AdminStatus()
	if err != nil || !st2.Maintenance.Enabled || st2.Maintenance.By != "alice" {
		t.Fatalf("status maintenance %+v %v", st2.Maintenance, err)
	}

	// Off, through the Go method.
	res, err := f.ctl.Command(alice, ActionSetMaintenanceMode, json.RawMessage(`{"enabled":false}`))
	if err != nil || res.(MaintenanceStatus).Enabled {
		t.Fatalf("Command off: %v %v", res, err)
	}
	if f.engine.Maintenance() != nil || !f.engine.Ready() {
		t.Fatal("maintenance still on")
	}
	if r := f.do("GET", PathHealth, "", nil); r.status != 200 {
		t.Fatalf("health after: %d", r.status)
	}
	f.dial("")

	// Drain: connected clients are closed with 1012.
	c2 := f.dial("")
	f.mustAdmin(ActionSetMaintenanceMode, map[string]any{"enabled": true, "reason": "drain now", "drain": true})
	if code, _ := readClose(t, c2); code != 1012 {
		t.Fatalf("drained client closed with %d, want 1012", code)
	}

	for _, tc := range []struct {
		data  string
		field string
	}{
		{`{}`, "data.enabled"},
		{`{"enabled":"yes"}`, "data.enabled"},
		{`{"enabled":true,"reason":"` + strings.Repeat("x", 124) + `"}`, "data.reason"},
		{`{"enabled":true,"enable":true}`, "data.enable"},
		{`[]`, "data"},
	} {
		_, err := f.ctl.Command(alice, ActionSetMaintenanceMode, json.RawMessage(tc.data))
		var e *Error
		if !errors.As(err, &e) || e.Status != 422 || e.Field != tc.field {
			t.Errorf("%s: %v, want 422 on %s", tc.data, err, tc.field)
		}
	}
}

// force_disconnect_user and force_disconnect_socket close with 4000 and
// the reason; an unknown socket is 404.
func TestForceDisconnect(t *testing.T) {
	f := newFixture(t)
	d1, d2 := f.dial("dave"), f.dial("dave")
	e := f.dial("erin")
	f.waitOpen(3)
	data := f.mustAdmin(ActionForceDisconnectUser, map[string]any{"userId": "dave", "reason": "abuse"})
	if got := unmarshal[map[string]any](t, data); got["disconnected"] != float64(2) {
		t.Fatalf("reply %s", data)
	}
	for _, c := range []*websocket.Conn{d1, d2} {
		if code, reason := readClose(t, c); code != 4000 || reason != "abuse" {
			t.Fatalf("closed with %d %q, want 4000 abuse", code, reason)
		}
	}
	page, err := f.ctl.Connections(userQuery("erin"))
	if err != nil || page.Total != 1 {
		t.Fatalf("Connections: %+v %v", page, err)
	}
	id := page.Connections[0].SocketID
	res, err := f.ctl.Command(alice, ActionForceDisconnectSocket, asJSON(t, map[string]any{"socketId": id}))
	if err != nil || res.(map[string]any)["disconnected"] != true {
		t.Fatalf("disconnect socket: %v %v", res, err)
	}
	if code, reason := readClose(t, e); code != 4000 || reason != defaultAdminReason {
		t.Fatalf("closed with %d %q", code, reason)
	}
	r := f.admin(ActionForceDisconnectSocket, map[string]any{"socketId": "999999"})
	if _, _, code, _, _ := r.envelope(t); r.status != 404 || code != CodeNotFound {
		t.Fatalf("unknown socket: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		action, data, field string
	}{
		{ActionForceDisconnectUser, `{}`, "data.userId"},
		{ActionForceDisconnectUser, `{"userId":5}`, "data.userId"},
		{ActionForceDisconnectSocket, `{}`, "data.socketId"},
		{ActionForceDisconnectSocket, `{"socketId":"abc"}`, "data.socketId"},
		{ActionForceDisconnectSocket, `{"socketId":-1}`, "data.socketId"},
	} {
		r := f.do("POST", PathAdmin, f.token(), []byte(`{"action":"`+tc.action+`","data":`+tc.data+`}`))
		if _, _, code, field, _ := r.envelope(t); r.status != 422 || code != CodeInvalidField || field != tc.field {
			t.Errorf("%s %s: %d %s, want 422 on %s", tc.action, tc.data, r.status, r.body, tc.field)
		}
	}
}

// set_rate_limit: per user (persisted) and per socket (not), limit 0
// removes, bad fields are 422.
func TestSetRateLimit(t *testing.T) {
	f := newFixture(t)
	data := f.mustAdmin(ActionSetRateLimit, map[string]any{"userId": "frank", "limit": 5, "windowMs": 1000})
	if v := unmarshal[RateLimitView](t, data); !v.Persisted || v.Limit != 5 || v.WindowMs != 1000 {
		t.Fatalf("reply %s", data)
	}
	rls := f.proto.RateLimits()
	if len(rls) != 1 || rls[0].UserID != "frank" || rls[0].Limit != 5 || rls[0].Window != time.Second {
		t.Fatalf("engine rate limits %+v", rls)
	}
	// The limit is in force: a burst over it gets rate_limited replies.
	c := f.dial("frank")
	limited := 0
	for range 10 {
		_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":1}`))
		if m := readJSON(t, c); m["code"] == "rate_limited" {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("10 messages at 5/s were all answered")
	}
	page, _ := f.ctl.Connections(userQuery("frank"))
	res, err := f.ctl.Command(alice, ActionSetRateLimit, asJSON(t, map[string]any{"socketId": page.Connections[0].SocketID, "limit": 100, "windowMs": 1000}))
	if err != nil || res.(RateLimitView).Persisted {
		t.Fatalf("socket rate limit: %+v %v", res, err)
	}
	st, _ := f.ctl.AdminStatus()
	if len(st.RateLimits) != 2 {
		t.Fatalf("status rate limits %+v", st.RateLimits)
	}
	f.mustAdmin(ActionSetRateLimit, map[string]any{"userId": "frank", "limit": 0})
	if rls := f.proto.RateLimits(); len(rls) != 1 || rls[0].UserID != "" {
		t.Fatalf("after removal: %+v", rls)
	}
	if stored, _ := f.ctl.store.rateLimits(); len(stored) != 0 {
		t.Fatalf("stored after removal: %+v", stored)
	}
	for _, tc := range []struct{ data, field string }{
		{`{"limit":5,"windowMs":1000}`, "data.userId"},
		{`{"userId":"a","socketId":1,"limit":5,"windowMs":1000}`, "data.userId"},
		{`{"userId":"a","windowMs":1000}`, "data.limit"},
		{`{"userId":"a","limit":-1}`, "data.limit"},
		{`{"userId":"a","limit":5}`, "data.windowMs"},
		{`{"userId":"a","limit":5,"windowMs":0}`, "data.windowMs"},
		{`{"userId":"a","limit":"5","windowMs":1000}`, "data.limit"},
	} {
		_, err := f.ctl.Command(alice, ActionSetRateLimit, json.RawMessage(tc.data))
		var e *Error
		if !errors.As(err, &e) || e.Status != 422 || e.Field != tc.field {
			t.Errorf("%s: %v, want 422 on %s", tc.data, err, tc.field)
		}
	}
	_, err = f.ctl.Command(alice, ActionSetRateLimit, json.RawMessage(`{"socketId":999999,"limit":5,"windowMs":1000}`))
	if !errors.Is(err, &Error{Code: CodeNotFound}) {
		t.Errorf("unknown socket: %v", err)
	}
}

// get_connections: filters, sort, paging, limit bounds.
func TestGetConnections(t *testing.T) {
	f := newFixture(t)
	g := f.dial("gina")
	f.dial("hank")
	f.dial("")
	f.waitOpen(3)
	_ = g.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","id":1,"room":"lobby"}`))
	readJSON(t, g)
	for range 3 {
		_ = g.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":2}`))
		readJSON(t, g)
	}
	get := func(data map[string]any) ConnectionsPage {
		t.Helper()
		return unmarshal[ConnectionsPage](t, f.mustAdmin(ActionGetConnections, data))
	}
	if p := get(nil); p.Total != 3 || len(p.Connections) != 3 || p.Limit != 100 {
		t.Fatalf("all: %+v", p)
	}
	if p := get(map[string]any{"authenticated": false}); p.Total != 1 || p.Connections[0].Authenticated {
		t.Fatalf("anonymous: %+v", p)
	}
	if p := get(map[string]any{"userId": "hank"}); p.Total != 1 || p.Connections[0].UserID != "hank" {
		t.Fatalf("hank: %+v", p)
	}
	if p := get(map[string]any{"room": "lobby"}); p.Total != 1 || p.Connections[0].UserID != "gina" || p.Connections[0].Rooms[0] != "lobby" {
		t.Fatalf("lobby: %+v", p)
	}
	if p := get(map[string]any{"remoteAddress": "127.0.0."}); p.Total != 3 {
		t.Fatalf("prefix: %+v", p)
	}
	if p := get(map[string]any{"remoteAddress": "10."}); p.Total != 0 || p.Connections == nil {
		t.Fatalf("no match: %+v", p)
	}
	if p := get(map[string]any{"sortBy": "messages", "order": "desc", "limit": 1}); p.Total != 3 || len(p.Connections) != 1 || p.Connections[0].UserID != "gina" {
		t.Fatalf("busiest: %+v", p)
	}
	if p := get(map[string]any{"limit": 2, "offset": 2}); len(p.Connections) != 1 || p.Offset != 2 {
		t.Fatalf("page 2: %+v", p)
	}
	for _, tc := range []struct{ data, field string }{
		{`{"limit":1001}`, "data.limit"},
		{`{"limit":0}`, "data.limit"},
		{`{"offset":-1}`, "data.offset"},
		{`{"sortBy":"name"}`, "data.sortBy"},
		{`{"order":"up"}`, "data.order"},
		{`{"authenticated":"yes"}`, "data.authenticated"},
		{`{"user":"x"}`, "data.user"},
	} {
		r := f.do("POST", PathAdmin, f.token(), []byte(`{"action":"get_connections","data":`+tc.data+`}`))
		if _, _, code, field, msg := r.envelope(t); r.status != 422 || code != CodeInvalidField || field != tc.field || !strings.Contains(msg, tc.field) {
			t.Errorf("%s: %d %s, want 422 naming %s", tc.data, r.status, r.body, tc.field)
		}
	}
	res, err := f.ctl.Command(alice, ActionGetConnections, json.RawMessage(`{"userId":"gina"}`))
	if err != nil || res.(*ConnectionsPage).Total != 1 {
		t.Fatalf("Command: %+v %v", res, err)
	}
}

// Behind a trusted proxy get_connections shows, and filters by, the client
// address that limits and bans use (X-Forwarded-For), with the proxy's
// peer address beside it.
func TestGetConnectionsShowsTheClientBehindAProxy(t *testing.T) {
	f := newFixture(t)
	f.engineCfg.TrustedProxies = mustPrefixes(t, "127.0.0.0/8")
	f.restart(true)
	for _, ip := range []string{"203.0.113.7", "198.51.100.9"} {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+f.wsAddr+"/ws", http.Header{"X-Forwarded-For": {ip}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	f.waitOpen(2)
	page := unmarshal[ConnectionsPage](t, f.mustAdmin(ActionGetConnections, map[string]any{"remoteAddress": "203.0.113."}))
	if page.Total != 1 || page.Connections[0].RemoteAddress != "203.0.113.7" || !strings.HasPrefix(page.Connections[0].PeerAddress, "127.0.0.1:") {
		t.Fatalf("remoteAddress 203.0.113.: %+v, want the client 203.0.113.7 with the proxy 127.0.0.1:port as its peer", page)
	}
	if page := unmarshal[ConnectionsPage](t, f.mustAdmin(ActionGetConnections, map[string]any{"remoteAddress": "127."})); page.Total != 0 {
		t.Fatalf("remoteAddress 127. (the proxy): %+v, want no match", page)
	}
}

func userQuery(user string) protocol.ConnQuery {
	return protocol.ConnQuery{ConnQuery: netcore.ConnQuery{UserID: user}}
}

// get_metrics_history, get_command_history, get_alert_configs.
func TestReadActions(t *testing.T) {
	f := newFixture(t)
	f.ctl.metrics.Sample()
	h := unmarshal[map[string]any](t, f.mustAdmin(ActionGetMetricsHistory, map[string]any{"resolution": "1m"}))
	if _, ok := h["points"]; !ok || h["resolutionMs"] == nil {
		t.Fatalf("history %v", h)
	}
	hist := f.ctl.MetricsHistory(HistoryOptions{From: time.Now().Add(-time.Hour)})
	if len(hist.Points) == 0 {
		t.Fatalf("MetricsHistory: no points after a sample")
	}
	for _, tc := range []struct{ data, field string }{
		{`{"from":"yesterday"}`, "data.from"},
		{`{"to":true}`, "data.to"},
		{`{"resolution":"fast"}`, "data.resolution"},
		{`{"from":2000,"to":1000}`, "data.from"},
	} {
		_, err := f.ctl.Command(alice, ActionGetMetricsHistory, json.RawMessage(tc.data))
		var e *Error
		if !errors.As(err, &e) || e.Status != 422 || e.Field != tc.field {
			t.Errorf("%s: %v, want 422 on %s", tc.data, err, tc.field)
		}
	}
	if _, err := f.ctl.Command(alice, ActionGetMetricsHistory, json.RawMessage(`{"from":"2026-01-01T00:00:00Z","to":1893456000000,"resolution":60000}`)); err != nil {
		t.Fatalf("RFC 3339 and ms: %v", err)
	}

	a := unmarshal[struct {
		Alerts  []AlertConfig
		Metrics map[string]string
	}](t, f.mustAdmin(ActionGetAlertConfigs, nil))
	if len(a.Alerts) != 4 || len(a.Metrics) == 0 {
		t.Fatalf("alert configs %+v", a)
	}
	want := map[string]struct {
		metric    string
		threshold float64
	}{"error_rate": {"error_rate", 0.1}, "response_time": {"response_time", 5000}, "memory_usage": {"memory_usage", 0.9}}
	for _, c := range a.Alerts {
		if c.Name == "event_loop_stalled" {
			if c.Level != "emergency" || c.Metric != "event_loop_stalled" || !c.Enabled {
				t.Errorf("emergency default %+v", c)
			}
			continue
		}
		w, ok := want[c.Name]
		if !ok || c.Metric != w.metric || c.Operator != ">" || c.Threshold != w.threshold || c.ForMs != 300000 || !c.Enabled {
			t.Errorf("default rule %+v", c)
		}
	}

	cmds := unmarshal[struct {
		Commands []AuditRecord
		Count    int
	}](t, f.mustAdmin(ActionGetCommandHistory, map[string]any{"limit": 2}))
	if cmds.Count != 2 || cmds.Commands[0].Seq < cmds.Commands[1].Seq || cmds.Commands[0].Action != ActionGetAlertConfigs {
		t.Fatalf("command history %+v", cmds)
	}
	all, _ := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 1000})
	older, _ := f.ctl.CommandHistory(CommandHistoryOptions{Before: all[0].Seq, Limit: 1000})
	if len(older) != len(all)-1 {
		t.Fatalf("before: %d of %d", len(older), len(all))
	}
	recent, _ := f.ctl.CommandHistory(CommandHistoryOptions{Since: time.Now().Add(time.Hour)})
	if len(recent) != 0 {
		t.Fatalf("since the future: %d", len(recent))
	}
	if r := f.admin(ActionGetCommandHistory, map[string]any{"limit": 5000}); r.status != 422 {
		t.Fatalf("limit 5000: %d", r.status)
	}
}

// get_command_history filters by actor, action and result, pages with
// before through the filtered records, and refuses an unknown result.
func TestCommandHistoryFilters(t *testing.T) {
	f := newFixture(t)
	bob := Actor{Sub: "bob", IP: "192.0.2.2"}
	for i := range 3 {
		if _, err := f.ctl.Command(alice, ActionSetMaintenanceMode, json.RawMessage(fmt.Sprintf(`{"enabled":%v}`, i%2 == 0))); err != nil {
			t.Fatal(err)
		}
		_, _ = f.ctl.Command(bob, ActionSetMaintenanceMode, json.RawMessage(`{}`)) // refused: enabled is required
		_, _ = f.ctl.Command(bob, ActionGetAlertConfigs, nil)
	}
	type page struct {
		Commands []AuditRecord
		Count    int
	}
	get := func(data map[string]any) page {
		t.Helper()
		return unmarshal[page](t, f.mustAdmin(ActionGetCommandHistory, data))
	}
	if p := get(map[string]any{"actor": "bob", "result": "refused"}); p.Count != 3 {
		t.Fatalf("bob refused: %+v", p)
	}
	p := get(map[string]any{"action": ActionSetMaintenanceMode, "result": "ok", "limit": 2})
	if p.Count != 2 || p.Commands[0].Actor != "alice" || p.Commands[0].Seq <= p.Commands[1].Seq {
		t.Fatalf("set_maintenance_mode ok, first page: %+v", p)
	}
	p = get(map[string]any{"action": ActionSetMaintenanceMode, "result": "ok", "limit": 2, "before": p.Commands[1].Seq})
	if p.Count != 1 || p.Commands[0].Actor != "alice" {
		t.Fatalf("set_maintenance_mode ok, second page: %+v", p)
	}
	if p := get(map[string]any{"actor": "nobody"}); p.Count != 0 || p.Commands == nil {
		t.Fatalf("nobody: %+v", p)
	}
	if r := f.admin(ActionGetCommandHistory, map[string]any{"result": "fine"}); r.status != 422 {
		t.Fatalf("result fine: %d", r.status)
	}
}

// Read runs the read-only actions with Command's validation and no audit
// record, and refuses the others.
func TestRead(t *testing.T) {
	f := newFixture(t)
	before, _ := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 1000})
	if _, err := f.ctl.Read(alice, ActionGetAlertConfigs, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ctl.Read(alice, ActionGetConnections, json.RawMessage(`{"limit":0}`)); !errors.Is(err, &Error{Code: CodeInvalidField}) {
		t.Fatalf("get_connections limit 0: %v", err)
	}
	if _, err := f.ctl.Read(alice, ActionSetMaintenanceMode, json.RawMessage(`{"enabled":true}`)); !errors.Is(err, &Error{Code: CodeUnknownAction}) || f.engine.Maintenance() != nil {
		t.Fatalf("Read set_maintenance_mode: %v", err)
	}
	after, _ := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 1000})
	if len(after) != len(before) {
		t.Fatalf("Read wrote %d audit records", len(after)-len(before))
	}
}

// configure_alert: create, update, delete; bad fields are 422.
func TestConfigureAlert(t *testing.T) {
	f := newFixture(t)
	d := unmarshal[map[string]AlertConfig](t, f.mustAdmin(ActionConfigureAlert,
		map[string]any{"name": "too_many_conns", "metric": "connections", "threshold": 9000, "severity": "critical"}))
	a := d["alert"]
	if a.Metric != "connections" || a.Threshold != 9000 || a.Operator != ">" || a.ForMs != 300000 || !a.Enabled || a.UpdatedBy != "alice" {
		t.Fatalf("created %+v", a)
	}
	res, err := f.ctl.Command(alice, ActionConfigureAlert, json.RawMessage(`{"name":"error_rate","threshold":0.05,"enabled":false}`))
	if err != nil {
		t.Fatal(err)
	}
	if u := res.(map[string]any)["alert"].(AlertConfig); u.Threshold != 0.05 || u.Enabled || u.Metric != "error_rate" || u.ForMs != 300000 {
		t.Fatalf("updated %+v", u)
	}
	f.mustAdmin(ActionConfigureAlert, map[string]any{"name": "memory_usage", "delete": true})
	list, _ := f.ctl.AlertConfigs()
	if len(list) != 4 || list[0].Name != "error_rate" || list[1].Name != "event_loop_stalled" || list[2].Name != "response_time" || list[3].Name != "too_many_conns" || list[3].Level != "critical" {
		t.Fatalf("rules %+v", list)
	}
	if r := f.admin(ActionConfigureAlert, map[string]any{"name": "memory_usage", "delete": true}); r.status != 404 {
		t.Fatalf("delete twice: %d", r.status)
	}
	for _, tc := range []struct{ data, field string }{
		{`{}`, "data.name"},
		{`{"name":"Bad Name"}`, "data.name"},
		{`{"name":"new"}`, "data.metric"},
		{`{"name":"new","metric":"cpu_usage"}`, "data.threshold"},
		{`{"name":"new","metric":"temperature","threshold":1}`, "data.metric"},
		{`{"name":"error_rate","operator":"=="}`, "data.operator"},
		{`{"name":"error_rate","severity":"page"}`, "data.severity"},
		{`{"name":"error_rate","forMs":-1}`, "data.forMs"},
		{`{"name":"error_rate","for":1}`, "data.for"},
	} {
		r := f.do("POST", PathAdmin, f.token(), []byte(`{"action":"configure_alert","data":`+tc.data+`}`))
		if _, _, code, field, _ := r.envelope(t); r.status != 422 || code != CodeInvalidField || field != tc.field {
			t.Errorf("%s: %d %s, want 422 on %s", tc.data, r.status, r.body, tc.field)
		}
	}
}

// reset_circuit_breaker answers that no breaker exists (they come with
// upstream RPC).
func TestResetCircuitBreaker(t *testing.T) {
	f := newFixture(t)
	r := f.admin(ActionResetCircuitBreaker, map[string]any{"service": "ai"})
	if _, _, code, _, msg := r.envelope(t); r.status != 404 || code != CodeNotFound || !strings.Contains(msg, "no circuit breakers are configured") {
		t.Fatalf("%d %s", r.status, r.body)
	}
	_, err := f.ctl.Command(alice, ActionResetCircuitBreaker, json.RawMessage(`{}`))
	if !errors.Is(err, &Error{Code: CodeInvalidField, Field: "data.service"}) {
		t.Fatalf("no service: %v", err)
	}
}

// execute_command: broadcast reaches clients, disconnect_all closes them
// with 4000, emergency_shutdown needs the confirmation and then calls the
// hook once the reply is out.
func TestExecuteCommand(t *testing.T) {
	shutdown := make(chan string, 2)
	f := newFixture(t, func(c *Config) { c.OnEmergencyShutdown = func(r string) { shutdown <- r } })
	c1, c2 := f.dial("ivan"), f.dial("")
	_ = c1.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","id":1,"room":"ops"}`))
	readJSON(t, c1)

	d := unmarshal[map[string]any](t, f.mustAdmin(ActionExecuteCommand, map[string]any{"command": "broadcast", "message": map[string]any{"text": "hello"}}))
	if d["recipients"] != float64(2) {
		t.Fatalf("broadcast reply %v", d)
	}
	for _, c := range []*websocket.Conn{c1, c2} {
		if m := readJSON(t, c); m["type"] != "broadcast" || m["data"].(map[string]any)["text"] != "hello" {
			t.Fatalf("client got %v", m)
		}
	}
	res, err := f.ctl.Command(alice, ActionExecuteCommand, json.RawMessage(`{"command":"broadcast","message":"ops only","room":"ops"}`))
	if err != nil || res.(map[string]any)["recipients"] != 1 {
		t.Fatalf("room broadcast: %v %v", res, err)
	}
	if m := readJSON(t, c1); m["type"] != "broadcast" || m["data"] != "ops only" || m["room"] != "ops" {
		t.Fatalf("room member got %v", m)
	}

	for _, tc := range []struct{ data, field string }{
		{`{}`, "data.command"},
		{`{"command":"reboot"}`, "data.command"},
		{`{"command":"broadcast"}`, "data.message"},
		{`{"command":"disconnect_all","batchSize":0}`, "data.batchSize"},
		{`{"command":"disconnect_all","intervalMs":-5}`, "data.intervalMs"},
		{`{"command":"emergency_shutdown","reason":"x"}`, "data.confirm"},
		{`{"command":"emergency_shutdown","reason":"x","confirm":"yes"}`, "data.confirm"},
		{`{"command":"emergency_shutdown","confirm":"EMERGENCY_SHUTDOWN"}`, "data.reason"},
	} {
		r := f.do("POST", PathAdmin, f.token(), []byte(`{"action":"execute_command","data":`+tc.data+`}`))
		if _, _, code, field, _ := r.envelope(t); r.status != 422 || code != CodeInvalidField || field != tc.field {
			t.Errorf("%s: %d %s, want 422 on %s", tc.data, r.status, r.body, tc.field)
		}
	}
	select {
	case r := <-shutdown:
		t.Fatalf("emergency shutdown ran without confirmation (%q)", r)
	default:
	}

	d = unmarshal[map[string]any](t, f.mustAdmin(ActionExecuteCommand, map[string]any{"command": "disconnect_all", "reason": "rolling", "batchSize": 1, "intervalMs": 10}))
	if d["disconnecting"] != float64(2) {
		t.Fatalf("disconnect_all reply %v", d)
	}
	for _, c := range []*websocket.Conn{c1, c2} {
		if code, reason := readClose(t, c); code != 4000 || reason != "rolling" {
			t.Fatalf("closed with %d %q", code, reason)
		}
	}

	r := f.admin(ActionExecuteCommand, map[string]any{"command": "emergency_shutdown", "reason": "fire", "confirm": EmergencyConfirm})
	if ok, _, _, _, _ := r.envelope(t); r.status != 200 || !ok {
		t.Fatalf("emergency shutdown: %d %s", r.status, r.body)
	}
	select {
	case reason := <-shutdown:
		if reason != "fire" {
			t.Fatalf("hook got %q", reason)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the emergency hook was not called")
	}
	recs, _ := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 1})
	if recs[0].Action != ActionExecuteCommand || recs[0].Result != ResultOK || !strings.Contains(string(recs[0].Data), "emergency_shutdown") {
		t.Fatalf("audit %+v", recs[0])
	}
}

// Without a hook, emergency_shutdown shuts the engine down: health says
// draining.
func TestEmergencyShutdownDefault(t *testing.T) {
	f := newFixture(t)
	c := f.dial("")
	if _, err := f.ctl.Command(alice, ActionExecuteCommand, json.RawMessage(`{"command":"emergency_shutdown","reason":"fire","confirm":"EMERGENCY_SHUTDOWN"}`)); err != nil {
		t.Fatal(err)
	}
	if code, _ := readClose(t, c); code != 1001 {
		t.Fatalf("client closed with %d, want 1001", code)
	}
	if h := f.ctl.Health(); h.Status != StatusDraining {
		t.Fatalf("health after an emergency shutdown: %+v", h)
	}
}

// The request envelope: unknown action 400 naming the valid ones, missing
// action 422, bad JSON 400, unknown top-level field 422, body over 1 MiB
// 413; all audited.
func TestCommandEnvelopeErrors(t *testing.T) {
	f := newFixture(t)
	tok := f.token()
	for _, tc := range []struct {
		body   string
		status int
		code   string
		field  string
	}{
		{`{"action":"format_disk"}`, 400, CodeUnknownAction, ""},
		{`{}`, 422, CodeInvalidField, "action"},
		{``, 422, CodeInvalidField, "action"},
		{`{"action":`, 400, CodeBadRequest, ""},
		{`[1,2]`, 400, CodeBadRequest, ""},
		{`{"action":7}`, 422, CodeInvalidField, "action"},
		{`{"action":"get_alert_configs","extra":1}`, 422, CodeInvalidField, "extra"},
		{`{"action":"get_alert_configs","data":{"x":1}}`, 422, CodeInvalidField, "data.x"},
		{`{"action":"get_alert_configs"} {}`, 400, CodeBadRequest, ""},
	} {
		r := f.do("POST", PathAdmin, tok, []byte(tc.body))
		_, _, code, field, msg := r.envelope(t)
		if r.status != tc.status || code != tc.code || field != tc.field {
			t.Errorf("%q: %d %s %s, want %d %s %s", tc.body, r.status, code, field, tc.status, tc.code, tc.field)
		}
		if tc.code == CodeUnknownAction {
			for _, a := range Actions() {
				if !strings.Contains(msg, a) {
					t.Errorf("unknown action message does not name %s: %s", a, msg)
				}
			}
		}
	}
	_, err := f.ctl.Command(alice, "format_disk", nil)
	if !errors.Is(err, &Error{Code: CodeUnknownAction}) {
		t.Fatalf("Command unknown action: %v", err)
	}

	big := `{"action":"execute_command","data":{"command":"broadcast","message":"` + strings.Repeat("x", 1<<20) + `"}}`
	r := f.do("POST", PathAdmin, tok, []byte(big))
	if _, _, code, _, _ := r.envelope(t); r.status != http.StatusRequestEntityTooLarge || code != CodeTooLarge {
		t.Fatalf("1 MiB body: %d %s", r.status, r.body)
	}
	ok := `{"action":"execute_command","data":{"command":"broadcast","message":"` + strings.Repeat("x", 1<<19) + `"}}`
	if r := f.do("POST", PathAdmin, tok, []byte(ok)); r.status != 200 {
		t.Fatalf("512 KiB body: %d %s", r.status, r.body)
	}
	recs, _ := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 1000})
	var sawTooLarge bool
	for _, rec := range recs {
		if rec.Status == 413 && rec.SourceIP == "127.0.0.1" && rec.Result == ResultRefused {
			sawTooLarge = true
		}
	}
	if !sawTooLarge || len(recs) != 9+1+2 {
		t.Fatalf("%d audit records (413 seen: %v)", len(recs), sawTooLarge)
	}
}

// POST /api/health/socket: the detailed view, with its paging options.
func TestHealthDetails(t *testing.T) {
	f := newFixture(t)
	for range 3 {
		f.dial("")
	}
	f.dial("judy")
	f.waitOpen(4)
	f.mustAdmin(ActionGetAlertConfigs, nil)
	r := f.do("POST", PathHealth, f.token(), []byte(`{"connections":{"limit":2,"authenticated":false},"commands":{"limit":1}}`))
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	data := r.body
	raw := unmarshal[map[string]json.RawMessage](t, data)
	for _, k := range []string{"success", "status", "responseTime", "details", "connections", "metrics", "process", "admin", "activeAlerts", "maintenance"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("no %q in the detailed view", k)
		}
	}
	d := unmarshal[DetailedHealth](t, data)
	if !d.Success || d.Status != StatusHealthy || d.Connections.Summary.Total != 4 || d.Connections.Total != 3 || len(d.Connections.Detailed) != 2 ||
		len(d.Admin.CommandHistory) != 1 || len(d.Admin.AlertConfigs) != 4 || d.Metrics.Current.Connections.Total != 4 {
		t.Fatalf("detailed view %s", data)
	}
	if r := f.do("POST", PathHealth, f.token(), nil); r.status != 200 {
		t.Fatalf("empty body: %d %s", r.status, r.body)
	}
	r = f.do("POST", PathHealth, f.token(), []byte(`{"connections":{"limit":5000}}`))
	if _, _, _, field, _ := r.envelope(t); r.status != 422 || field != "connections.limit" {
		t.Fatalf("bad limit: %d %s", r.status, r.body)
	}
	g, err := f.ctl.DetailedHealth(DetailedHealthOptions{})
	if err != nil || g.Connections.Summary.Total != 4 || g.Connections.Total != 4 {
		t.Fatalf("DetailedHealth(): %+v %v", g, err)
	}
	recs, _ := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 1})
	if recs[0].Action != ActionHealthDetails || recs[0].Status != 422 {
		t.Fatalf("audit %+v", recs[0])
	}
}
