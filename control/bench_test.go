package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sockmon/sockmon/loadtest"
)

// Benchmarks of the control side under WebSocket load. The node (netcore +
// control) and the load generator each run in a child process (this test
// binary re-executed, see TestMain); the HTTP probes run in this process. Run them without -race:
//
//	go test -run '^$' -bench 'HealthUnderLoad' -benchtime 2000x -count 3 ./control/
//	BENCH_NODE_CPU=0 BENCH_LOAD_CPU=1 go test ...   (pin node and generator to one core each)
//	go test -run '^$' -bench 'EchoWithControlPolling' -benchtime 1x -count 6 ./control/ | tee echo.txt
//	benchstat -col /polling echo.txt

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
	rep, err := loadtest.Run(ctx, loadtest.Config{URL: "ws://" + ws + "/ws", Conns: benchConns, Duration: d, Size: 64, Mode: loadtest.ModeEchoBinary})
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
	for time.Now().Before(deadline) {
		resp, err := client.Get(base + PathHealth)
		if err == nil {
			var h Health
			_ = decodeJSON(resp.Body, &h)
			resp.Body.Close()
			if h.Details.Connections.Total >= n {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("the node never held %d connections", n)
}

// The health endpoint's latency while the WebSocket port is saturated:
// each iteration is one GET /api/health/socket on a keep-alive connection,
// as a load balancer's check would be. Reports p50, p99 and max.
func BenchmarkHealthUnderLoad(b *testing.B) {
	_, addrs := startChild(b, b.TempDir(), nodeWrap()...)
	base := "http://" + addrs.Control
	client := &http.Client{Timeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	reports := startLoad(b, ctx, addrs.WS, time.Hour)
	waitConns(b, client, base, benchConns)
	time.Sleep(time.Second) // into the steady state

	lat := make([]time.Duration, 0, b.N)
	checks := make([]float64, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		resp, err := client.Get(base + PathHealth)
		if err != nil {
			b.Fatal(err)
		}
		var h Health
		err = decodeJSON(resp.Body, &h)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("health answered %d under load (%v)", resp.StatusCode, err)
		}
		lat = append(lat, time.Since(start))
		checks = append(checks, h.ResponseTime)
	}
	b.StopTimer()
	cancel()
	rep := <-reports
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
	slices.Sort(checks)
	b.ReportMetric(checks[int(0.99*float64(len(checks)-1))], "check-p99-ms")
	if rep != nil {
		b.ReportMetric(rep.Messages.ReceivedRate, "echo-msgs/s")
	}
}

// Echo throughput with and without health and /metrics polled every 100 ms:
// each iteration is one 3 s closed-loop run; compare the two with
// benchstat.
func BenchmarkEchoWithControlPolling(b *testing.B) {
	_, addrs := startChild(b, b.TempDir(), nodeWrap()...)
	base := "http://" + addrs.Control
	for _, polling := range []string{"off", "100ms"} {
		b.Run("polling="+polling, func(b *testing.B) {
			var rates []float64
			for range b.N {
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				if polling != "off" {
					for _, path := range []string{PathHealth, PathMetrics} {
						wg.Add(1)
						go func() {
							defer wg.Done()
							poll(ctx, base+path, 100*time.Millisecond)
						}()
					}
				}
				rep := <-startLoad(b, ctx, addrs.WS, 3*time.Second)
				cancel()
				wg.Wait()
				if rep == nil || rep.Connections.Established != benchConns {
					b.Fatalf("load run failed: %+v", rep)
				}
				rates = append(rates, rep.Messages.ReceivedRate)
			}
			var sum float64
			for _, r := range rates {
				sum += r
			}
			b.ReportMetric(sum/float64(len(rates)), "echo-msgs/s")
		})
	}
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
// an idle node: one metrics snapshot and the engine's atomics.
func BenchmarkHealthMethod(b *testing.B) {
	f := newFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		if f.ctl.Health().Status != StatusHealthy {
			b.Fatal("not healthy")
		}
	}
}
