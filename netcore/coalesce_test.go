package netcore

import (
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore/wsproto"
	"github.com/sockmon/sockmon/netcore/wstest"
	"golang.org/x/sys/unix"
)

// Write coalescing, counted in TCP segments: the server's sockets have
// TCP_NODELAY, so on loopback every sendmsg of a few hundred bytes is one
// segment, and the kernel's count of segments sent by the server's socket
// (TCP_INFO tcpi_segs_out) counts sockmon's writes. Pings are off and the
// client sends nothing once upgraded, so the socket sends nothing else (not
// even an ACK).

// coalesceRig is one upgraded client and its connection on the server.
type coalesceRig struct {
	c      *wstest.Client
	conn   *Conn
	fd     int
	frames [][]byte // sent so far, in order
}

func newCoalesceRig(t *testing.T, cfg Config) *coalesceRig {
	t.Helper()
	cfg.PingInterval = -1
	srv, addr := testServer(t, cfg)
	c := wstest.Dial(t, addr, "/echo")
	var conns []*Conn
	wstest.WaitFor(t, "the connection open", func() bool {
		conns = srv.AppendOpenConns(conns[:0], nil)
		return len(conns) == 1
	})
	// The upgrade sends the 101 under the writer token and gives it back
	// just after: until then a frame would queue behind it, not leave.
	wstest.WaitFor(t, "the upgrade to give the writer token back", func() bool {
		conns[0].wmu.Lock()
		defer conns[0].wmu.Unlock()
		return !conns[0].writing
	})
	return &coalesceRig{c: c, conn: conns[0], fd: conns[0].nc.(interface{ Fd() int }).Fd()}
}

// segsOut is how many TCP segments the server's socket has sent.
func (r *coalesceRig) segsOut(t *testing.T) uint32 {
	t.Helper()
	info, err := unix.GetsockoptTCPInfo(r.fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		t.Fatalf("TCP_INFO: %v", err)
	}
	return info.Segs_out
}

// frame is the next numbered text frame.
func (r *coalesceRig) frame() []byte {
	f := wsproto.AppendFrame(nil, true, false, ws.OpText, []byte("message "+strconv.Itoa(len(r.frames))))
	r.frames = append(r.frames, f)
	return f
}

// expectAll reads every frame sent, in the order sent.
func (r *coalesceRig) expectAll(t *testing.T) {
	t.Helper()
	for i := range r.frames {
		f := r.c.Next()
		if want := "message " + strconv.Itoa(i); string(f.Payload) != want || f.Header.OpCode != ws.OpText {
			t.Fatalf("frame %d: %v %q, want text %q", i, f.Header.OpCode, f.Payload, want)
		}
	}
}

// A fan-out's pass holds the connection's writer token from its write to
// its flush; two more fan-outs in that window queue their frames behind it,
// and the pass's flush sends all three in one write. Without coalescing the
// same three frames take two writes (the pass's frame, then the queue).
func TestQueuedFramesLeaveInOneWrite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		off    bool
		writes uint32
	}{{"coalescing on", false, 1}, {"coalescing off", true, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newCoalesceRig(t, Config{DisableWriteCoalescing: tc.off})
			before := r.segsOut(t)
			pass := getPass()
			if err := r.conn.enqueue(nil, r.frame(), ws.OpText, true, pass); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if n := FanOut([]*Conn{r.conn}, TextMessage, r.frame()[2:]); n != 1 {
					t.Fatalf("FanOut wrote to %d connections, want 1", n)
				}
			}
			if n := r.segsOut(t) - before; n != 0 {
				t.Fatalf("%d writes while the pass holds the token, want 0: the fan-outs should queue behind it", n)
			}
			pass.flush()
			if n := r.segsOut(t) - before; n != tc.writes {
				t.Fatalf("three queued frames took %d writes, want %d", n, tc.writes)
			}
			r.expectAll(t)
		})
	}
}

// A lone message is written before FanOut (or WriteMessage) returns: no
// timer, no waiting for company, so it reaches the peer without any
// further event on the server.
func TestLoneMessageLeavesAtOnce(t *testing.T) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("coalescing off %v", off), func(t *testing.T) {
			r := newCoalesceRig(t, Config{DisableWriteCoalescing: off})
			for i := range 3 {
				before := r.segsOut(t)
				if i%2 == 0 {
					FanOut([]*Conn{r.conn}, TextMessage, r.frame()[2:])
				} else if err := r.conn.WriteMessage(TextMessage, r.frame()[2:]); err != nil {
					t.Fatal(err)
				}
				if n := r.segsOut(t) - before; n != 1 {
					t.Fatalf("message %d: %d writes by the time the call returned, want 1", i, n)
				}
			}
			r.expectAll(t)
		})
	}
}

// Fan-outs from several goroutines at once, to the same connections: every
// member gets every message, and each sender's messages in the order it
// sent them, with coalescing on and off.
func TestConcurrentFanOutsKeepEachSendersOrder(t *testing.T) {
	const senders, perSender, members = 4, 300, 8
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("coalescing off %v", off), func(t *testing.T) {
			srv, addr := testServer(t, Config{PingInterval: -1, DisableWriteCoalescing: off})
			var clients []*wstest.Client
			for range members {
				clients = append(clients, wstest.Dial(t, addr, "/echo"))
			}
			var conns []*Conn
			wstest.WaitFor(t, "every member open", func() bool {
				conns = srv.AppendOpenConns(conns[:0], nil)
				return len(conns) == members
			})
			var wg sync.WaitGroup
			for s := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var payload []byte
					for i := range perSender {
						payload = fmt.Appendf(payload[:0], "%d %d", s, i)
						if n := FanOut(conns, TextMessage, payload); n != members {
							t.Errorf("sender %d message %d reached %d members, want %d", s, i, n, members)
							return
						}
					}
				}()
			}
			wg.Wait()
			for m, c := range clients {
				next := make([]int, senders)
				for range senders * perSender {
					f := c.Next()
					var s, i int
					if _, err := fmt.Sscanf(string(f.Payload), "%d %d", &s, &i); err != nil || s < 0 || s >= senders {
						t.Fatalf("member %d: frame %q", m, f.Payload)
					}
					if i != next[s] {
						t.Fatalf("member %d: sender %d's message %d arrived when %d was due", m, s, i, next[s])
					}
					next[s]++
				}
			}
		})
	}
}
