package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockmon/sockmon/netcore/backplane"
	"github.com/sockmon/sockmon/netcore/backplane/redistest"
	"github.com/sockmon/sockmon/netcore/wstest"
)

const testInterval = 100 * time.Millisecond

func newNode(t *testing.T, rs *redistest.Server, id string) *Node {
	t.Helper()
	rdb, err := backplane.NewClient(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	n, err := New(Options{Client: rdb, ID: id, Address: id + ":8080", Version: "test", Interval: testInterval,
		CommandTimeout: 500 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		Local: func() Local { return Local{Connections: int64(len(id)), Status: StatusHealthy} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func ids(nodes []NodeInfo) string {
	var s []string
	for _, n := range nodes {
		id := n.ID
		if n.Self {
			id += "*"
		}
		s = append(s, id)
	}
	return strings.Join(s, ",")
}

// Nodes register, list each other sorted with this one marked, and leave:
// at once when they close, after the TTL when they stop heartbeating.
func TestRegistry(t *testing.T) {
	rs := redistest.Start(t)
	a, b, c := newNode(t, rs, "a"), newNode(t, rs, "b"), newNode(t, rs, "c")
	for _, n := range []*Node{a, b, c} {
		n.Start()
	}
	wstest.Eventually(t, 5*time.Second, func() string {
		nodes, err := b.Nodes(context.Background())
		if err != nil || ids(nodes) != "a,b*,c" {
			return "nodes: " + ids(nodes)
		}
		if nodes[2].Connections != 1 || nodes[2].Address != "c:8080" || nodes[2].Version != "test" || nodes[2].Status != StatusHealthy {
			return "node c: " + string(mustJSON(nodes[2]))
		}
		return ""
	})
	// a closes: gone at once.
	_ = a.Close()
	if nodes, err := b.Nodes(context.Background()); err != nil || ids(nodes) != "b*,c" {
		t.Fatalf("after a closed: %s %v", ids(nodes), err)
	}
	// c stops heartbeating without leaving (a SIGKILL): gone after 3 heartbeats.
	c.cancel()
	_ = c.ps.Close()
	c.wg.Wait()
	if nodes, _ := b.Nodes(context.Background()); ids(nodes) != "b*,c" {
		t.Fatalf("c left before its TTL: %s", ids(nodes))
	}
	wstest.Eventually(t, 2*time.Second, func() string {
		if nodes, _ := b.Nodes(context.Background()); ids(nodes) != "b*" {
			return "after c's TTL: " + ids(nodes)
		}
		return ""
	})
	if members, _ := rs.Do("ZCARD", keyNodes); members != ":1" {
		t.Fatalf("the index still holds %s ids", members)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// Send reaches every other node once and gathers the replies; a node
// that is registered but does not answer is reported as timed out after
// CommandTimeout, not waited for longer.
func TestSendGathersRepliesAndTimesOut(t *testing.T) {
	rs := redistest.Start(t)
	a, b, c := newNode(t, rs, "a"), newNode(t, rs, "b"), newNode(t, rs, "c")
	var mu sync.Mutex
	ran := map[string]int{}
	for _, n := range []*Node{a, b, c} {
		n.Handle(func(ctx context.Context, cmd Command) Reply {
			mu.Lock()
			ran[n.ID()]++
			mu.Unlock()
			if cmd.From != "a" || cmd.Kind != "echo" {
				return Reply{Status: "refused", Message: "unexpected " + cmd.From + " " + cmd.Kind}
			}
			return Reply{Status: "ok", Data: cmd.Data}
		})
		n.Start()
	}
	wstest.Eventually(t, 5*time.Second, func() string {
		nodes, _ := a.Nodes(context.Background())
		return map[bool]string{true: "", false: "nodes: " + ids(nodes)}[ids(nodes) == "a*,b,c"]
	})
	// A node in the registry that does not listen.
	info, _ := json.Marshal(NodeInfo{ID: "silent"})
	if _, err := rs.Do("SET", keyPrefix+"silent", string(info), "PX", "60000"); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Do("ZADD", keyNodes, "0", "silent"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	replies, err := a.Send(context.Background(), "echo", json.RawMessage(`{"x":1}`))
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	got := string(mustJSON(replies))
	want := `[{"node":"b","status":"ok","data":{"x":1}},{"node":"c","status":"ok","data":{"x":1}},{"node":"silent","status":"timeout","message":"no reply within 500ms"}]`
	if got != want {
		t.Fatalf("replies\n got %s\nwant %s", got, want)
	}
	if took < 500*time.Millisecond || took > 5*time.Second {
		t.Fatalf("Send took %s with a silent node (timeout 500ms)", took)
	}
	mu.Lock()
	defer mu.Unlock()
	if ran["a"] != 0 || ran["b"] != 1 || ran["c"] != 1 {
		t.Fatalf("runs %v: want b and c once, a (the sender) never", ran)
	}
}

// A ban shared by one node reaches the running ones and is loaded by a
// node that starts later, with about the time left; a per-user rate limit
// likewise, and its removal reaches the others.
func TestSharedBansAndRateLimits(t *testing.T) {
	rs := redistest.Start(t)
	type ban struct {
		d     time.Duration
		level int
	}
	type rec struct {
		mu     sync.Mutex
		bans   map[string]ban
		limits map[string]int
	}
	hook := func(n *Node) *rec {
		r := &rec{bans: map[string]ban{}, limits: map[string]int{}}
		n.OnBan(func(key string, d time.Duration, level int) {
			r.mu.Lock()
			r.bans[key] = ban{d, level}
			r.mu.Unlock()
		})
		n.OnRateLimit(func(user string, limit int, window time.Duration) {
			r.mu.Lock()
			r.limits[user] = limit
			r.mu.Unlock()
		})
		return r
	}
	a, b := newNode(t, rs, "a"), newNode(t, rs, "b")
	ra, rb := hook(a), hook(b)
	a.Start()
	b.Start()
	wstest.Eventually(t, 5*time.Second, func() string {
		nodes, _ := a.Nodes(context.Background())
		return map[bool]string{true: "", false: "nodes: " + ids(nodes)}[len(nodes) == 2]
	})
	a.ShareBan("user:alice", time.Minute, 2)
	if err := a.ShareRateLimit(context.Background(), "bob", 7, time.Second); err != nil {
		t.Fatal(err)
	}
	wstest.Eventually(t, 5*time.Second, func() string {
		rb.mu.Lock()
		defer rb.mu.Unlock()
		if rb.bans["user:alice"] != (ban{time.Minute, 2}) || rb.limits["bob"] != 7 {
			return "b got " + string(mustJSON(rb.bans)) + " " + string(mustJSON(rb.limits))
		}
		return ""
	})
	ra.mu.Lock()
	if len(ra.bans)+len(ra.limits) != 0 {
		t.Fatalf("a applied its own announcements: %v %v", ra.bans, ra.limits)
	}
	ra.mu.Unlock()
	if ttl, _ := rs.Do("PTTL", keyBanPrefix+"user:alice"); ttl < ":50000" || ttl > ":60000" {
		t.Fatalf("ban key TTL %s ms, want about 60000", ttl)
	}
	// A node starting now loads both.
	c := newNode(t, rs, "c")
	rc := hook(c)
	c.Start()
	wstest.Eventually(t, 5*time.Second, func() string {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		bn := rc.bans["user:alice"]
		if bn.level != 2 || bn.d < 50*time.Second || bn.d > time.Minute || rc.limits["bob"] != 7 {
			return "c loaded " + string(mustJSON(rc.bans)) + " " + string(mustJSON(rc.limits))
		}
		return ""
	})
	if err := b.ShareRateLimit(context.Background(), "bob", 0, 0); err != nil {
		t.Fatal(err)
	}
	wstest.Eventually(t, 5*time.Second, func() string {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		return map[bool]string{true: "", false: "c did not see the removal"}[rc.limits["bob"] == 0]
	})
	if n, _ := rs.Do("HLEN", keyLimits); n != ":0" {
		t.Fatalf("%s limits left in Redis", n)
	}
}

// With Redis stopped the node says why it is degraded and cluster calls
// fail fast with an *UnavailableError; with Redis back (empty) the node
// registers again and reloads, without a restart.
func TestRedisDownAndBack(t *testing.T) {
	rs := redistest.Start(t)
	a, b := newNode(t, rs, "a"), newNode(t, rs, "b")
	a.Start()
	b.Start()
	wstest.Eventually(t, 5*time.Second, func() string {
		nodes, _ := a.Nodes(context.Background())
		return map[bool]string{true: "", false: "nodes: " + ids(nodes)}[len(nodes) == 2]
	})
	if reason, down := a.Degraded(); down {
		t.Fatalf("degraded with Redis up: %s", reason)
	}
	if a.Name() != "redis" {
		t.Fatalf("Name %q", a.Name())
	}
	rs.Stop()
	wstest.Eventually(t, 5*time.Second, func() string {
		if reason, down := a.Degraded(); !down || !strings.Contains(reason, "redis") {
			return "not degraded: " + reason
		}
		return ""
	})
	start := time.Now()
	_, err := a.Send(context.Background(), "x", nil)
	var ue *UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("Send with Redis down: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Send with Redis down took %s", d)
	}
	t.Logf("degraded: %s", ue.Reason)
	rs.Restart()
	wstest.Eventually(t, 10*time.Second, func() string {
		nodes, err := a.Nodes(context.Background())
		if err != nil || ids(nodes) != "a*,b" {
			return "after restart: " + ids(nodes) + " " + errString(err)
		}
		if reason, down := a.Degraded(); down {
			return "still degraded: " + reason
		}
		return ""
	})
	// Commands work again (go-redis resubscribed).
	b.Handle(func(ctx context.Context, c Command) Reply { return Reply{Status: "ok"} })
	wstest.Eventually(t, 10*time.Second, func() string {
		replies, err := a.Send(context.Background(), "x", nil)
		if err != nil || len(replies) != 1 || replies[0].Status != "ok" {
			return "send after restart: " + string(mustJSON(replies)) + " " + errString(err)
		}
		return ""
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Close stops every goroutine the node started, go-redis's included.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	rs := redistest.Start(t)
	base := runtime.NumGoroutine()
	rdb, err := backplane.NewClient(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Options{Client: rdb, ID: "a", Interval: testInterval, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	n.Handle(func(ctx context.Context, c Command) Reply { return Reply{Status: "ok"} })
	n.Start()
	n.ShareBan("ip:10.0.0.1", time.Second, 0)
	wstest.Eventually(t, 5*time.Second, func() string {
		nodes, _ := n.Nodes(context.Background())
		return map[bool]string{true: "", false: "not registered"}[len(nodes) == 1]
	})
	_ = n.Close()
	_ = rdb.Close()
	wstest.Eventually(t, 3*time.Second, func() string {
		if g := runtime.NumGoroutine(); g > base {
			buf := make([]byte, 1<<20)
			return string(buf[:runtime.Stack(buf, true)])
		}
		return ""
	})
}

func TestNewChecksOptions(t *testing.T) {
	rs := redistest.Start(t)
	rdb, _ := backplane.NewClient(rs.URL())
	defer rdb.Close()
	for _, o := range []Options{{ID: "a"}, {Client: rdb}, {Client: rdb, ID: "a b"}, {Client: rdb, ID: "a", Interval: time.Millisecond}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

// A node started while Redis is down serves on and registers, subscribed,
// once Redis starts.
func TestStartWithRedisDown(t *testing.T) {
	rs := redistest.Start(t)
	rs.Stop()
	a, b := newNode(t, rs, "a"), newNode(t, rs, "b")
	b.Handle(func(ctx context.Context, c Command) Reply { return Reply{Status: "ok"} })
	a.Start()
	b.Start()
	wstest.Eventually(t, 5*time.Second, func() string {
		if _, down := a.Degraded(); !down {
			return "not degraded with Redis down"
		}
		return ""
	})
	rs.Restart()
	wstest.Eventually(t, 10*time.Second, func() string {
		replies, err := a.Send(context.Background(), "x", nil)
		if err != nil || len(replies) != 1 || replies[0].Status != "ok" {
			return "send once Redis runs: " + string(mustJSON(replies)) + " " + errString(err)
		}
		return ""
	})
}

// syncBuffer is a log sink safe for the node's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A second process with a node's id says so in its log when it registers.
func TestDuplicateNodeIDIsLogged(t *testing.T) {
	rs := redistest.Start(t)
	a := newNode(t, rs, "a")
	a.Start()
	wstest.Eventually(t, 5*time.Second, func() string {
		nodes, _ := a.Nodes(context.Background())
		return map[bool]string{true: "", false: "a not registered"}[len(nodes) == 1]
	})
	rdb, _ := backplane.NewClient(rs.URL())
	defer rdb.Close()
	logs := &syncBuffer{}
	twin, err := New(Options{Client: rdb, ID: "a", Address: "elsewhere", Interval: testInterval, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	twin.Start()
	defer twin.Close()
	wstest.Eventually(t, 5*time.Second, func() string {
		if !strings.Contains(logs.String(), "another node is registered with this node id") {
			return "no warning: " + logs.String()
		}
		return ""
	})
	// A node that registers again after an outage is not its own twin.
	if n := strings.Count(logs.String(), "another node"); n != 1 {
		t.Fatalf("%d warnings", n)
	}
}
