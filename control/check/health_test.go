package check

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/sockmon/sockmon/control"
	"github.com/sockmon/sockmon/metrics"
)

// The check decodes the control side's wire format with types of its own;
// this keeps them in step with the server's.
func TestWireMatchesControl(t *testing.T) {
	for _, s := range []string{control.StatusHealthy, control.StatusDegraded, control.StatusUnhealthy, control.StatusMaintenance, control.StatusDraining} {
		if DefaultStatusState(s) == Unknown {
			t.Errorf("control status %q is unknown to the check", s)
		}
	}
	if control.PathHealth != HealthPath {
		t.Errorf("health path %q, control serves %q", HealthPath, control.PathHealth)
	}
	hb := 12.5
	h := &control.Health{Status: "degraded", ResponseTime: 0.4, Uptime: 3600000, Timestamp: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC),
		Reasons: []string{"latency_high"},
		Details: control.HealthDetails{
			Connections:     metrics.ConnectionCounts{Total: 150, Authenticated: 120, Anonymous: 30},
			Performance:     control.HealthPerformance{AvgResponseTime: 0.2, P95ResponseTime: 0.6, P99ResponseTime: 1.1, ErrorRate: 0.002, MessagesPerMinute: 90000},
			CircuitBreakers: map[string]control.BreakerHealth{"ai": {Status: "closed", Failures: 2}},
		}}
	want := HealthBody{Status: "degraded", ResponseTime: 0.4, Uptime: 3600000, Timestamp: h.Timestamp, Reasons: []string{"latency_high"},
		Details: HealthDetails{
			Connections:     HealthConnections{Total: 150, Authenticated: 120, Anonymous: 30},
			Performance:     HealthPerformance{AvgResponseTime: 0.2, P95ResponseTime: 0.6, P99ResponseTime: 1.1, ErrorRate: 0.002, MessagesPerMinute: 90000},
			CircuitBreakers: map[string]BreakerHealth{"ai": {Status: "closed", Failures: 2}},
		}}
	raw, _ := json.Marshal(h)
	got, err := decodePublic(http.StatusOK, raw)
	if err != nil || !reflect.DeepEqual(*got, want) {
		t.Fatalf("public body:\n got %+v, %v\nwant %+v", got, err, want)
	}

	d := control.DetailedHealth{
		Health: h,
		Connections: control.DetailedConnections{Summary: control.ConnectionSummary{Total: 150, Authenticated: 120, Anonymous: 30,
			Accepted: 1000, Rejected: 7, Closed: 850, SlowConsumers: 2, ProtocolErrors: 3, Rooms: 4}},
		Process:     metrics.ProcessStats{Available: true, Goroutines: 42, HeapInuseBytes: 1 << 20, RSSBytes: 50 << 20, Threads: 9, CPUFraction: 0.25, NumCPU: 2},
		Maintenance: control.MaintenanceStatus{Enabled: true, Reason: "upgrade", Drain: true, Since: h.Timestamp, By: "alice"},
		Admin:       control.DetailedAdmin{AdminHealth: control.AdminHealth{Ready: false, Draining: true, HeartbeatAgeMs: &hb}},
		Success:     true,
	}
	raw, _ = json.Marshal(d)
	body, detail, err := decodeDetailed(http.StatusOK, raw)
	if err != nil || !reflect.DeepEqual(*body, want) {
		t.Fatalf("detailed body:\n got %+v, %v\nwant %+v", body, err, want)
	}
	wantDetail := HealthDetail{
		Connections: ConnectionSummary{Total: 150, Authenticated: 120, Anonymous: 30, Accepted: 1000, Rejected: 7, Closed: 850, SlowConsumers: 2, ProtocolErrors: 3, Rooms: 4},
		Process:     ProcessStats{Available: true, Goroutines: 42, HeapInuseBytes: 1 << 20, RSSBytes: 50 << 20, Threads: 9, CPUFraction: 0.25, NumCPU: 2},
		Maintenance: Maintenance{Enabled: true, Reason: "upgrade", Drain: true, Since: h.Timestamp},
		Draining:    true, HeartbeatAgeMs: &hb,
	}
	if !reflect.DeepEqual(*detail, wantDetail) {
		t.Fatalf("detail:\n got %+v\nwant %+v", *detail, wantDetail)
	}
}

func TestDecodeRefusals(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		body     string
		detailed bool
		admin    bool // an *AdminError, else a *StatusError
	}{
		{"public 404", 404, `not found`, false, false},
		{"public 200 not json", 200, `<html>`, false, false},
		{"public 200 json without status", 200, `{"ok":true}`, false, false},
		{"public 500", 500, `{"status":"healthy"}`, false, false},
		{"detailed 401", 401, `{"success":false,"error":{"code":"unauthorized","message":"invalid token"}}`, true, true},
		{"detailed 403", 403, `{"success":false,"error":{"code":"forbidden","message":"not an admin"}}`, true, true},
		{"detailed 429", 429, `{"success":false,"error":{"code":"rate_limited","message":"later"}}`, true, true},
		{"detailed admin off", 503, `{"success":false,"error":{"code":"admin_disabled","message":"no secret"}}`, true, true},
		{"detailed 500", 500, `{"success":false,"error":{"code":"internal","message":"store"}}`, true, false},
		{"detailed html", 502, `<html>`, true, false},
	} {
		var err error
		if tc.detailed {
			_, _, err = decodeDetailed(tc.status, []byte(tc.body))
		} else {
			_, err = decodePublic(tc.status, []byte(tc.body))
		}
		var ae *AdminError
		var se *StatusError
		switch {
		case tc.admin && !errors.As(err, &ae):
			t.Errorf("%s: %v, want an *AdminError", tc.name, err)
		case !tc.admin && !errors.As(err, &se):
			t.Errorf("%s: %v, want a *StatusError", tc.name, err)
		}
	}
}
