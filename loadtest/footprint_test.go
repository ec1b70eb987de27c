package loadtest_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/loadtest"
)

// holdServerEnv makes the test binary a WebSocket server that upgrades every
// connection and holds it (TestHelperHoldServer): the server of the
// footprint test runs in a process of its own, so its memory is not the
// generator's.
const holdServerEnv = "SOCKMON_LOADTEST_HOLD_SERVER"

// TestHelperHoldServer is not a test: run with holdServerEnv=1 it listens on
// 127.0.0.1, prints its address, and holds every upgraded connection until
// the peer closes it or stdin is closed.
func TestHelperHoldServer(t *testing.T) {
	if os.Getenv(holdServerEnv) != "1" {
		t.Skip("the footprint test's server process")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		go func() {
			defer c.Close()
			if _, err := ws.Upgrade(c); err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, c)
		}()
	}
}

// startHoldServer starts the hold server process and returns its ws:// URL.
func startHoldServer(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldServer$")
	cmd.Env = append(os.Environ(), holdServerEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("hold server: %v", err)
	}
	addr := strings.TrimSpace(line)
	if _, _, err := net.SplitHostPort(addr); err != nil {
		t.Fatalf("hold server said %q", line)
	}
	return "ws://" + addr + "/"
}

// holdWatcher is the progress writer of a connect-only run: held is closed
// once a progress line shows the measured phase with every connection
// established.
type holdWatcher struct {
	conns int
	once  sync.Once
	held  chan struct{}
}

var progressLine = regexp.MustCompile(`\[\s*[0-9.]+s (\w+)\s*\] conns (\d+)/(\d+)`)

func (h *holdWatcher) Write(p []byte) (int, error) {
	for _, m := range progressLine.FindAllStringSubmatch(string(p), -1) {
		if n, _ := strconv.Atoi(m[2]); m[1] == "run" && n == h.conns {
			h.once.Do(func() { close(h.held) })
		}
	}
	return len(p), nil
}

// heldHeap holds conns connect-only connections to url and returns the live
// heap (HeapAlloc after a collection) and the goroutine count while they are
// all held.
func heldHeap(t *testing.T, url string, conns int) (heap uint64, goroutines int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &holdWatcher{conns: conns, held: make(chan struct{})}
	type result struct {
		rep *loadtest.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := loadtest.Run(ctx, loadtest.Config{URL: url, Conns: conns, Mode: loadtest.ModeConnectOnly,
			Duration: time.Minute, Progress: w, ProgressInterval: 20 * time.Millisecond})
		done <- result{rep, err}
	}()
	select {
	case <-w.held:
	case r := <-done:
		t.Fatalf("%d connections: the run ended before holding them all: %v, %+v", conns, r.err, r.rep.Connections)
	}
	liveHeapGC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	goroutines = runtime.NumGoroutine()
	cancel()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.rep.Connections.Established != int64(conns) || r.rep.Connections.HeldAtEnd != conns {
		t.Fatalf("%d connections: %+v, errors %v", conns, r.rep.Connections, r.rep.Errors.ByClass)
	}
	return ms.HeapAlloc, goroutines
}

// liveHeapGC collects twice: the second collection also frees what the
// first left in sync.Pools' victim caches (the handshakes' buffers).
func liveHeapGC() {
	runtime.GC()
	runtime.GC()
}

// TestConnectOnlyFootprint holds the line on the generator's memory
// (issue 18, part 5): a connect-only connection held idle costs at most
// heldConnBytes of live heap and no goroutine, and what a run holds whatever
// its size (histograms, event loops) stays under runFixedBytes. The figures
// are the difference between holds of few and many connections against a
// real WebSocket server in another process, measured after a collection,
// not a timing.
func TestConnectOnlyFootprint(t *testing.T) {
	const (
		few, many     = 200, 4200
		heldConnBytes = 192     // a session and a pollWire of a cache line each, their slots: about 155 bytes today, 230-300 before issue 18
		runFixedBytes = 3 << 20 // 1.5 MiB today (the connect-time histogram, two loops), about 7 before
	)
	url := startHoldServer(t)
	// A first hold grows what a process keeps once it has had that many
	// connections (runtime threads started while dialling): measured from
	// a process that has already held many, it is in every figure alike.
	heldHeap(t, url, many)
	liveHeapGC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	heapFew, gFew := heldHeap(t, url, few)
	heapMany, gMany := heldHeap(t, url, many)
	perConn := (float64(heapMany) - float64(heapFew)) / (many - few)
	fixed := float64(heapFew) - float64(base) - perConn*few
	t.Logf("live heap: %d before, %d holding %d, %d holding %d: %.0f bytes per held connection, %.0f KiB per run; goroutines %d and %d",
		base, heapFew, few, heapMany, many, perConn, fixed/1024, gFew, gMany)
	if perConn > heldConnBytes {
		t.Errorf("a held connect-only connection costs %.0f bytes of live heap, want at most %d", perConn, heldConnBytes)
	}
	if fixed > runFixedBytes {
		t.Errorf("a connect-only run holds %.0f KiB of live heap besides its connections, want at most %d", fixed/1024, runFixedBytes>>10)
	}
	if gMany > gFew+2 {
		t.Errorf("%d goroutines holding %d connections, %d holding %d: a held connection must not have one", gMany, many, gFew, few)
	}
}
