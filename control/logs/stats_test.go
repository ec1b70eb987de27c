package logs

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// The line counts what happened since the previous one: connections by
// auth now, accepted and closed, rejections by reason, suppressed close
// lines; messages and latency come from the same snapshot.
func TestStatsCountsSinceThePreviousLine(t *testing.T) {
	m, err := metrics.New(metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.ConnectionOpened(metrics.Authenticated) // before the reporter: not counted as accepted
	var out lockedBuffer
	log := slog.New(slog.NewJSONHandler(&out, nil))
	closes := NewCloseLog(log, 1)
	r := NewStatsReporter(StatsOptions{Metrics: m, Logger: log, Closes: closes})

	m.ConnectionOpened(metrics.Anonymous)
	m.ConnectionOpened(metrics.Authenticated)
	m.ConnectionClosed(metrics.Authenticated, metrics.InitiatorServer, metrics.ReasonAdmin)
	m.ConnectionRejected(metrics.RejectAuth)
	m.ConnectionRejected(metrics.RejectAuth)
	m.ConnectionRejected(metrics.RejectLimit)
	for range 3 {
		closes.OnDisconnect(closeEvent(netcore.CloseAdmin, netcore.InitiatorServer, "x"))
	}
	s := r.Stats()
	if s.Connections != (metrics.ConnectionCounts{Total: 2, Authenticated: 1, Anonymous: 1}) || s.Accepted != 2 || s.Closed != 1 {
		t.Errorf("connections: %+v accepted %d closed %d", s.Connections, s.Accepted, s.Closed)
	}
	if s.Rejected != 3 || len(s.RejectedByReason) != 2 || s.RejectedByReason["auth"] != 2 || s.RejectedByReason["limit"] != 1 {
		t.Errorf("rejected %d %v, want 3: auth 2, limit 1", s.Rejected, s.RejectedByReason)
	}
	if s.CloseLinesSuppressed != 2 {
		t.Errorf("suppressed close lines %d, want 2", s.CloseLinesSuppressed)
	}
	if s.RSSBytes == 0 && s.HeapInuseBytes == 0 {
		t.Error("no memory figures")
	}
	// The next line starts from here.
	m.ConnectionRejected(metrics.RejectAuth)
	s = r.Stats()
	if s.Accepted != 0 || s.Closed != 0 || s.Rejected != 1 || s.RejectedByReason["auth"] != 1 || s.CloseLinesSuppressed != 0 {
		t.Errorf("second line: %+v", s)
	}

	r.Log()
	recs := records(t, out.String())
	last := recs[len(recs)-1]
	if last["msg"] != StatsMessage || last["level"] != "INFO" {
		t.Fatalf("stats line: %v", last)
	}
	for _, group := range []string{"connections", "rejected", "messages", "errors", "latencyMs", "memory"} {
		if _, ok := last[group].(map[string]any); !ok {
			t.Errorf("stats line has no %s group: %v", group, last)
		}
	}
	if _, ok := last["closeLinesSuppressed"]; !ok {
		t.Errorf("stats line has no closeLinesSuppressed: %v", last)
	}
}

// Run writes a line every interval and returns when its context ends.
func TestStatsRun(t *testing.T) {
	m, err := metrics.New(metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	r := NewStatsReporter(StatsOptions{Metrics: m, Logger: slog.New(slog.NewJSONHandler(&out, nil)), Interval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	wstest.WaitFor(t, "two connection_stats lines", func() bool { return strings.Count(out.String(), StatsMessage) >= 2 })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
