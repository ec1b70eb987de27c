package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/netcore/backplane"
	"github.com/sockmon/sockmon/netcore/backplane/redistest"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// bpNode is one `sockmon serve` joined to the test's Redis.
type bpNode struct{ ws, ctl string }

func startBackplaneNodes(t *testing.T, redisURL string, n int, args ...string) []bpNode {
	t.Helper()
	nodes := make([]bpNode, n)
	for i := range nodes {
		_, ws, ctl, _ := startServeLogs(t, []string{"SOCKMON_ADMIN_SECRET=" + checkTestAdminSecret},
			append([]string{"--redis-url", redisURL, "--message-rate", "0", "--room-publish-rate", "0"}, args...)...)
		nodes[i] = bpNode{ws, ctl}
	}
	return nodes
}

// roomClient is a WebSocket client that keeps every frame it receives.
type roomClient struct {
	t    testing.TB
	c    *websocket.Conn
	mu   sync.Mutex
	msgs []map[string]any
}

func dialRoomClient(t testing.TB, wsAddr string) *roomClient {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+wsAddr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := &roomClient{t: t, c: c}
	t.Cleanup(func() { _ = c.Close() })
	go func() {
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				return
			}
			var m map[string]any
			if json.Unmarshal(data, &m) != nil {
				m = map[string]any{"type": "unparsable", "raw": string(data)}
			}
			rc.mu.Lock()
			rc.msgs = append(rc.msgs, m)
			rc.mu.Unlock()
		}
	}()
	return rc
}

func (rc *roomClient) send(v any) {
	rc.t.Helper()
	if err := rc.c.WriteJSON(v); err != nil {
		rc.t.Fatal(err)
	}
}

// of returns the data of the frames of type typ, in the order received.
func (rc *roomClient) of(typ string) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, m := range rc.msgs {
		if m["type"] == typ {
			b, _ := json.Marshal(m["data"])
			out = append(out, string(b))
		}
	}
	return out
}

func (rc *roomClient) acks() int { return len(rc.of("ack")) }

// join joins room and waits for the ack.
func (rc *roomClient) join(room string) {
	rc.t.Helper()
	n := rc.acks()
	rc.send(map[string]any{"type": "join", "room": room})
	wstest.WaitFor(rc.t, "join ack", func() bool { return rc.acks() > n })
}

// numSub is PUBSUB NUMSUB's count for channel (redistest's Do reads only
// the reply's first line).
func numSub(t *testing.T, r *redistest.Server, channel string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", r.Addr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	cmd := "*3\r\n$6\r\nPUBSUB\r\n$6\r\nNUMSUB\r\n$" + strconv.Itoa(len(channel)) + "\r\n" + channel + "\r\n"
	if _, err := conn.Write([]byte(cmd)); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(conn)
	var lines []string
	for len(lines) < 4 { // *2, $len, channel, :count
		l, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimRight(l, "\r\n"))
	}
	n, err := strconv.Atoi(strings.TrimPrefix(lines[3], ":"))
	if err != nil {
		t.Fatalf("PUBSUB NUMSUB reply %q", lines)
	}
	return n
}

// health returns a node's public health status and reasons.
func health(t *testing.T, ctl string) (string, []string) {
	t.Helper()
	resp, err := http.Get("http://" + ctl + "/api/health/socket")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Status  string
		Reasons []string
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h.Status, h.Reasons
}

// metricValue returns a series' value on a node's /metrics, or -1.
func metricValue(t testing.TB, ctl, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + ctl + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// settle reads for a while after the expected frames arrived, so that a
// duplicate would be seen.
const settle = 500 * time.Millisecond

// Three real nodes on one real Redis: a publish on node 1 reaches every
// member on every node exactly once and in order; an admin broadcast with
// scope cluster reaches every client once, one with scope node stays on its node;
// subscriptions follow membership; Redis stopped mid-traffic leaves local
// delivery working, health degraded and drops counted; Redis restarted on
// the same port joins the nodes again without restarting any.
func TestServeBackplaneThreeNodes(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startBackplaneNodes(t, redis.URL()+"?dial_timeout=200ms", 3)
	token := adminToken(t)
	const room = "X"
	channel := backplane.RoomPrefix + room

	pub := dialRoomClient(t, nodes[0].ws)
	members := []*roomClient{pub, dialRoomClient(t, nodes[0].ws), dialRoomClient(t, nodes[1].ws), dialRoomClient(t, nodes[1].ws), dialRoomClient(t, nodes[2].ws)}
	outsider := dialRoomClient(t, nodes[2].ws) // on node 3, in no room
	if n := numSub(t, redis, channel); n != 0 {
		t.Fatalf("%d subscribers of %s before any join", n, channel)
	}
	for _, m := range members {
		m.join(room)
	}
	wstest.WaitFor(t, "three nodes subscribed to the room", func() bool { return numSub(t, redis, channel) == 3 })

	const n = 100
	var want []string
	for i := range n {
		pub.send(map[string]any{"type": "publish", "room": room, "data": map[string]int{"i": i}})
		want = append(want, `{"i":`+strconv.Itoa(i)+`}`)
	}
	adminPost(t, nodes[0].ctl, token, "execute_command", map[string]any{"command": "broadcast", "scope": "cluster", "message": map[string]string{"hello": "all"}})
	everyone := append(slices.Clone(members), outsider)
	wstest.WaitFor(t, "every member to receive the publishes and everyone the broadcast", func() bool {
		for _, m := range members {
			if len(m.of("message")) < n {
				return false
			}
		}
		for _, c := range everyone {
			if len(c.of("broadcast")) < 1 {
				return false
			}
		}
		return true
	})
	time.Sleep(settle)
	for i, m := range members {
		if got := m.of("message"); !slices.Equal(got, want) {
			t.Fatalf("member %d received %d messages (want each of %d once, in order): %v", i, len(got), n, got)
		}
	}
	for i, c := range everyone {
		if got := c.of("broadcast"); len(got) != 1 || got[0] != `{"hello":"all"}` {
			t.Fatalf("client %d received broadcasts %v, want one", i, got)
		}
	}
	if got := outsider.of("message"); len(got) != 0 {
		t.Fatalf("a client in no room received %v", got)
	}
	// A broadcast with the default scope stays on the node that took it,
	// the rooms' backplane does not carry it.
	adminPost(t, nodes[0].ctl, token, "execute_command", map[string]any{"command": "broadcast", "message": map[string]string{"hello": "node1"}})
	wstest.WaitFor(t, "node 1's clients to receive the node broadcast", func() bool {
		return len(members[0].of("broadcast")) == 2 && len(members[1].of("broadcast")) == 2
	})
	time.Sleep(settle)
	for i, c := range everyone[2:] {
		if got := c.of("broadcast"); len(got) != 1 {
			t.Fatalf("client %d on another node received broadcasts %v, want only the cluster one", i+2, got)
		}
	}

	// Subscription follows membership: node 3's only member leaves, then
	// joins again.
	last := members[4]
	last.send(map[string]any{"type": "leave", "room": room})
	wstest.WaitFor(t, "node 3 to unsubscribe", func() bool { return numSub(t, redis, channel) == 2 })
	last.join(room)
	wstest.WaitFor(t, "node 3 to subscribe again", func() bool { return numSub(t, redis, channel) == 3 })

	// Redis stops mid-traffic.
	redis.Stop()
	before := len(members[1].of("message"))
	for i := range 20 {
		pub.send(map[string]any{"type": "publish", "room": room, "data": map[string]string{"down": strconv.Itoa(i)}})
	}
	wstest.WaitFor(t, "local delivery on node 1 while Redis is down", func() bool { return len(members[1].of("message")) == before+20 })
	wstest.WaitFor(t, "node 1 degraded with the backplane's reason and drops counted", func() bool {
		status, reasons := health(t, nodes[0].ctl)
		if status != "degraded" || !slices.Contains(reasons, backplane.ReasonUnavailable) {
			pub.send(map[string]any{"type": "publish", "room": room, "data": "more"})
			return false
		}
		return metricValue(t, nodes[0].ctl, `sockmon_backplane_messages_total{direction="out",result="dropped"}`) > 0
	})
	for _, nd := range nodes[1:] {
		wstest.WaitFor(t, "the other nodes degraded too", func() bool {
			status, reasons := health(t, nd.ctl)
			return status == "degraded" && slices.Contains(reasons, backplane.ReasonUnavailable)
		})
	}

	// Redis is back on the same port: rooms work across nodes again.
	redis.Restart()
	wstest.WaitFor(t, "the three nodes to subscribe the room again", func() bool { return numSub(t, redis, channel) == 3 })
	for _, nd := range nodes {
		wstest.WaitFor(t, "healthy again", func() bool { s, _ := health(t, nd.ctl); return s == "healthy" })
	}
	far := members[4]
	wstest.WaitFor(t, "a publish on node 1 to reach node 3 again", func() bool {
		pub.send(map[string]any{"type": "publish", "room": room, "data": "back"})
		time.Sleep(50 * time.Millisecond)
		return slices.Contains(far.of("message"), `"back"`)
	})
}

// A --redis-url that does not parse stops the start with exit 2 and says
// why, never repeating the password; an unreachable Redis does not stop it:
// the node serves, degraded, and its logs never show the password.
func TestServeRedisURL(t *testing.T) {
	const password = "hunter2-redis-password"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--redis-url", "http://127.0.0.1:6379"}, `--redis-url: redis url http://127.0.0.1:6379: scheme "http"`},
		{[]string{"--redis-url", "redis://:" + password + "@127.0.0.1:6379/notadb"}, "--redis-url: redis url redis://:xxxxx@127.0.0.1:6379/notadb"},
		{[]string{"--redis-url", "redis://127.0.0.1:6379", "--redis-queue-size", "-1"}, "--redis-queue-size: backplane: queue size -1"},
	} {
		var stderr strings.Builder
		code := serveCommand(append([]string{"--data-dir", t.TempDir()}, tc.args...), io.Discard, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) || strings.Contains(stderr.String(), password) {
			t.Errorf("serve %v: exit %d, stderr %q, want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}

	addr := freeAddr(t)
	_, _, ctl, logs := startServeLogs(t, nil, "--redis-url", "redis://:"+password+"@"+addr+"?dial_timeout=100ms")
	wstest.WaitFor(t, "health degraded by the unreachable backplane", func() bool {
		status, reasons := health(t, ctl)
		return status == "degraded" && slices.Contains(reasons, backplane.ReasonUnavailable)
	})
	if strings.Contains(logs.String(), password) {
		t.Fatalf("the logs show the Redis password:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "@"+addr+"?dial_timeout") {
		t.Fatalf("the logs do not name the Redis URL (redacted):\n%s", logs)
	}
}
