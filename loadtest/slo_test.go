package loadtest

import (
	"strings"
	"testing"
)

func TestParseSLO(t *testing.T) {
	tests := []struct {
		in     string
		metric string
		op     string
		value  float64
		unit   string
	}{
		{"p99<20ms", "p99", "<", 20, "ms"},
		{"p99.9 <= 1.5s", "p99.9", "<=", 1500, "ms"},
		{"max<500us", "max", "<", 0.5, "ms"},
		{"uncorrected_p50<1ms", "uncorrected_p50", "<", 1, "ms"},
		{"connect_p99<100ms", "connect_p99", "<", 100, "ms"},
		{"errors<0.1%", "errors", "<", 0.1, "%"},
		{"errors<=10", "errors", "<=", 10, ""},
		{"rate>=99%", "rate", ">=", 99, "%"},
		{"rate>50000", "rate", ">", 50000, ""},
		{"conns>=100%", "conns", ">=", 100, "%"},
		{"deliveries>=99.9%", "deliveries", ">=", 99.9, "%"},
	}
	for _, tt := range tests {
		s, err := ParseSLO(tt.in)
		if err != nil {
			t.Errorf("ParseSLO(%q): %v", tt.in, err)
			continue
		}
		if s.Metric != tt.metric || s.Op != tt.op || s.Value != tt.value || s.Unit != tt.unit {
			t.Errorf("ParseSLO(%q) = %+v, want %s %s %g %s", tt.in, s, tt.metric, tt.op, tt.value, tt.unit)
		}
	}
	for _, bad := range []string{"", "p99", "p99<", "p99<20", "p99<fast", "p98<1ms", "errors<x%", "errors<-1", "=<3", "rate=99%"} {
		if _, err := ParseSLO(bad); err == nil {
			t.Errorf("ParseSLO(%q) accepted", bad)
		}
	}
	if _, err := ParseSLOs([]string{"p99<1ms", "bogus<1", "p50<x"}); err == nil || strings.Count(err.Error(), "\n") != 1 {
		t.Errorf("ParseSLOs reports %v, want both bad expressions", err)
	}
}

func sampleReport() *Report {
	ratio := 0.995
	return &Report{
		Schema:      ReportSchema,
		Settings:    Settings{Conns: 100},
		Connections: ConnReport{Attempted: 100, Established: 100, ConnectMS: Percentiles{Count: 100, P99: 3}},
		Messages:    MessageReport{Sent: 9900, Received: 9900, RequestedRate: 1000, AchievedRate: 995, RateRatio: &ratio},
		Latency: LatencyReport{
			Corrected:   Percentiles{Count: 9900, P50: 1, P90: 5, P99: 25, P999: 40, Max: 60, Mean: 2},
			Uncorrected: Percentiles{Count: 9900, P50: 1, P99: 2},
		},
		Errors: ErrorReport{Total: 5, Ratio: 5.0 / 10000, ByClass: map[string]int64{ErrClassTimeout: 5}},
		SLOs:   []SLOResult{},
	}
}

func TestEvaluateSLOsAndExitCode(t *testing.T) {
	tests := []struct {
		slos []string
		ok   bool
	}{
		{[]string{"p99<30ms", "errors<0.1%", "rate>=99%"}, true},
		{[]string{"p99<20ms"}, false},
		{[]string{"uncorrected_p99<20ms"}, true},
		{[]string{"errors<0.01%"}, false},
		{[]string{"errors<=5"}, true},
		{[]string{"rate>=99.9%"}, false},
		{[]string{"rate>900"}, true},
		{[]string{"conns>=100%", "connect_p99<5ms"}, true},
		{[]string{"deliveries>=1"}, false}, // not a publish run
		{[]string{"p99.9<40ms"}, false},
		{[]string{"p99.9<=40ms"}, true},
	}
	for _, tt := range tests {
		slos, err := ParseSLOs(tt.slos)
		if err != nil {
			t.Fatal(err)
		}
		rep := sampleReport()
		if got := rep.EvaluateSLOs(slos); got != tt.ok {
			t.Errorf("%v: ok = %v, want %v (%+v)", tt.slos, got, tt.ok, rep.SLOs)
		}
		want := ExitOK
		if !tt.ok {
			want = ExitFailed
		}
		if code := rep.ExitCode(); code != want {
			t.Errorf("%v: exit %d, want %d", tt.slos, code, want)
		}
	}

	closed := sampleReport()
	closed.Messages.RateRatio = nil
	slos, _ := ParseSLOs([]string{"rate>=99%"})
	if closed.EvaluateSLOs(slos) || !strings.Contains(closed.SLOs[0].Detail, "closed loop") {
		t.Errorf("rate%% in a closed loop: %+v, want a failure that says why", closed.SLOs)
	}
	empty := sampleReport()
	empty.Latency.Corrected = Percentiles{}
	slos, _ = ParseSLOs([]string{"p99<1s"})
	if empty.EvaluateSLOs(slos) {
		t.Error("latency SLO with no samples passed")
	}
	none := sampleReport()
	none.Connections.Established = 0
	if none.ExitCode() != ExitFailed {
		t.Error("a run with no connection exits 0")
	}
	stopped := sampleReport()
	stopped.Interrupted = true
	if stopped.ExitCode() != ExitInterrupted {
		t.Error("an interrupted run does not exit 130")
	}
}
