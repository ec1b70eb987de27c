package control

import (
	"bufio"
	"context"
	"encoding/csv"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// haproxyBin finds haproxy. Under CI=true a missing haproxy fails the test
// (make test-deps installs the Debian package); elsewhere it skips.
func haproxyBin(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("haproxy is not installed (CI=true): run make test-deps")
		}
		t.Skip("haproxy is not installed; make test-deps installs it")
	}
	return bin
}

// freeAddr returns a loopback address with a port nothing listens on (for
// HAProxy's bind, which the test cannot hand a listener to).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// haproxyStat returns the status column ("UP", "DOWN", "UP 1/2"...) of
// each server of backend sockmon, from the runtime API's "show stat".
func haproxyStat(sock string) (map[string]string, error) {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "show stat\n"); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(b), "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) < 2 {
		return nil, err
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	out := map[string]string{}
	for _, row := range rows[1:] {
		if len(row) > col["status"] && row[col["pxname"]] == "sockmon" && strings.HasPrefix(row[col["svname"]], "node") {
			out[row[col["svname"]]] = row[col["status"]]
		}
	}
	return out, nil
}

// A real HAProxy, run with deploy/haproxy/haproxy.cfg unchanged, in front of
// two sockmon nodes (netcore + control in process): both take clients; one
// switched into maintenance through the admin API is marked down by the
// httpchk on /api/health/socket, and new WebSocket clients all go to the
// other; out of maintenance it comes back.
func TestHAProxyDrainsNodeInMaintenance(t *testing.T) {
	bin := haproxyBin(t)
	// As haproxy.cfg says to run the nodes: PROXY protocol from HAProxy.
	behindHAProxy := func(c *netcore.Config) {
		c.ProxyProtocol, c.TrustedProxies = netcore.ProxyOn, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	}
	node1, node2 := newFixtureWith(t, behindHAProxy), newFixtureWith(t, behindHAProxy)
	port := func(base string) string { _, p, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://")); return p }
	lb := freeAddr(t)
	sock := filepath.Join(t.TempDir(), "haproxy.sock")
	cfg, err := filepath.Abs("../deploy/haproxy/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"SOCKMON_LB_BIND="+lb,
		"SOCKMON_NODE1="+node1.wsAddr, "SOCKMON_NODE1_CONTROL_PORT="+port(node1.base),
		"SOCKMON_NODE2="+node2.wsAddr, "SOCKMON_NODE2_CONTROL_PORT="+port(node2.base),
		// No agent here (deploy/haproxy_test.go runs it): ports nothing
		// listens on, which HAProxy does not count as a failure.
		"SOCKMON_NODE1_AGENT_PORT="+port("http://"+freeAddr(t)), "SOCKMON_NODE2_AGENT_PORT="+port("http://"+freeAddr(t)),
		"SOCKMON_CHECK_INTER=100ms",
		"SOCKMON_STATS_SOCKET="+sock,
		"SOCKMON_LB_MAXCONN=1000",
	)
	check := exec.Command(bin, "-c", "-f", cfg)
	check.Env = env
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-db", "-f", cfg)
	cmd.Env = env
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy output:\n%s", logs.String())
		}
	})

	status := func() map[string]string {
		st, _ := haproxyStat(sock)
		return st
	}
	wstest.WaitFor(t, "both nodes UP in HAProxy", func() bool {
		st := status()
		return st["node1"] == "UP" && st["node2"] == "UP"
	})

	dial := func(n int) []*websocket.Conn {
		t.Helper()
		var conns []*websocket.Conn
		for range n {
			c, resp, err := websocket.DefaultDialer.Dial("ws://"+lb+"/ws", nil)
			if err != nil {
				code := 0
				if resp != nil {
					code = resp.StatusCode
				}
				t.Fatalf("dial through HAProxy: %v (status %d)", err, code)
			}
			t.Cleanup(func() { _ = c.Close() })
			// The connection works end to end.
			if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":1}`)); err != nil {
				t.Fatal(err)
			}
			if m := readJSON(t, c); m["type"] != "pong" {
				t.Fatalf("through HAProxy: %v", m)
			}
			conns = append(conns, c)
		}
		return conns
	}
	before := dial(10)
	a1, a2 := node1.engine.Stats().Accepted, node2.engine.Stats().Accepted
	if a1 == 0 || a2 == 0 || a1+a2 != 10 {
		t.Fatalf("10 clients spread as %d + %d", a1, a2)
	}

	// node1 into maintenance through its admin API.
	node1.mustAdmin(ActionSetMaintenanceMode, map[string]any{"enabled": true, "reason": "haproxy test"})
	wstest.WaitFor(t, "HAProxy to mark node1 DOWN", func() bool {
		st := status()
		return strings.HasPrefix(st["node1"], "DOWN") && st["node2"] == "UP"
	})
	dial(10)
	if got := node1.engine.Stats().Accepted; got != a1 {
		t.Fatalf("node1 in maintenance accepted %d new clients", got-a1)
	}
	if got := node2.engine.Stats().Accepted; got != a2+10 {
		t.Fatalf("node2 accepted %d of the 10 new clients", got-a2)
	}
	if r := node1.engine.Stats().Rejected; r != 0 {
		t.Fatalf("node1 refused %d upgrades: HAProxy still sent it clients", r)
	}
	// The clients connected before maintenance stay (no drain).
	for _, c := range before {
		if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":2}`)); err != nil {
			t.Fatal(err)
		}
		readJSON(t, c)
	}

	node1.mustAdmin(ActionSetMaintenanceMode, map[string]any{"enabled": false})
	wstest.WaitFor(t, "HAProxy to mark node1 UP again", func() bool { return status()["node1"] == "UP" })
	n1 := node1.engine.Stats().Accepted
	dial(10)
	if node1.engine.Stats().Accepted == n1 {
		t.Fatal("node1 back in rotation took no new client")
	}
}

// HAProxy's default check request (HTTP/1.0, no Host header) is answered.
func TestHealthAnswersHTTP10WithoutHost(t *testing.T) {
	f := newFixture(t)
	c, err := net.Dial("tcp", strings.TrimPrefix(f.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /api/health/socket HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.0 200") && !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("status line %q, %v", line, err)
	}
}
