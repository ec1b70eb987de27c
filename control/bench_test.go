package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sockmon/sockmon/loadtest"
	"github.com/sockmon/sockmon/netcore"
)

// Benchmarks of the control side under WebSocket load. The node (netcore +
// control) and the load generator each run in a child process (this test
// binary re-executed, see TestMain); the HTTP probes run in this process. Run them without -race:
//
//	go test -run '^$' -bench 'HealthUnderLoad' -benchtime 2000x -count 3 ./control/
//	BENCH_NODE_CPU=0 BENCH_LOAD_CPU=1 go test ...   (pin node and generator to one core each)
//	go test -run '^$' -bench 'EchoWithControlPolling' -benchtime 6x ./control/

// benchConns is the number of closed-loop echo connections that saturate
// the WebSocket port (each sends its next message as soon as its reply
// arrives).
const benchConns = 200

// startLoad runs a closed-loop binary echo load of benchConns connections
// against the node in a process of its own (so the prober's latency is not
// the load generator's scheduling), for d; the report (throughput and echo
// latency) arrives on the channel. Cancelling ctx stops it early.
func startLoad(b *testing.B, ctx context.Context, ws string, d time.Duration) <-chan *loadtest.Report {
	b.Helper()
	args := []string{os.Args[0], "-test.run=^$"}
	if cpu := os.Getenv("BENCH_LOAD_CPU"); cpu != "" {
		args = append([]string{"taskset", "-c", cpu}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), loadEnv+"="+ws, "SOCKMON_CONTROL_TEST_LOAD_DURATION="+d.String())
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	reports := make(chan *loadtest.Report, 1)
	go func() {
		_ = cmd.Wait()
		var rep loadtest.Report
		if json.Unmarshal(out.Bytes(), &rep) != nil {
			reports <- nil
			return
		}
		reports <- &rep
	}()
	return reports
}

// runLoadChild is the load generator process: it runs until its duration
// passes or it gets SIGINT, then prints the report as JSON.
func runLoadChild(ws string) int {
	d, err := time.ParseDuration(os.Getenv("SOCKMON_CONTROL_TEST_LOAD_DURATION"))
	if err != nil {
		d = time.Hour
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := loadtest.Run(ctx, loadtest.Config{URL: "ws://" + ws + "/ws", Conns: benchConns, Duration: d, Size: 64, Mode: loadtest.ModeEchoBinary,
		// Fewer handshakes at once than the node admits from one address
		// (netcore.DefaultMaxPendingPerIP): on a busy machine more are
		// refused at accept and the run never gets its connections.
		DialConcurrency: netcore.DefaultMaxPendingPerIP / 2})
	if rep == nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_ = rep.WriteJSON(os.Stdout)
	return 0
}

// waitConns polls the public health body until the node holds n
// connections.
func waitConns(b *testing.B, client *http.Client, base string, n int64) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := client.Get(base + PathHealth)
		if err != nil {
			last = err.Error()
		} else {
			var h Health
			_ = decodeJSON(resp.Body, &h)
			resp.Body.Close()
			if h.Details.Connections.Total >= n {
				return
			}
			last = fmt.Sprintf("%d connections", h.Details.Connections.Total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("the node never held %d connections (last: %s)", n, last)
}

// The health endpoint's latency while the WebSocket port is saturated,
// against a baseline in the same run: a reference server (a process of its
// own, idle, net/http answering a constant health body) probed the same way
// and alternately, which is the floor the machine sets for the probe (its
// connection set-up and its own scheduling while node and load keep the
// cores busy). Reports p50, p99 and max of whole checks as the prober sees
// them, the reference's p50 and p99, and the p99 of the check's own time
// (responseTime). Two probes:
//
//   - probe=lb is a load balancer's check: a new connection per check and
//     "Connection: close", as HAProxy's option httpchk and Kubernetes' probes
//     do, one every lbProbeInterval (HAProxy's default is 2 s; faster here
//     to collect samples).
//   - probe=keepalive sends the next check on the same connection as soon as
//     the last answer arrives.
//
// With every P busy, Go's runtime finds the control port's ready sockets
// only when sysmon polls, every 10 ms. The engine's pollers serve the
// WebSocket port on their own Ps and netcore adds one P (netcore.Cores), so
// a P is free to poll the control port at once: p50 0.7-1.0 ms, p99 1.25-1.31
// of the reference's (2026-11-30). Without the spare P, p50 was 8.6-9.0 ms.
// Also measured and dropped (2026-11): blocking system calls (the waiting
// thread keeps its P until sysmon takes it back: echo at 0.88 of unpolled,
// and probe=lb p99 15-21 ms), SIGIO to wake a private epoll loop
// (probe=keepalive p99 6.3 ms: the signal goroutine queues like any other),
// polling a private epoll set every millisecond (probe=lb p99 7.4-8.1 ms, its
// timer fires late on busy Ps), and the control port's sockets on the
// engine's netpoll pollers (p50 3.0-3.4 ms: each hop waits for a busy
// poller's thread).
func BenchmarkHealthUnderLoad(b *testing.B) {
	b.Run("probe=lb", func(b *testing.B) {
		benchmarkHealthUnderLoad(b, func() *http.Client {
			return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		}, lbProbeInterval)
	})
	b.Run("probe=keepalive", func(b *testing.B) {
		benchmarkHealthUnderLoad(b, func() *http.Client { return &http.Client{Timeout: 5 * time.Second} }, 0)
	})
}

// lbProbeInterval paces probe=lb.
const lbProbeInterval = 10 * time.Millisecond

func benchmarkHealthUnderLoad(b *testing.B, newClient func() *http.Client, interval time.Duration) {
	_, addrs := startChild(b, b.TempDir(), nodeWrap()...)
	_, ref := startProcess(b, referenceEnv+"=1")
	node, floor := "http://"+addrs.Control+PathHealth, "http://"+ref.Control+PathHealth
	client, refClient := newClient(), newClient()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // a failed run must not leave the load generator running
	reports := startLoad(b, ctx, addrs.WS, time.Hour)
	waitConns(b, client, "http://"+addrs.Control, benchConns)
	time.Sleep(time.Second) // into the steady state

	probe := func(c *http.Client, url string) (time.Duration, float64) {
		time.Sleep(interval)
		start := time.Now()
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		var h Health
		err = decodeJSON(resp.Body, &h)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("%s answered %d under load (%v)", url, resp.StatusCode, err)
		}
		return time.Since(start), h.ResponseTime
	}
	lat := make([]time.Duration, 0, b.N)
	refLat := make([]time.Duration, 0, b.N)
	checks := make([]float64, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		var d, rd time.Duration
		var check float64
		if i%2 == 0 {
			d, check = probe(client, node)
			rd, _ = probe(refClient, floor)
		} else {
			rd, _ = probe(refClient, floor)
			d, check = probe(client, node)
		}
		lat, refLat, checks = append(lat, d), append(refLat, rd), append(checks, check)
	}
	b.StopTimer()
	cancel()
	rep := <-reports
	q := func(v []time.Duration, p float64) float64 {
		slices.Sort(v)
		return float64(v[int(p*float64(len(v)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(lat, 0.5), "p50-ms")
	b.ReportMetric(q(lat, 0.99), "p99-ms")
	b.ReportMetric(q(lat, 1), "max-ms")
	b.ReportMetric(q(refLat, 0.5), "ref-p50-ms")
	b.ReportMetric(q(refLat, 0.99), "ref-p99-ms")
	slices.Sort(checks)
	b.ReportMetric(checks[int(0.99*float64(len(checks)-1))], "check-p99-ms")
	if rep != nil {
		b.ReportMetric(rep.Messages.ReceivedRate, "echo-msgs/s")
	}
}

// referenceEnv makes the re-executed test binary the reference server of
// BenchmarkHealthUnderLoad.
const referenceEnv = "SOCKMON_CONTROL_TEST_REFERENCE"

// runReferenceChild serves a constant healthy body on PathHealth with
// net/http until it is killed.
func runReferenceChild() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	body, _ := json.Marshal(&Health{Status: StatusHealthy, Timestamp: time.Now().UTC(), Details: HealthDetails{CircuitBreakers: map[string]BreakerHealth{}}})
	mux := http.NewServeMux()
	mux.HandleFunc(PathHealth, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	addr, _ := json.Marshal(childAddrs{Control: ln.Addr().String()})
	fmt.Println(string(addr))
	_ = http.Serve(ln, mux)
	return 1
}

// Echo throughput with and without health and /metrics polled every
// 100 ms. Each iteration is a pair of 3 s closed-loop runs on one node, one
// polled and one not, their order alternating so drift falls on both;
// reported are the median rates and the median of the pairs' ratios.
func BenchmarkEchoWithControlPolling(b *testing.B) {
	_, addrs := startChild(b, b.TempDir(), nodeWrap()...)
	base := "http://" + addrs.Control
	run := func(polled bool) float64 {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		if polled {
			for _, path := range []string{PathHealth, PathMetrics} {
				wg.Go(func() { poll(ctx, base+path, 100*time.Millisecond) })
			}
		}
		rep := <-startLoad(b, ctx, addrs.WS, 3*time.Second)
		cancel()
		wg.Wait()
		if rep == nil || rep.Connections.Established != benchConns {
			b.Fatalf("load run failed: %+v", rep)
		}
		return rep.Messages.ReceivedRate
	}
	var off, polled, ratio []float64
	for i := range b.N {
		var o, p float64
		if i%2 == 0 {
			o, p = run(false), run(true)
		} else {
			p, o = run(true), run(false)
		}
		off, polled, ratio = append(off, o), append(polled, p), append(ratio, p/o)
	}
	b.ReportMetric(median(off), "off-msgs/s")
	b.ReportMetric(median(polled), "polled-msgs/s")
	b.ReportMetric(median(ratio), "polled/off")
}

func median(v []float64) float64 {
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// nodeWrap pins the node to the CPU list in BENCH_NODE_CPU, if set.
func nodeWrap() []string {
	if cpu := os.Getenv("BENCH_NODE_CPU"); cpu != "" {
		return []string{"taskset", "-c", cpu}
	}
	return nil
}

// poll GETs url every interval until ctx ends, reading each body in full.
func poll(ctx context.Context, url string, interval time.Duration) {
	client := &http.Client{Timeout: 5 * time.Second}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			req.Header.Set("Accept-Encoding", "gzip")
			if resp, err := client.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}
}

// The cost of one health check (the Go side of GET /api/health/socket) on
// an idle node: the engine's atomics and a copy of the health snapshot
// (1.8 µs and 2 allocations, against 19-36 µs and 9 when each check took a
// metrics snapshot, measured side by side on a busy machine).
func BenchmarkHealthMethod(b *testing.B) {
	f := newFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		if f.ctl.Health().Status != StatusHealthy {
			b.Fatal("not healthy")
		}
	}
}
