package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/netcore/backplane/redistest"
	"github.com/sockmon/sockmon/netcore/wstest"
)

const clusterClientSecret = "cluster-test-client-secret-0123456789abcdef"

// adminCall runs an admin action and returns the HTTP status and the
// reply's envelope.
func adminCall(t *testing.T, ctlAddr, token, action string, data any) (int, adminEnvelope) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"action": action, "data": data})
	req, _ := http.NewRequest("POST", "http://"+ctlAddr+"/api/admin/socket", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env adminEnvelope
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatalf("%s: %d: %v", action, resp.StatusCode, err)
	}
	return resp.StatusCode, env
}

type adminEnvelope struct {
	Success bool
	Data    json.RawMessage
	Error   struct{ Code, Message string }
}

// msgClient is a WebSocket client that keeps what it receives (up to
// 256 messages not yet waited for; later ones are dropped) and reports
// how it was closed.
type msgClient struct {
	conn   *websocket.Conn
	msgs   chan []byte
	closed chan *websocket.CloseError
}

func dialMsgClient(t *testing.T, addr, token string) *msgClient {
	t.Helper()
	url := "ws://" + addr + "/ws"
	if token != "" {
		url += "?token=" + token
	}
	c, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (%d)", addr, err, status)
	}
	t.Cleanup(func() { _ = c.Close() })
	m := &msgClient{conn: c, msgs: make(chan []byte, 256), closed: make(chan *websocket.CloseError, 1)}
	go func() {
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if !errors.As(err, &ce) {
					ce = &websocket.CloseError{Code: -1, Text: err.Error()}
				}
				m.closed <- ce
				return
			}
			select {
			case m.msgs <- b:
			default:
			}
		}
	}()
	return m
}

// waitFor returns the first message containing sub.
func (m *msgClient) waitFor(t *testing.T, sub string) []byte {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case b := <-m.msgs:
			if bytes.Contains(b, []byte(sub)) {
				return b
			}
		case ce := <-m.closed:
			t.Fatalf("closed (%d %s) before a message with %s", ce.Code, ce.Text, sub)
		case <-deadline:
			t.Fatalf("no message with %s in 10s", sub)
		}
	}
}

func (m *msgClient) waitClose(t *testing.T) *websocket.CloseError {
	t.Helper()
	select {
	case ce := <-m.closed:
		return ce
	case <-time.After(10 * time.Second):
		t.Fatal("not closed in 10s")
		return nil
	}
}

type clusterNodes struct {
	Backplane bool
	Self      string
	Nodes     []struct {
		ID, Address, Status string
		Connections         int64
		Self                bool
	}
	Totals struct {
		Nodes       int
		Connections int64
	}
}

// Three `sockmon serve` processes on one real redis-server: get_cluster
// lists them; get_connections and broadcast with scope cluster reach all
// three and the audit log of the node that took the broadcast holds the
// scope and each node's outcome; a user on node 2 is disconnected (4000)
// through node 1; a user banned on node 1 is refused (429) on node 3; node
// 3 killed with SIGKILL leaves the cluster after the heartbeat TTL; with
// Redis stopped node scope works and cluster scope answers 503; with Redis
// back the nodes register again without a restart.
func TestClusterThreeNodes(t *testing.T) {
	rs := redistest.Start(t)
	env := []string{"SOCKMON_ADMIN_SECRET=" + checkTestAdminSecret, "SOCKMON_JWT_SECRET=" + clusterClientSecret}
	type node struct {
		cmd     interface{ Wait() error }
		kill    func() error
		ws, ctl string
		logs    *logBuffer
	}
	var nodes []node
	for _, id := range []string{"n1", "n2", "n3"} {
		cmd, ws, ctl, logs := startServeLogs(t, env, "--redis-url", rs.URL(), "--node-id", id, "--node-heartbeat", "200ms",
			"--drain-delay", "0", "--message-rate", "5", "--message-burst", "5", "--ban-after", "3")
		nodes = append(nodes, node{cmd: cmd, kill: func() error { return cmd.Process.Signal(syscall.SIGKILL) }, ws: ws, ctl: ctl, logs: logs})
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	admin := adminToken(t)
	client := func(sub string) string {
		return hs256(t, clusterClientSecret, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()})
	}
	cluster := func(ctl string) (int, clusterNodes) {
		status, env := adminCall(t, ctl, admin, "get_cluster", map[string]any{})
		var v clusterNodes
		_ = json.Unmarshal(env.Data, &v)
		return status, v
	}
	wstest.Eventually(t, 10*time.Second, func() string {
		if status, v := cluster(n1.ctl); status != 200 || v.Totals.Nodes != 3 {
			return "get_cluster on n1: " + string(mustJSON(v))
		}
		return ""
	})
	if _, v := cluster(n1.ctl); !v.Backplane || v.Self != "n1" || !v.Nodes[0].Self || v.Nodes[0].ID != "n1" || v.Nodes[1].Self || v.Nodes[2].Status != "healthy" {
		t.Fatalf("get_cluster: %s", mustJSON(v))
	}

	// One client on each node; bob on node 2.
	c1 := dialMsgClient(t, n1.ws, "")
	bob := dialMsgClient(t, n2.ws, client("bob"))
	c3 := dialMsgClient(t, n3.ws, "")

	// get_connections with scope cluster merges the three nodes.
	wstest.Eventually(t, 10*time.Second, func() string {
		status, env := adminCall(t, n1.ctl, admin, "get_connections", map[string]any{"scope": "cluster"})
		var p struct {
			Total       int
			Scope       string
			Connections []struct{ Node, UserID string }
			Nodes       []struct{ Node, Status string }
		}
		_ = json.Unmarshal(env.Data, &p)
		byNode := map[string]string{}
		for _, c := range p.Connections {
			byNode[c.Node] += c.UserID + ","
		}
		if status != 200 || p.Scope != "cluster" || p.Total != 3 || len(p.Nodes) != 3 || byNode["n2"] != "bob," || len(byNode) != 3 {
			return "get_connections scope cluster: " + string(env.Data)
		}
		return ""
	})

	// broadcast with scope cluster reaches every node's client.
	status, benv := adminCall(t, n1.ctl, admin, "execute_command", map[string]any{"command": "broadcast", "message": map[string]any{"hello": "all"}, "scope": "cluster"})
	if status != 200 {
		t.Fatalf("broadcast scope cluster: %d %s", status, benv.Error.Message)
	}
	var br struct {
		Recipients int
		Nodes      []struct{ Node, Status string }
	}
	_ = json.Unmarshal(benv.Data, &br)
	if br.Recipients != 3 || len(br.Nodes) != 3 {
		t.Fatalf("broadcast reply: %s", benv.Data)
	}
	for _, c := range []*msgClient{c1, bob, c3} {
		c.waitFor(t, `"hello":"all"`)
	}
	// The audit log of node 1 holds the scope and the outcome of each node.
	_, henv := adminCall(t, n1.ctl, admin, "get_command_history", map[string]any{"action": "execute_command"})
	var hist struct {
		Commands []struct {
			Scope string
			Data  map[string]any
			Nodes []struct{ Node, Status string }
		}
	}
	_ = json.Unmarshal(henv.Data, &hist)
	found := false
	for _, r := range hist.Commands {
		if r.Scope == "cluster" {
			found = true
			if r.Data["scope"] != "cluster" || len(r.Nodes) != 3 || r.Nodes[0].Node != "n1" || r.Nodes[2].Node != "n3" || r.Nodes[2].Status != "ok" {
				t.Fatalf("cluster audit record: %+v", r)
			}
		}
	}
	if !found {
		t.Fatalf("no cluster-scope record in node 1's audit log: %s", henv.Data)
	}

	// bob, on node 2, disconnected through node 1 (scope cluster by default).
	status, denv := adminCall(t, n1.ctl, admin, "force_disconnect_user", map[string]any{"userId": "bob", "reason": "bye"})
	if status != 200 || !strings.Contains(string(denv.Data), `"disconnected":1`) {
		t.Fatalf("force_disconnect_user: %d %s %s", status, denv.Data, denv.Error.Message)
	}
	if ce := bob.waitClose(t); ce.Code != 4000 {
		t.Fatalf("bob closed with %d %q, want 4000", ce.Code, ce.Text)
	}

	// alice floods node 1 until it bans her; node 3 refuses her with 429.
	alice := dialMsgClient(t, n1.ws, client("alice"))
	for range 30 {
		if alice.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)) != nil {
			break
		}
	}
	if ce := alice.waitClose(t); ce.Code != 1008 {
		t.Fatalf("alice closed with %d %q, want 1008", ce.Code, ce.Text)
	}
	wstest.Eventually(t, 5*time.Second, func() string {
		c, resp, err := websocket.DefaultDialer.Dial("ws://"+n3.ws+"/ws?token="+client("alice"), nil)
		if err == nil {
			c.Close()
			return "alice admitted on node 3"
		}
		if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			return "alice on node 3: " + err.Error()
		}
		return ""
	})

	// Node 3 killed: gone once its key expires (3 × 200 ms).
	if err := n3.kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	wstest.Eventually(t, 5*time.Second, func() string {
		if _, v := cluster(n1.ctl); v.Totals.Nodes != 2 {
			return "get_cluster after SIGKILL of n3: " + string(mustJSON(v))
		}
		return ""
	})
	t.Logf("node 3 left get_cluster %s after SIGKILL", time.Since(killed).Round(10*time.Millisecond))

	// Redis stopped: node scope works, cluster scope is a clear 503.
	rs.Stop()
	wstest.Eventually(t, 5*time.Second, func() string {
		status, env := adminCall(t, n1.ctl, admin, "execute_command", map[string]any{"command": "broadcast", "message": "x", "scope": "cluster"})
		if status != http.StatusServiceUnavailable || env.Error.Code != "unavailable" || !strings.Contains(env.Error.Message, "Redis") {
			return "cluster broadcast with Redis down: " + env.Error.Code + " " + env.Error.Message
		}
		return ""
	})
	if status, env := adminCall(t, n1.ctl, admin, "execute_command", map[string]any{"command": "broadcast", "message": "local"}); status != 200 {
		t.Fatalf("node-scope broadcast with Redis down: %d %s", status, env.Error.Message)
	}
	c1.waitFor(t, `"local"`)
	if status, _ := cluster(n1.ctl); status != http.StatusServiceUnavailable {
		t.Fatalf("get_cluster with Redis down: %d", status)
	}

	// Redis back (empty): both nodes register again, no restart.
	rs.Restart()
	wstest.Eventually(t, 15*time.Second, func() string {
		if status, v := cluster(n2.ctl); status != 200 || v.Totals.Nodes != 2 {
			return "get_cluster after Redis restart: " + string(mustJSON(v))
		}
		return ""
	})
	// Through all that, node 1 logged JSON only (go-redis's lines too), and
	// said once that it lost Redis and that it registered again.
	var lost, registered int
	for _, line := range strings.Split(strings.TrimSpace(n1.logs.String()), "\n") {
		var rec struct{ Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("node 1 logged a line that is not JSON: %q", line)
		}
		switch {
		case strings.HasPrefix(rec.Msg, "cannot register the node in Redis"):
			lost++
		case rec.Msg == "node registered in Redis":
			registered++
		}
	}
	if lost != 1 || registered != 2 {
		t.Fatalf("node 1 logged the loss of Redis %d times and its registration %d times, want 1 and 2:\n%s", lost, registered, n1.logs.String())
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
