package loadtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunMetricsURL scrapes a stand-in /metrics whose counters follow the
// echo server's message count.
func TestRunMetricsURL(t *testing.T) {
	e := &echoServer{}
	url := startEcho(t, e)
	var scrapes atomic.Int64
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := scrapes.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		msgs := e.received.Load()
		fmt.Fprintf(w, "sockmon_messages_received_total %d\nsockmon_messages_sent_total %d\n", msgs, msgs)
		fmt.Fprintf(w, "sockmon_connections{auth=\"anonymous\"} 10\n")
		fmt.Fprintf(w, "process_cpu_seconds_total %g\n", float64(msgs)*10e-6)
		fmt.Fprintf(w, "process_resident_memory_bytes %d\n", 10<<20+n*1000)
		fmt.Fprintf(w, "sockmon_message_duration_seconds_bucket{le=\"0.001\"} %d\n", msgs)
		fmt.Fprintf(w, "sockmon_message_duration_seconds_bucket{le=\"+Inf\"} %d\n", msgs)
	}))
	defer metrics.Close()
	rep := runOrFail(t, Config{URL: url, Conns: 10, Rate: 1000, Duration: 500 * time.Millisecond, MetricsURL: metrics.URL + "/metrics"})
	sv := rep.Server
	if sv == nil || len(sv.ScrapeErrors) > 0 || scrapes.Load() != 3 {
		t.Fatalf("server view %+v after %d scrapes", sv, scrapes.Load())
	}
	if sv.MessagesReceived < 400 || sv.CPUPerMessageUS < 9.9 || sv.CPUPerMessageUS > 10.1 || sv.ConnectionsAtEnd != 10 {
		t.Errorf("server view %+v", sv)
	}
	if sv.RSSPerConnectionBytes != 200 || sv.Latency == nil || sv.Latency.P99 > 1 {
		t.Errorf("rss per connection %g (want 2000 B / 10), latency %+v", sv.RSSPerConnectionBytes, sv.Latency)
	}
	// The stand-in has no error counter: the report says so instead of
	// showing 0 errors.
	if fmt.Sprint(sv.MissingMetrics) != "[sockmon_message_errors_total]" {
		t.Errorf("missing metrics %v, want [sockmon_message_errors_total]", sv.MissingMetrics)
	}

	bad := runOrFail(t, Config{URL: url, Conns: 2, Duration: 100 * time.Millisecond, MetricsURL: "http://127.0.0.1:1/metrics"})
	if bad.Server == nil || len(bad.Server.ScrapeErrors) != 3 || len(bad.Server.MissingMetrics) != 0 || bad.ExitCode() != ExitOK {
		t.Errorf("unreachable metrics: %+v, exit %d", bad.Server, bad.ExitCode())
	}
}
