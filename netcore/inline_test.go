package netcore

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// whereHandler answers every message with where it was handled: "poller"
// when netpoll's poller served it (inline.go), "worker" otherwise.
type whereHandler struct{}

func (whereHandler) Open(c *Conn, _ *Request) Session { return whereSession{c} }

type whereSession struct{ c *Conn }

func (s whereSession) HandleMessage(_ MessageType, data []byte) error {
	switch string(data) {
	case "slow":
		time.Sleep(2 * heavyMessage)
	case "stall":
		time.Sleep(stallFor)
	}
	// runtime.Callers, not runtime.Stack: a slow handler would send the
	// next input to a worker (heavyMessage).
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	where := "worker"
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, "(*defaultPoll).runInline") {
			where = "poller"
		}
		if !more {
			break
		}
	}
	return s.c.Reply(TextMessage, []byte(where))
}

func (whereSession) Closed(DisconnectEvent) {}

// stallFor is how long a "stall" message holds whatever serves it: on a
// poller, as a poller the kernel has preempted would.
const stallFor = time.Second

func whereServer(t *testing.T, cfg Config) string {
	t.Helper()
	cfg.Logger = discardLogger()
	cfg.DrainDelay = -1
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Handle(Route{Path: "/where", Handler: whereHandler{}, Admitter: AdmitAll()}); err != nil {
		t.Fatal(err)
	}
	return serveTest(t, srv)
}

// untilOnPoller sends c messages until the poller serves one.
func untilOnPoller(t *testing.T, c *wstest.Client) {
	t.Helper()
	for range 20 {
		c.Send(true, ws.OpText, []byte("x"))
		if string(c.NextData().Payload) == "poller" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the poller never served the connection")
}

// Input that is whole frames is served on the poller that read it; a frame
// whose end has not arrived yet goes to a worker, which waits for it; with
// DisablePollerServe everything goes to a worker.
func TestInputServedOnThePoller(t *testing.T) {
	addr := whereServer(t, Config{})
	c := wstest.Dial(t, addr, "/where")
	// A worker served the handshake; input that arrives while it still
	// holds the connection is its to serve too. After that, the poller
	// (unless a message happened to take over heavyMessage: the race
	// detector's runs are slow, so the test waits for the poller rather
	// than expects it).
	untilOnPoller(t, c)
	// Several whole frames in one write: served at once.
	var batch []byte
	for range 5 {
		batch = append(batch, wstest.ClientFrame(true, 0, ws.OpBinary, []byte("y"), true)...)
	}
	c.Write(batch)
	for range 5 {
		c.NextData()
	}
	untilOnPoller(t, c)
	// A frame in two writes: the first part is not a whole frame, so a
	// worker takes the input and waits for the rest.
	f := wstest.ClientFrame(true, 0, ws.OpText, bytes.Repeat([]byte("z"), 200), true)
	c.Write(f[:50])
	time.Sleep(200 * time.Millisecond) // for the poller to read the first part alone
	c.Write(f[50:])
	c.ExpectEcho(ws.OpText, []byte("worker"))
	// Over inlineMaxBytes at once: a worker.
	c.Send(true, ws.OpBinary, bytes.Repeat([]byte("w"), inlineMaxBytes+1))
	c.ExpectEcho(ws.OpText, []byte("worker"))
	// And back on the poller once the worker lets the connection go.
	untilOnPoller(t, c)
	// A message that takes long to serve sends the next input to a worker;
	// one that does not brings it back.
	c.Send(true, ws.OpText, []byte("slow"))
	c.NextData()
	c.Send(true, ws.OpText, []byte("x"))
	c.ExpectEcho(ws.OpText, []byte("worker"))
	untilOnPoller(t, c)

	off := wstest.Dial(t, whereServer(t, Config{DisablePollerServe: true}), "/where")
	off.Send(true, ws.OpText, []byte("x"))
	off.ExpectEcho(ws.OpText, []byte("worker"))
}

// A protocol error served on the poller closes the connection as on a
// worker, and the poller goes on serving the others.
func TestPollerServesProtocolErrors(t *testing.T) {
	addr := whereServer(t, Config{})
	bad := wstest.Dial(t, addr, "/where")
	good := wstest.Dial(t, addr, "/where")
	bad.Write(wstest.ClientFrame(true, 0, ws.OpText, []byte("unmasked"), false))
	bad.ExpectClose(CloseProtocolError)
	untilOnPoller(t, good)
}

// completeFrames says true exactly at frame boundaries, for frames of
// every header size, so the poller never serves input that readFrame would
// wait on.
func TestCompleteFrames(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var stream []byte
	bounds := map[int]bool{0: true}
	for _, n := range []int{0, 1, 125, 126, 127, 300, 65535, 65536, 70000, 3} {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(rng.IntN(256))
		}
		stream = append(stream, wstest.ClientFrame(true, 0, ws.OpBinary, payload, true)...)
		bounds[len(stream)] = true
	}
	for k := 0; k <= len(stream); k++ {
		if got := completeFrames(stream[:k]); got != bounds[k] {
			t.Fatalf("completeFrames(first %d bytes) = %v, want %v", k, got, bounds[k])
		}
	}
	// A header readFrame refuses at once (a non-minimal length) is
	// complete: serving it cannot wait.
	nonMinimal := []byte{0x82, 0x80 | 126, 0, 5, 1, 2, 3, 4}
	if !completeFrames(nonMinimal) {
		t.Fatal("a header that does not parse counted as incomplete")
	}
}

// noRescueEnv marks the test process whose pollers do not rescue one another.
const noRescueEnv = "SOCKMON_TEST_NO_POLLER_RESCUE"

// inNoRescueProcess runs the calling test again in a process of its own,
// whose servers set DisablePollerRescue (netpoll's pollers are the
// process's), and reports whether this is that process.
func inNoRescueProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv(noRescueEnv) == "1" {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), noRescueEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("%s with DisablePollerRescue, in a process of its own: %v\n%s", t.Name(), err, out)
	}
	return false
}

// A poller that stalls in the middle of a batch (here serving a message
// that sleeps; in production, a poller thread the kernel preempted) holds
// up only what it is serving: the other pollers rescue its epoll set
// (netpoll patch 8), woken by the group's watchdog when they are idle. The
// test fails with DisablePollerRescue: the connections registered with the
// stalled poller wait for it.
func TestStalledPollerHoldsUpNoOtherConnection(t *testing.T) {
	if Cores() < 2 {
		t.Skip("one poller: nothing else could serve the others")
	}
	addr := whereServer(t, Config{})
	stalled := wstest.Dial(t, addr, "/where")
	others := make([]*wstest.Client, 16) // registered with every poller
	for i := range others {
		others[i] = wstest.Dial(t, addr, "/where")
	}
	// A stall served by a worker proves nothing: it is one when the message
	// before took over heavyMessage (the race detector's runs are slow).
	for try := 0; ; try++ {
		if try == 5 {
			t.Fatal("no stall of 5 was served on a poller")
		}
		untilOnPoller(t, stalled)
		stalled.Send(true, ws.OpText, []byte("stall"))
		time.Sleep(50 * time.Millisecond) // for a poller to take it
		start := time.Now()
		for i, c := range others {
			c.Send(true, ws.OpText, []byte("x"))
			if _, err := c.TryNext(stallFor / 2); err != nil {
				t.Fatalf("connection %d of %d: no reply while a poller stalled: %v", i+1, len(others), err)
			}
		}
		if d := time.Since(start); d >= stallFor/2 {
			t.Fatalf("%d echoes took %v while a poller stalled for %v", len(others), d, stallFor)
		}
		if string(stalled.NextData().Payload) == "poller" {
			return
		}
	}
}

// While a connection's input is served on the poller that read it, no
// other poller reads its socket, not even one rescuing that poller's set
// (netpoll patch 8, opHeld): the processing finds exactly the whole frames
// Config.Inline looked at. Here the start of a second frame arrives while
// the first is served and the rest only after; had another poller read the
// start into the connection's buffer, the processing would have found half
// a frame, which it may not wait for on a poller, and closed the
// connection.
func TestNoPollerReadsAConnectionServedOnAnother(t *testing.T) {
	addr := whereServer(t, Config{})
	c := wstest.Dial(t, addr, "/where")
	onPoller := 0
	for try := 0; onPoller < 3; try++ {
		if try == 10 {
			t.Fatalf("%d of %d stalls served on a poller", onPoller, try)
		}
		untilOnPoller(t, c)
		c.Send(true, ws.OpText, []byte("stall"))
		time.Sleep(100 * time.Millisecond) // the stall is being served
		f := wstest.ClientFrame(true, 0, ws.OpText, []byte("after the stall"), true)
		c.Write(f[:4]) // for a rescuing poller to read while the stall lasts
		// A worker, when the message before took over heavyMessage (the
		// race detector's runs are slow): try again.
		if string(c.NextData().Payload) == "poller" {
			onPoller++
		}
		time.Sleep(100 * time.Millisecond) // the stall's processing goes on
		c.Write(f[4:])
		c.ExpectEcho(ws.OpText, []byte("worker")) // half a frame: a worker waited for the rest
	}
}

// With DisablePollerRescue, in a process of its own, each poller serves
// its own connections: whole frames on the poller, for every connection,
// and a server that asks for rescue after the first is refused, naming
// the setting (the pollers are the process's).
func TestWithoutPollerRescue(t *testing.T) {
	if !inNoRescueProcess(t) {
		return
	}
	addr := whereServer(t, Config{DisablePollerRescue: true})
	for range 16 { // registered with every poller
		untilOnPoller(t, wstest.Dial(t, addr, "/where"))
	}
	_, err := New(Config{Logger: discardLogger()})
	if err == nil || !strings.Contains(err.Error(), "DisablePollerRescue") {
		t.Fatalf("New with the pollers' rescue after a server without it: %v, want an error naming DisablePollerRescue", err)
	}
}
