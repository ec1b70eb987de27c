package check

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// fixtures are Results of every kind the formatters must handle, judged
// by evaluate as Run would.
func fixtures() map[string]*Result {
	hb := 3.5
	detailed := answered(body(StatusHealthy), 4200*time.Microsecond)
	detailed.Method = "POST"
	detailed.Detail = &HealthDetail{
		Connections: ConnectionSummary{Total: 150, Accepted: 900, Closed: 750, Rooms: 2},
		Process:     ProcessStats{Available: true, Goroutines: 40, RSSBytes: 50 << 20, Threads: 8, NumCPU: 2},
		Ready:       true, HeartbeatAgeMs: &hb,
	}
	okCanary := &Canary{URL: "ws://n1:8080/ws", OK: true, CloseCode: 1000, Steps: []Step{
		{Name: StepConnect, Duration: 1200 * time.Microsecond}, {Name: StepEcho, Duration: 300 * time.Microsecond},
		{Name: StepPing, Duration: 250 * time.Microsecond}, {Name: StepClose, Duration: 400 * time.Microsecond}}}
	maint := body(StatusMaintenance)
	maint.Reasons = []string{"maintenance"}
	weird := body("a|b\nc")
	weird.Details.CircuitBreakers = map[string]BreakerHealth{"ai": {Status: "open", Failures: 5}}
	w, c := MustParseRange("1000"), MustParseRange("5000")
	base := Config{ResponseTime: Thresholds{&w, &c}, Connections: Thresholds{Warning: rng("@0:10")}}
	mk := func(cfg Config, h Health, cn *Canary) *Result {
		r := &Result{Start: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), Duration: 7 * time.Millisecond, Timeout: DefaultTimeout,
			Health: h, Canary: cn, Detailed: h.Detail != nil}
		r.evaluate(&cfg)
		return r
	}
	return map[string]*Result{
		"healthy":                      mk(base, answered(body(StatusHealthy), 4200*time.Microsecond), nil),
		"healthy detailed with canary": mk(base, detailed, okCanary),
		"maintenance refusing the canary": mk(base, answered(maint, 2*time.Millisecond),
			&Canary{URL: "ws://n1:8080/ws", HTTPStatus: 503, Steps: []Step{{Name: StepConnect, Duration: time.Millisecond, Err: errors.New("upgrade refused: HTTP 503")}}}),
		"down": mk(base, Health{URL: "http://n1:8081/api/health/socket", Method: "GET",
			Err: &net.OpError{Op: "dial", Err: errors.New("connect: connection refused")}}, nil),
		"timed out in the canary": mk(base, answered(body(StatusHealthy), 3*time.Millisecond),
			&Canary{URL: "ws://n1:8080/ws", TimedOut: true, Steps: []Step{{Name: StepConnect, Duration: time.Millisecond},
				{Name: StepEcho, Duration: 9 * time.Second, Err: context.DeadlineExceeded}}}),
		"slow and odd": mk(Config{ResponseTime: Thresholds{rng("100"), rng("200")}}, answered(weird, 250*time.Millisecond), nil),
	}
}

func TestTextFormat(t *testing.T) {
	for name, r := range fixtures() {
		var b bytes.Buffer
		if err := WriteText(&b, r); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if want := r.State.String() + ": "; !strings.HasPrefix(lines[0], want) {
			t.Errorf("%s: first line %q, want it to start with %q", name, lines[0], want)
		}
		if !strings.HasPrefix(lines[1], "  health ") || !strings.HasSuffix(lines[len(lines)-1], "exit "+string(rune('0'+int(r.State)))) {
			t.Errorf("%s: text output:\n%s", name, b.String())
		}
		for _, l := range lines[1:] {
			if !strings.HasPrefix(l, "  ") {
				t.Errorf("%s: line %q is not a finding: a value broke the layout", name, l)
			}
		}
		if r.Canary != nil && !strings.Contains(b.String(), "\n  canary ") {
			t.Errorf("%s: no canary line:\n%s", name, b.String())
		}
	}
}

func TestSummaryLimit(t *testing.T) {
	r := fixtures()["healthy detailed with canary"]
	if s := r.Summary(40); len(s) > 40 || !strings.HasPrefix(s, "healthy, 150 connections") {
		t.Errorf("Summary(40) = %q", s)
	}
	if s := r.Summary(5); s != "" {
		t.Errorf("Summary(5) = %q: no fact fits", s)
	}
	// Problems are never cut.
	d := fixtures()["down"]
	if s := d.Summary(10); !strings.Contains(s, "connection refused") {
		t.Errorf("Summary(10) of a down node = %q", s)
	}
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"text", "json", "nagios", "prometheus", "NAGIOS"} {
		if _, err := ParseFormat(s); err != nil {
			t.Errorf("ParseFormat(%q): %v", s, err)
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("ParseFormat(xml) succeeded")
	}
}
