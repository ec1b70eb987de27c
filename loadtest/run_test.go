package loadtest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRunClosedLoopEcho(t *testing.T) {
	e := &echoServer{}
	url := startEcho(t, e)
	rep, err := Run(context.Background(), Config{URL: url, Conns: 50, Duration: time.Second, Size: 64})
	if err != nil {
		t.Fatal(err)
	}
	var b testWriter
	rep.WriteText(&b)
	t.Log("\n" + b.String())
	if rep.Connections.Established != 50 || rep.Messages.Received == 0 || rep.Errors.Total != 0 {
		t.Fatalf("established %d, received %d, errors %v", rep.Connections.Established, rep.Messages.Received, rep.Errors.ByClass)
	}
}

// TestRunStallingServer is the coordinated-omission case against a real
// server that stops answering for 400ms after its 1000th message.
func TestRunStallingServer(t *testing.T) {
	e := &echoServer{stallAfter: 1000, stallFor: 400 * time.Millisecond}
	url := startEcho(t, e)
	rep, err := Run(context.Background(), Config{URL: url, Conns: 10, Rate: 1000, Duration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, u := rep.Latency.Corrected, rep.Latency.Uncorrected
	t.Logf("corrected p50 %.3f p99 %.3f max %.3f; uncorrected p50 %.3f p99 %.3f max %.3f; achieved %.0f/s",
		c.P50, c.P99, c.Max, u.P50, u.P99, u.Max, rep.Messages.AchievedRate)
	if rep.Errors.Total != 0 {
		t.Fatalf("errors %v", rep.Errors.ByClass)
	}
	// About 400 of 3000 messages were intended during the stall.
	if c.P99 < 250 {
		t.Errorf("corrected p99 %.3fms: the 400ms stall does not show", c.P99)
	}
	if u.P99 > 100 {
		t.Errorf("uncorrected p99 %.3fms: want the stall hidden (only ~10 messages in flight saw it)", u.P99)
	}
	if u.Max < 300 {
		t.Errorf("uncorrected max %.3fms: the messages in flight should have waited out the stall", u.Max)
	}
}

// A short real run in the open model: a few hundred connections spread over
// two source addresses, a few seconds.
func TestRunOpenModelManyConns(t *testing.T) {
	e := &echoServer{}
	url := startEcho(t, e)
	srcs, err := ParseSources("127.0.0.2-127.0.0.3")
	if err != nil {
		t.Fatal(err)
	}
	rep := runOrFail(t, Config{URL: url, Conns: 300, Ramp: 1000, Rate: 3000, Duration: 2 * time.Second, Size: 128, Sources: srcs})
	if rep.Connections.Established != 300 || rep.Errors.Total != 0 {
		t.Fatalf("established %d, errors %v", rep.Connections.Established, rep.Errors.ByClass)
	}
	if rep.RampSeconds < 0.25 {
		t.Errorf("300 connections at 1000/s ramped in %.3fs", rep.RampSeconds)
	}
	if r := *rep.Messages.RateRatio; r < 0.95 || r > 1.01 {
		t.Errorf("achieved %.0f of 3000 msg/s", rep.Messages.AchievedRate)
	}
	if rep.Messages.Received != rep.Messages.Sent || rep.Latency.Corrected.Count != rep.Messages.Received {
		t.Errorf("sent %d, received %d, recorded %d", rep.Messages.Sent, rep.Messages.Received, rep.Latency.Corrected.Count)
	}
	if rep.Connections.ConnectMS.Count != 300 || rep.Client.CPUSeconds <= 0 {
		t.Errorf("connect samples %d, client CPU %.3fs", rep.Connections.ConnectMS.Count, rep.Client.CPUSeconds)
	}
}

// connect-only holds idle connections and answers the server's pings.
func TestRunConnectOnlyAnswersPings(t *testing.T) {
	e := &echoServer{pingEvery: 100 * time.Millisecond}
	url := startEcho(t, e)
	rep := runOrFail(t, Config{URL: url, Conns: 200, Mode: ModeConnectOnly, Duration: time.Second})
	if rep.Connections.Established != 200 || rep.Connections.HeldAtEnd != 200 || rep.Errors.Total != 0 {
		t.Fatalf("established %d, held %d, errors %v", rep.Connections.Established, rep.Connections.HeldAtEnd, rep.Errors.ByClass)
	}
	if rep.Messages.PingsAnswered < 200*5 || e.pongs.Load() < 200*5 {
		t.Errorf("answered %d pings, server saw %d pongs; want about 10 per connection", rep.Messages.PingsAnswered, e.pongs.Load())
	}
	if rep.Messages.Sent != 0 {
		t.Errorf("connect-only sent %d messages", rep.Messages.Sent)
	}
}

func TestRunCountsDialAndHandshakeErrors(t *testing.T) {
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	defer refuse.Close()
	rep := runOrFail(t, Config{URL: "ws" + strings.TrimPrefix(refuse.URL, "http"), Conns: 5, Duration: 100 * time.Millisecond})
	if rep.Errors.ByClass["handshake_401"] != 5 || rep.Connections.Established != 0 {
		t.Errorf("errors %v, want 5 handshake_401", rep.Errors.ByClass)
	}
	if rep.ExitCode() != ExitRefused {
		t.Errorf("exit %d with every upgrade refused, want %d", rep.ExitCode(), ExitRefused)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	rep = runOrFail(t, Config{URL: "ws://" + addr + "/", Conns: 3, Duration: 100 * time.Millisecond})
	if rep.Errors.ByClass[ErrClassDial] != 3 {
		t.Errorf("errors %v, want 3 dial", rep.Errors.ByClass)
	}
	if rep.ExitCode() != ExitFailed {
		t.Errorf("exit %d with nothing listening, want %d", rep.ExitCode(), ExitFailed)
	}
}

// Cancelling the context (Ctrl-C) ends the run early with the report of
// what ran.
func TestRunInterrupted(t *testing.T) {
	e := &echoServer{}
	url := startEcho(t, e)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	start := time.Now()
	rep, err := Run(ctx, Config{URL: url, Conns: 10, Rate: 500, Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 10*time.Second || !rep.Interrupted || rep.ExitCode() != ExitInterrupted {
		t.Fatalf("interrupted %v after %v", rep.Interrupted, time.Since(start))
	}
	if rep.Messages.Received == 0 || rep.DurationSeconds > 5 {
		t.Errorf("received %d over %.1fs", rep.Messages.Received, rep.DurationSeconds)
	}
}
