package control

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/control/cluster"
	"github.com/sockmon/sockmon/netcore/backplane"
	"github.com/sockmon/sockmon/netcore/backplane/redistest"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// clusterFixture is a control server on its own engine, joined to the
// cluster of rs as id.
func clusterFixture(t *testing.T, rs *redistest.Server, id string) (*fixture, *cluster.Node) {
	t.Helper()
	rdb, err := backplane.NewClient(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	node, err := cluster.New(cluster.Options{Client: rdb, ID: id, Interval: 100 * time.Millisecond,
		CommandTimeout: time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.Cluster = node })
	f.proto.SetBanShare(node)
	node.OnBan(f.proto.ImportBan)
	node.Start()
	t.Cleanup(func() { _ = node.Close() })
	return f, node
}

func wantRefusal(t *testing.T, err error, code, field string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != code || e.Field != field {
		t.Fatalf("got %v, want %s on %q", err, code, field)
	}
}

// Without a backplane scope cluster is a 422 that says why, and an
// unknown scope is a 422; get_cluster answers that there is no backplane.
func TestScopeWithoutBackplane(t *testing.T) {
	f := newFixture(t)
	admin := Actor{Sub: "alice"}
	for _, c := range []struct{ action, data string }{
		{ActionExecuteCommand, `{"command":"broadcast","message":1,"scope":"cluster"}`},
		{ActionSetMaintenanceMode, `{"enabled":true,"scope":"cluster"}`},
		{ActionForceDisconnectUser, `{"userId":"bob","scope":"cluster"}`},
		{ActionGetConnections, `{"scope":"cluster"}`},
		{ActionExecuteCommand, `{"command":"broadcast","message":1,"scope":"everywhere"}`},
	} {
		_, err := f.ctl.Command(admin, c.action, json.RawMessage(c.data))
		wantRefusal(t, err, CodeInvalidField, "data.scope")
		if strings.Contains(c.data, `"cluster"`) && !strings.Contains(err.Error(), "--redis-url") {
			t.Errorf("%s: %v does not name --redis-url", c.action, err)
		}
	}
	// force_disconnect_user is node scope without a backplane.
	res, err := f.ctl.Command(admin, ActionForceDisconnectUser, json.RawMessage(`{"userId":"bob"}`))
	if err != nil || res.(map[string]any)["disconnected"] != 0 {
		t.Fatalf("force_disconnect_user without a backplane: %v %v", res, err)
	}
	v, err := f.ctl.Read(admin, ActionGetCluster, nil)
	if err != nil || string(mustMarshal(v)) != `{"backplane":false,"nodes":[],"totals":{"nodes":0,"connections":0,"byStatus":{}}}` {
		t.Fatalf("get_cluster without a backplane: %s %v", mustMarshal(v), err)
	}
	st, _ := f.ctl.AdminStatus()
	if st.Cluster != nil {
		t.Fatalf("admin GET shows cluster totals without a backplane: %+v", st.Cluster)
	}
}

func mustMarshal(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// Two control servers joined by Redis: a cluster broadcast and a
// force_disconnect_user reach the clients of both; each node audits what
// it ran (the other with via), the node that took it the scope and the
// outcome of each node; emergency_shutdown refuses scope cluster;
// get_connections merges and refuses an offset; a per-user rate limit
// reaches the other node and its store; the admin GET adds up the nodes.
func TestClusterCommandsAcrossTwoControlServers(t *testing.T) {
	rs := redistest.Start(t)
	f1, n1 := clusterFixture(t, rs, "n1")
	f2, _ := clusterFixture(t, rs, "n2")
	admin := Actor{Sub: "alice", IP: "10.0.0.9"}
	wstest.WaitFor(t, "two nodes registered", func() bool {
		v, err := f1.ctl.Cluster(t.Context())
		return err == nil && v.Totals.Nodes == 2
	})
	c1 := f1.dial("bob")
	c2 := f2.dial("bob")

	res, err := f1.ctl.Command(admin, ActionExecuteCommand, json.RawMessage(`{"command":"broadcast","message":{"hi":1},"scope":"cluster"}`))
	if err != nil {
		t.Fatal(err)
	}
	out := res.(map[string]any)
	if out["recipients"] != int64(2) || out["scope"] != "cluster" || len(out["nodes"].([]NodeResult)) != 2 {
		t.Fatalf("cluster broadcast: %s", mustMarshal(res))
	}
	for _, c := range []*websocket.Conn{c1, c2} {
		if m := readJSON(t, c); !strings.Contains(string(mustMarshal(m)), `"hi":1`) {
			t.Fatalf("client got %v", m)
		}
	}
	recs, _ := f1.ctl.CommandHistory(CommandHistoryOptions{Limit: 10, Action: ActionExecuteCommand})
	if len(recs) != 2 || recs[0].Scope != ScopeCluster || len(recs[0].Nodes) != 2 || recs[0].Nodes[1] != (NodeOutcome{Node: "n2", Status: "ok"}) ||
		!strings.Contains(string(recs[0].Data), `"scope":"cluster"`) || recs[1].Scope != "" || !strings.Contains(string(recs[1].Data), `"scope":"node"`) {
		t.Fatalf("audit of n1: %s", mustMarshal(recs))
	}
	recs, _ = f2.ctl.CommandHistory(CommandHistoryOptions{Limit: 10, Action: ActionExecuteCommand})
	if len(recs) != 1 || recs[0].Via != "n1" || recs[0].Actor != "alice" || recs[0].SourceIP != "10.0.0.9" || recs[0].Result != ResultOK {
		t.Fatalf("audit of n2: %s", mustMarshal(recs))
	}

	_, err = f1.ctl.Command(admin, ActionExecuteCommand, json.RawMessage(`{"command":"emergency_shutdown","reason":"x","confirm":"EMERGENCY_SHUTDOWN","scope":"cluster"}`))
	wantRefusal(t, err, CodeInvalidField, "data.scope")

	page, err := f1.ctl.Read(admin, ActionGetConnections, json.RawMessage(`{"scope":"cluster","sortBy":"connectedAt","order":"desc"}`))
	if err != nil {
		t.Fatal(err)
	}
	p := page.(*ConnectionsPage)
	if p.Total != 2 || len(p.Connections) != 2 || len(p.Nodes) != 2 || p.Nodes[1].Status != "ok" ||
		p.Connections[0].ConnectedAt.Before(p.Connections[1].ConnectedAt) || p.Connections[0].Node == p.Connections[1].Node {
		t.Fatalf("get_connections scope cluster: %s", mustMarshal(p))
	}
	_, err = f1.ctl.Read(admin, ActionGetConnections, json.RawMessage(`{"scope":"cluster","offset":1}`))
	wantRefusal(t, err, CodeInvalidField, "data.offset")
	page, _ = f1.ctl.Read(admin, ActionGetConnections, json.RawMessage(`{"scope":"cluster","limit":1}`))
	if p := page.(*ConnectionsPage); p.Total != 2 || len(p.Connections) != 1 {
		t.Fatalf("limit 1: %s", mustMarshal(p))
	}

	// force_disconnect_user: cluster scope by default.
	res, err = f1.ctl.Command(admin, ActionForceDisconnectUser, json.RawMessage(`{"userId":"bob","reason":"bye"}`))
	if err != nil || res.(map[string]any)["disconnected"] != int64(2) {
		t.Fatalf("force_disconnect_user: %s %v", mustMarshal(res), err)
	}
	for _, c := range []*websocket.Conn{c1, c2} {
		if code, _ := readClose(t, c); code != 4000 {
			t.Fatalf("close %d, want 4000", code)
		}
	}

	// A per-user rate limit reaches n2 and its store.
	res, err = f1.ctl.Command(admin, ActionSetRateLimit, json.RawMessage(`{"userId":"carol","limit":3,"windowMs":1000}`))
	if err != nil || res.(RateLimitView).NotShared != "" {
		t.Fatalf("set_rate_limit: %+v %v", res, err)
	}
	wstest.WaitFor(t, "the rate limit on n2", func() bool {
		st, _ := f2.ctl.AdminStatus()
		return len(st.RateLimits) == 1 && st.RateLimits[0].UserID == "carol" && st.RateLimits[0].Limit == 3 && st.RateLimits[0].Persisted
	})

	st, err := f1.ctl.AdminStatus()
	if err != nil || st.Cluster == nil || st.Cluster.Nodes != 2 || st.Cluster.ByStatus[cluster.StatusHealthy] != 2 {
		t.Fatalf("admin GET cluster totals: %+v %v", st.Cluster, err)
	}

	// Redis down: cluster scope is a 503 that applies nothing, node scope works.
	rs.Stop()
	wstest.WaitFor(t, "n1 degraded", func() bool { _, down := n1.Degraded(); return down })
	_, err = f1.ctl.Command(admin, ActionSetMaintenanceMode, json.RawMessage(`{"enabled":true,"scope":"cluster"}`))
	wantRefusal(t, err, CodeUnavailable, "")
	if f1.engine.Maintenance() != nil {
		t.Fatal("a refused cluster command was applied on the node that took it")
	}
	if _, err := f1.ctl.Command(admin, ActionSetMaintenanceMode, json.RawMessage(`{"enabled":true}`)); err != nil || f1.engine.Maintenance() == nil {
		t.Fatalf("node scope with Redis down: %v", err)
	}
	if st, _ := f1.ctl.AdminStatus(); st.Cluster == nil || st.Cluster.Error == "" {
		t.Fatalf("admin GET with Redis down: %+v", st.Cluster)
	}
}
