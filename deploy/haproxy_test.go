package deploy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// serverState is one server's row of HAProxy's `show servers state`.
type serverState struct {
	opState    int // 0 stopped (DOWN), 2 running (UP)
	adminState int // flags: 0x01 forced maint (the agent's maint), 0x08 forced drain (the agent's drain)
	uweight    int // the weight in force (the agent's NN% of iweight)
}

// Admin-state flags of `show servers state` (HAProxy's SRV_ADMF_*).
const (
	admForcedMaint = 0x01
	admForcedDrain = 0x08
)

// haproxyRuntime sends one command to HAProxy's runtime API.
func haproxyRuntime(sock, cmd string) (string, error) {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// serversState parses `show servers state sockmon` by its header's column
// names.
func serversState(sock string) (map[string]serverState, error) {
	out, err := haproxyRuntime(sock, "show servers state sockmon")
	if err != nil {
		return nil, err
	}
	var cols map[string]int
	states := map[string]serverState{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) > 1 && f[0] == "#":
			cols = map[string]int{}
			for i, name := range f[1:] {
				cols[name] = i
			}
		case cols != nil && len(f) > cols["srv_uweight"]:
			n := func(col string) int { v, _ := strconv.Atoi(f[cols[col]]); return v }
			states[f[cols["srv_name"]]] = serverState{opState: n("srv_op_state"), adminState: n("srv_admin_state"), uweight: n("srv_uweight")}
		}
	}
	return states, nil
}

// startHAProxy runs deploy/haproxy/haproxy.cfg unchanged in front of two
// nodes, with fast check intervals, and returns the client address and the
// runtime API's socket.
func startHAProxy(t *testing.T, n1, n2 *node) (lb, sock string) {
	t.Helper()
	bin := requireTool(t, "haproxy", "haproxy")
	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	lb = freeAddr(t)
	sock = filepath.Join(t.TempDir(), "haproxy.sock")
	cfg, err := filepath.Abs("haproxy/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"SOCKMON_LB_BIND="+lb,
		"SOCKMON_NODE1="+n1.ws, "SOCKMON_NODE1_CONTROL_PORT="+port(n1.control), "SOCKMON_NODE1_AGENT_PORT="+port(n1.agent),
		"SOCKMON_NODE2="+n2.ws, "SOCKMON_NODE2_CONTROL_PORT="+port(n2.control), "SOCKMON_NODE2_AGENT_PORT="+port(n2.agent),
		"SOCKMON_CHECK_INTER=200ms", "SOCKMON_AGENT_INTER=100ms",
		"SOCKMON_STATS_SOCKET="+sock,
		"SOCKMON_LB_MAXCONN=1000",
	)
	check := exec.Command(bin, "-c", "-f", cfg)
	check.Env = env
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-db", "-f", cfg)
	cmd.Env = env
	startDaemon(t, cmd, syscall.SIGTERM)
	return lb, sock
}

// adminPost runs an admin action on a node with a token minted by
// `sockmon token`.
func adminPost(t *testing.T, control, secret, body string) {
	t.Helper()
	tok := exec.Command(sockmonBin(t), "token", "--admin", "--sub", "haproxy-test", "--ttl", "10m")
	tok.Env = append(os.Environ(), "SOCKMON_ADMIN_SECRET="+secret)
	out, err := tok.Output()
	if err != nil {
		t.Fatalf("sockmon token: %v", err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+control+"/api/admin/socket", bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(out)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %s", body, resp.StatusCode, b)
	}
}

// A real HAProxy with haproxy.cfg in front of two `sockmon serve` processes
// with --agent-addr: the agent's weight falls as one node fills towards
// --max-conns and comes back when it empties; maintenance makes the agent
// say drain, which keeps the sessions on that node and sends new clients to
// the other; out of maintenance the agent says ready again and the node
// takes clients; an operator's set_agent_state maint shows as MAINT, and
// ready reverts it.
func TestHAProxyAgentCheck(t *testing.T) {
	requireTool(t, "haproxy", "haproxy")
	const secret = "haproxy-test-admin-secret-0123456789abcdef"
	env := []string{"SOCKMON_ADMIN_SECRET=" + secret}
	// PROXY protocol optional, not on: HAProxy sends the header, and the
	// test also holds connections to node1 directly, without one.
	args := []string{"--agent-addr", "127.0.0.1:0", "--max-conns", "10", "--conn-rate", "0", "--message-rate", "0", "--proxy-protocol", "optional", "--trusted-proxies", "127.0.0.1"}
	n1, n2 := startSockmon(t, env, args...), startSockmon(t, env, args...)
	if n1.agent == "" || n2.agent == "" {
		t.Fatal("sockmon serve --agent-addr did not log its agent address")
	}
	lb, sock := startHAProxy(t, n1, n2)

	var last map[string]serverState
	state := func() map[string]serverState {
		st, err := serversState(sock)
		if err == nil {
			last = st
		}
		return st
	}
	waitForState := func(what string, cond func(n1, n2 serverState) bool) {
		t.Helper()
		waitFor(t, what, func() bool {
			st := state()
			return st != nil && cond(st["node1"], st["node2"])
		})
	}
	defer func() {
		if t.Failed() {
			t.Logf("last servers state: %+v", last)
		}
	}()
	waitForState("both nodes UP, ready, weight 100", func(a, b serverState) bool {
		return a.opState == 2 && b.opState == 2 && a.adminState == 0 && b.adminState == 0 && a.uweight == 100 && b.uweight == 100
	})

	// Load: 8 of node1's 10 connections, held directly. The agent's load is
	// 0.8 or more, its weight 40% or less; node2 stays at 100.
	var held []*websocket.Conn
	for range 8 {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+n1.ws+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	waitForState("node1's weight to drop to 40 or less", func(a, b serverState) bool {
		return a.uweight >= 1 && a.uweight <= 40 && b.uweight == 100 && a.opState == 2
	})
	for _, c := range held {
		_ = c.Close()
	}
	waitForState("node1's weight to come back to 100", func(a, b serverState) bool { return a.uweight == 100 })

	// Sessions through HAProxy on both nodes.
	dial := func() *websocket.Conn {
		t.Helper()
		c, resp, err := websocket.DefaultDialer.Dial("ws://"+lb+"/ws", nil)
		if err != nil {
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			t.Fatalf("dial through HAProxy: %v (status %d)", err, code)
		}
		t.Cleanup(func() { _ = c.Close() })
		echo(t, c, 1)
		return c
	}
	var before []*websocket.Conn
	for range 6 {
		before = append(before, dial())
	}
	on1 := healthTotal(t, n1.control)
	if on1 == 0 || healthTotal(t, n2.control) == 0 {
		t.Fatalf("6 clients through HAProxy: %d on node1, %d on node2", on1, healthTotal(t, n2.control))
	}

	// Maintenance on node1: the agent says drain (HAProxy's forced-drain
	// flag, which only the agent sets here); new clients all go to node2;
	// node1's sessions stay and still work.
	adminPost(t, n1.control, secret, `{"action":"set_maintenance_mode","data":{"enabled":true,"reason":"haproxy agent test"}}`)
	waitForState("the agent's drain on node1", func(a, b serverState) bool {
		return a.adminState&admForcedDrain != 0 && b.adminState == 0
	})
	on2 := healthTotal(t, n2.control)
	for range 6 {
		dial()
	}
	if got := healthTotal(t, n1.control); got != on1 {
		t.Fatalf("node1 went from %d to %d connections while draining", on1, got)
	}
	if got := healthTotal(t, n2.control); got != on2+6 {
		t.Fatalf("node2 went from %d to %d connections; want all 6 new clients", on2, got)
	}
	for i, c := range before {
		echoSkippingSystem(t, c, 10+i)
	}

	// Out of maintenance: the agent says ready, the weight is 100, HAProxy
	// marks node1 UP and sends it new clients again.
	adminPost(t, n1.control, secret, `{"action":"set_maintenance_mode","data":{"enabled":false}}`)
	waitForState("node1 ready and UP again", func(a, b serverState) bool {
		return a.adminState == 0 && a.opState == 2 && a.uweight == 100
	})
	waitFor(t, "a new client on node1", func() bool {
		dial()
		return healthTotal(t, n1.control) > on1
	})

	// An operator's maint: HAProxy's forced maintenance, reverted by ready
	// (the agent is still asked while HAProxy holds the server in MAINT).
	adminPost(t, n2.control, secret, `{"action":"set_agent_state","data":{"state":"maint","reason":"haproxy agent test"}}`)
	waitForState("node2 in MAINT", func(a, b serverState) bool { return b.adminState&admForcedMaint != 0 })
	adminPost(t, n2.control, secret, `{"action":"set_agent_state","data":{"state":"ready"}}`)
	waitForState("node2 back from MAINT", func(a, b serverState) bool { return b.adminState == 0 && b.opState == 2 })
}

// echoSkippingSystem sends an echo envelope and waits for its reply,
// skipping system messages (clients of a node in maintenance get one).
func echoSkippingSystem(t *testing.T, c *websocket.Conn, id int) {
	t.Helper()
	msg := `{"type":"echo","id":` + strconv.Itoa(id) + `,"data":"x"}`
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("session through HAProxy: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("session through HAProxy: %v", err)
		}
		if strings.Contains(string(b), `"type":"system"`) {
			continue
		}
		if !strings.Contains(string(b), `"id":`+strconv.Itoa(id)) {
			t.Fatalf("echo through HAProxy: got %s, want the reply to %s", b, msg)
		}
		return
	}
}

// An unhealthy node (over --memory-limit: health answers 503) is marked
// DOWN by the health check and stays DOWN while its agent keeps answering
// (its weight and ready, without "up").
func TestHAProxyAgentDoesNotMaskAFailingHealthCheck(t *testing.T) {
	requireTool(t, "haproxy", "haproxy")
	n1 := startSockmon(t, nil, "--agent-addr", "127.0.0.1:0", "--proxy-protocol", "optional", "--trusted-proxies", "127.0.0.1")
	n2 := startSockmon(t, nil, "--agent-addr", "127.0.0.1:0", "--memory-limit", "1", "--proxy-protocol", "optional", "--trusted-proxies", "127.0.0.1")
	_, sock := startHAProxy(t, n1, n2)
	waitFor(t, "node2 DOWN and node1 UP", func() bool {
		st, _ := serversState(sock)
		return st != nil && st["node1"].opState == 2 && st["node2"].opState == 0
	})
	if got := sendAgentLine(t, n2.agent); !strings.HasPrefix(got, "ready ") {
		t.Fatalf("agent of an unhealthy node: %q, want ready and a weight without up", got)
	}
	// Ten agent intervals: node2 never comes back UP.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		st, err := serversState(sock)
		if err != nil {
			t.Fatal(err)
		}
		if st["node2"].opState != 0 {
			t.Fatalf("the unhealthy node2 came back: %+v", st["node2"])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sendAgentLine is what HAProxy does on each agent check: connect and read
// one line.
func sendAgentLine(t *testing.T, addr string) string {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return line
}

// The agent of a `sockmon serve` says drain as soon as SIGTERM starts the
// drain, for all of --drain-delay (which applies while a client is
// connected: with none the drain skips it).
func TestAgentDrainsOnSIGTERM(t *testing.T) {
	n := startSockmon(t, nil, "--agent-addr", "127.0.0.1:0", "--drain-delay", "30s", "--shutdown-timeout", "60s", "--proxy-protocol", "optional", "--trusted-proxies", "127.0.0.1")
	if got := sendAgentLine(t, n.agent); got != "up ready 100%\n" {
		t.Fatalf("agent of an idle node: %q", got)
	}
	c, _, err := websocket.DefaultDialer.Dial("ws://"+n.ws+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the agent to say drain", func() bool { return sendAgentLine(t, n.agent) == "drain\n" })
}
