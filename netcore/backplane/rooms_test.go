package backplane

import (
	"bytes"
	"fmt"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore/backplane/redistest"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// inbox records what a node's Deliver was given.
type inbox struct {
	mu  sync.Mutex
	got []string // room + "|" + payload
}

func (in *inbox) deliver(room string, payload []byte) int {
	in.mu.Lock()
	in.got = append(in.got, room+"|"+string(payload))
	in.mu.Unlock()
	return 1
}

func (in *inbox) list() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.got...)
}

// startRooms starts a node's broker on srv's Redis.
func startRooms(t *testing.T, srv *redistest.Server, o Options) (*Rooms, *inbox) {
	t.Helper()
	rdb, err := NewClient(srv.URL() + "?dial_timeout=200ms")
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRooms(rdb, o)
	if err != nil {
		t.Fatal(err)
	}
	in := &inbox{}
	r.Start(in.deliver)
	t.Cleanup(func() { _ = r.Close(); _ = rdb.Close() })
	wstest.WaitFor(t, "the backplane to be up", func() bool { return r.Stats().Up })
	return r, in
}

// numsub is PUBSUB NUMSUB's count for one channel.
func numsub(t *testing.T, srv *redistest.Server, channel string) int {
	t.Helper()
	c, err := NewClient(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, err := c.PubSubNumSub(t.Context(), channel).Result()
	if err != nil {
		t.Fatal(err)
	}
	return int(m[channel])
}

func TestRoomsCrossNode(t *testing.T) {
	srv := redistest.Start(t)
	a, inA := startRooms(t, srv, Options{})
	b, inB := startRooms(t, srv, Options{})
	a.Subscribe("x")
	b.Subscribe("x")
	wstest.WaitFor(t, "both nodes subscribed to x", func() bool { return numsub(t, srv, RoomPrefix+"x") == 2 })
	for i := range 100 {
		a.Publish([]byte("x"), []byte(strconv.Itoa(i)))
	}
	a.Publish(nil, []byte("all"))
	wstest.WaitFor(t, "b to receive 101 messages", func() bool { return len(inB.list()) == 101 })
	got := inB.list()
	for i := range 100 {
		if want := "x|" + strconv.Itoa(i); got[i] != want {
			t.Fatalf("message %d on b: %q, want %q (order per publisher)", i, got[i], want)
		}
	}
	if got[100] != "|all" {
		t.Fatalf("broadcast on b: %q, want %q", got[100], "|all")
	}
	wstest.WaitFor(t, "a to see its own 101 messages come back", func() bool { return a.Stats().Own == 101 })
	if n := len(inA.list()); n != 0 {
		t.Fatalf("the origin delivered %d of its own messages again", n)
	}
	// Sent is counted when the pipeline's replies are read, which can be
	// after Redis has already sent the messages back to a.
	wstest.WaitFor(t, "a to count 101 sent", func() bool { return a.Stats().Sent == 101 })
	if s := a.Stats(); s.Sent != 101 || s.Dropped != 0 || s.Overflow != 0 {
		t.Fatalf("a's stats %+v, want 101 sent", s)
	}
}

// Subscription follows the last wish whatever the churn.
func TestRoomsSubscriptionFollowsMembership(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := startRooms(t, srv, Options{})
	for i := range 200 {
		room := "r" + strconv.Itoa(i%10)
		a.Subscribe(room)
		a.Unsubscribe(room)
		if i%3 == 0 {
			a.Subscribe(room)
		}
	}
	// Rooms subscribed last: r0, r3, r6, r9 got a final Subscribe when
	// i%10 == k and i%3 == 0 for the last i with that k.
	want := map[string]bool{}
	for i := range 200 {
		room := "r" + strconv.Itoa(i%10)
		want[room] = i%3 == 0
	}
	wstest.WaitFor(t, "the subscriptions to follow the last wish", func() bool {
		for room, on := range want {
			n := numsub(t, srv, RoomPrefix+room)
			if (n == 1) != on || n > 1 {
				return false
			}
		}
		return true
	})
}

// Redis restarts: the node is down, then up again with its rooms, including
// one joined while Redis was away; a publish while down is counted.
func TestRoomsRecoverAfterRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	m, err := metrics.New(metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := startRooms(t, srv, Options{Metrics: m})
	b, inB := startRooms(t, srv, Options{})
	b.Subscribe("before")
	wstest.WaitFor(t, "b subscribed", func() bool { return numsub(t, srv, RoomPrefix+"before") == 1 })

	srv.Stop()
	wstest.WaitFor(t, "b to report the backplane degraded", func() bool { _, d := b.Degraded(); return d })
	b.Subscribe("during")
	wstest.WaitFor(t, "a to count the publishes it could not send", func() bool {
		a.Publish([]byte("before"), []byte("lost"))
		return a.Stats().Dropped > 0
	})
	var buf bytes.Buffer
	m.WritePrometheus(&buf)
	if !bytes.Contains(buf.Bytes(), []byte(`sockmon_backplane_messages_total{direction="out",result="dropped"}`)) {
		t.Fatalf("no dropped series in:\n%s", buf.String())
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = &buf
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Fatalf("promtool check metrics: %v\n%s", err, out)
		}
	}

	srv.Restart()
	wstest.WaitFor(t, "both rooms subscribed again", func() bool {
		return numsub(t, srv, RoomPrefix+"before") == 1 && numsub(t, srv, RoomPrefix+"during") == 1
	})
	wstest.WaitFor(t, "a's breaker to close and a message to cross", func() bool {
		a.Publish([]byte("during"), []byte("back"))
		for _, g := range inB.list() {
			if g == "during|back" {
				return true
			}
		}
		return false
	})
	if reason, d := b.Degraded(); d {
		t.Fatalf("b still degraded after recovery: %s", reason)
	}
}

func TestRoomsQueueOverflowDropsNewest(t *testing.T) {
	srv := redistest.Start(t)
	rdb, err := NewClient(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	r, err := NewRooms(rdb, Options{QueueSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Not started: nothing drains the queue.
	for i := range 5 {
		r.Publish([]byte("x"), []byte(fmt.Sprint(i)))
	}
	if s := r.Stats(); s.Overflow != 2 {
		t.Fatalf("overflow %d, want 2", s.Overflow)
	}
	first := <-r.queue
	if got := string(first.b[first.split+IDLen:]); got != "0" {
		t.Fatalf("oldest message kept is %q, want %q (the newest are dropped)", got, "0")
	}
}

func TestRoomsCloseLeavesNoGoroutines(t *testing.T) {
	srv := redistest.Start(t)
	rdb, err := NewClient(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRooms(rdb, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.Start(func(string, []byte) int { return 0 })
	r.Subscribe("x")
	r.Publish([]byte("x"), []byte("1"))
	wstest.WaitFor(t, "up", func() bool { return r.Stats().Up })
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	_ = rdb.Close()
	wstest.WaitFor(t, "the backplane's goroutines to exit", func() bool {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		return !bytes.Contains(buf[:n], []byte("backplane.(*Rooms)"))
	})
}
