package check

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// body is a public health body with the given status.
func body(status string) *HealthBody {
	return &HealthBody{Status: status, ResponseTime: 0.4, Uptime: 60000, Timestamp: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC),
		Details: HealthDetails{
			Connections: HealthConnections{Total: 150, Authenticated: 120, Anonymous: 30},
			Performance: HealthPerformance{AvgResponseTime: 0.2, P95ResponseTime: 0.6, P99ResponseTime: 1.1, ErrorRate: 0.002, MessagesPerMinute: 90000},
		}}
}

func rng(s string) *Range {
	r := MustParseRange(s)
	return &r
}

// answered is a Health that read b in d.
func answered(b *HealthBody, d time.Duration) Health {
	return Health{URL: "http://n1:8081/api/health/socket", Method: "GET", HTTPStatus: 200, ResponseTime: d, Body: b}
}

func TestEvaluate(t *testing.T) {
	maint := body(StatusMaintenance)
	maint.Reasons = []string{"maintenance"}
	unhealthy := body(StatusUnhealthy)
	unhealthy.Reasons = []string{"memory_over_limit"}
	refused := &Canary{URL: "ws://n1:8080/ws", HTTPStatus: 503, Steps: []Step{{Name: StepConnect, Err: errors.New("upgrade refused: HTTP 503")}}}
	okCanary := &Canary{URL: "ws://n1:8080/ws", OK: true, CloseCode: 1000, Steps: []Step{{Name: StepConnect}, {Name: StepEcho}, {Name: StepPing}, {Name: StepClose}}}
	for _, tc := range []struct {
		name   string
		cfg    Config
		health Health
		canary *Canary
		want   State
		text   string // in the summary
	}{
		{name: "healthy", health: answered(body(StatusHealthy), time.Millisecond), want: OK, text: "healthy, 150 connections, p99 1.1ms, health 1ms"},
		{name: "healthy with canary", health: answered(body(StatusHealthy), time.Millisecond), canary: okCanary, want: OK, text: "canary 0ms"},
		{name: "degraded", health: answered(body(StatusDegraded), time.Millisecond), want: Warning, text: "degraded"},
		{name: "degraded mapped ok", cfg: Config{StatusStates: map[string]State{StatusDegraded: OK}},
			health: answered(body(StatusDegraded), time.Millisecond), want: OK, text: "degraded, 150 connections"},
		{name: "maintenance", health: answered(maint, time.Millisecond), want: Warning, text: "maintenance; 150 connections"},
		{name: "maintenance critical", cfg: Config{StatusStates: map[string]State{StatusMaintenance: Critical}},
			health: answered(maint, time.Millisecond), want: Critical, text: "maintenance"},
		{name: "maintenance refuses the canary", health: answered(maint, time.Millisecond), canary: refused, want: Warning, text: "canary refused (HTTP 503)"},
		{name: "healthy node refusing the canary", health: answered(body(StatusHealthy), time.Millisecond), canary: refused, want: Critical,
			text: "canary connect failed: upgrade refused: HTTP 503"},
		{name: "draining", health: answered(body(StatusDraining), time.Millisecond), want: Warning, text: "draining"},
		{name: "unhealthy", health: answered(unhealthy, time.Millisecond), want: Critical, text: "unhealthy (memory_over_limit)"},
		{name: "unknown status", health: answered(body("exploded"), time.Millisecond), want: Unknown, text: "exploded"},
		{name: "slow: warning", cfg: Config{ResponseTime: Thresholds{rng("100"), rng("500")}},
			health: answered(body(StatusHealthy), 200*time.Millisecond), want: Warning, text: "response_time 200ms > 100"},
		{name: "slow: critical", cfg: Config{ResponseTime: Thresholds{rng("100"), rng("500")}},
			health: answered(body(StatusHealthy), 600*time.Millisecond), want: Critical, text: "response_time 600ms > 500"},
		{name: "connections below a floor", cfg: Config{Connections: Thresholds{Warning: rng("200:")}},
			health: answered(body(StatusHealthy), time.Millisecond), want: Warning, text: "connections 150 < 200"},
		{name: "error rate in percent", cfg: Config{ErrorRate: Thresholds{rng("0.1"), rng("1")}},
			health: answered(body(StatusHealthy), time.Millisecond), want: Warning, text: "error_rate 0.2% > 0.1"},
		{name: "p99", cfg: Config{P99: Thresholds{rng("0.5"), rng("1")}},
			health: answered(body(StatusHealthy), time.Millisecond), want: Critical, text: "p99_latency 1.1ms > 1"},
		{name: "worst wins", cfg: Config{P99: Thresholds{Critical: rng("1")}},
			health: answered(maint, time.Millisecond), want: Critical, text: "p99_latency 1.1ms > 1; maintenance"},
		{name: "unreachable", health: Health{URL: "http://n1:8081/api/health/socket", Err: &net.OpError{Op: "dial", Err: errors.New("connect: connection refused")}},
			want: Critical, text: "cannot reach http://n1:8081/api/health/socket: connect: connection refused"},
		{name: "not a health body", health: Health{URL: "http://n1:8081/x", HTTPStatus: 404, Err: &StatusError{HTTPStatus: 404, Problem: "want 200 or 503"}},
			want: Critical, text: "unexpected answer: HTTP 404"},
		{name: "token refused", health: Health{HTTPStatus: 401, Err: &AdminError{HTTPStatus: 401, Code: "unauthorized", Message: "invalid token"}},
			want: Unknown, text: "admin token refused: HTTP 401"},
		{name: "timeout", health: Health{URL: "http://n1:8081/api/health/socket", TimedOut: true, Err: context.DeadlineExceeded},
			want: Unknown, text: "no health answer within the 10s timeout"},
		{name: "timeout critical", cfg: Config{TimeoutCritical: true}, health: Health{TimedOut: true, Err: context.DeadlineExceeded},
			want: Critical, text: "no health answer"},
		{name: "canary timeout", health: answered(body(StatusHealthy), time.Millisecond),
			canary: &Canary{TimedOut: true, Steps: []Step{{Name: StepConnect}, {Name: StepEcho, Err: context.DeadlineExceeded}}},
			want:   Unknown, text: "canary: no echo reply within the 10s timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Result{Timeout: DefaultTimeout, Health: tc.health, Canary: tc.canary}
			r.evaluate(&tc.cfg)
			if r.State != tc.want {
				t.Errorf("state %s, want %s (problems %+v)", r.State, tc.want, r.Problems)
			}
			if s := r.Summary(1000); !strings.Contains(s, tc.text) {
				t.Errorf("summary %q does not contain %q", s, tc.text)
			}
			if (r.State == OK) != (len(r.Problems) == 0) {
				t.Errorf("state %s with problems %+v", r.State, r.Problems)
			}
		})
	}
}

// fakeControl serves h as a control side and returns its URL.
func fakeControl(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestRunReadsHealth(t *testing.T) {
	var gotMethod, gotAuth, gotPath string
	url := fakeControl(t, func(w http.ResponseWriter, r *http.Request) {
		gotMethod, gotAuth, gotPath = r.Method, r.Header.Get("Authorization"), r.URL.Path
		if r.Method == http.MethodPost {
			var req map[string]json.RawMessage
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || string(req["connections"]) != `{"limit":1}` {
				t.Errorf("detailed request body: %v %s", err, req["connections"])
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"success": true,
				"status": "healthy", "details": map[string]any{"connections": map[string]any{"total": 3}},
				"process": map[string]any{"available": true, "rssBytes": 1234, "goroutines": 7},
				"admin":   map[string]any{"ready": true},
			})
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "draining", "reasons": []string{"draining"}})
	})
	r, err := Run(context.Background(), Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	if gotMethod != "GET" || gotAuth != "" || gotPath != HealthPath {
		t.Errorf("public check sent %s %s with Authorization %q", gotMethod, gotPath, gotAuth)
	}
	if r.State != Warning || r.Health.HTTPStatus != 503 || r.Health.Body.Status != StatusDraining || r.Health.ResponseTime <= 0 {
		t.Errorf("draining node: state %s, health %+v", r.State, r.Health)
	}

	r, err = Run(context.Background(), Config{URL: url + "/", AdminToken: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	if gotMethod != "POST" || gotAuth != "Bearer tok" || gotPath != HealthPath {
		t.Errorf("detailed check sent %s %s with Authorization %q", gotMethod, gotPath, gotAuth)
	}
	if r.State != OK || r.Health.Detail == nil || r.Health.Detail.Process.RSSBytes != 1234 || r.Health.Body.Details.Connections.Total != 3 {
		t.Errorf("detailed: state %s, health %+v detail %+v", r.State, r.Health, r.Health.Detail)
	}
	var labels []string
	for _, m := range r.Measures {
		labels = append(labels, m.Label)
	}
	if !strings.Contains(strings.Join(labels, " "), "rss goroutines") {
		t.Errorf("detailed measures %v lack rss and goroutines", labels)
	}

	// A URL with a path is used as given.
	if _, err := Run(context.Background(), Config{URL: url + "/prefix/health"}); err != nil || gotPath != "/prefix/health" {
		t.Errorf("custom path: got %q, %v", gotPath, err)
	}
}

func TestRunTimeout(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	url := fakeControl(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	for _, critical := range []bool{false, true} {
		start := time.Now()
		r, err := Run(context.Background(), Config{URL: url, Timeout: 200 * time.Millisecond, TimeoutCritical: critical})
		if err != nil {
			t.Fatal(err)
		}
		want := Unknown
		if critical {
			want = Critical
		}
		if r.State != want || !r.TimedOut || !r.Health.TimedOut {
			t.Errorf("timeout (critical %t): state %s, timed out %t, health %+v", critical, r.State, r.TimedOut, r.Health)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("a 200ms timeout took %s", el)
		}
	}
}

func TestRunUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r, err := Run(context.Background(), Config{URL: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	if r.State != Critical || r.TimedOut || !strings.Contains(r.Summary(0), "connection refused") {
		t.Errorf("nothing listening: state %s, summary %q", r.State, r.Summary(0))
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{URL: "ftp://host"},
		{URL: "host:8081"},
		{URL: "http://host:8081", WSURL: "http://host:8080/ws"},
		{URL: "http://host:8081", Timeout: -time.Second},
	} {
		if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("Run(%+v): %v, want ErrConfig", cfg, err)
		}
	}
}
