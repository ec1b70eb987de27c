package control

import (
	"testing"
	"time"
)

// A rule's description follows its threshold and operator unless an
// operator wrote one: the default error_rate rule no longer says "more than
// 10%" once its threshold is 0.2.
func TestAlertDescriptionFollowsTheRule(t *testing.T) {
	f := newFixture(t)
	configure := func(data map[string]any) AlertConfig {
		t.Helper()
		return unmarshal[map[string]AlertConfig](t, f.mustAdmin(ActionConfigureAlert, data))["alert"]
	}
	list, _ := f.ctl.AlertConfigs()
	if list[0].Name != "error_rate" || list[0].Description != "more than 10% of messages answered with an error" {
		t.Fatalf("default rule: %+v", list[0])
	}
	steps := []struct {
		data map[string]any
		want string
	}{
		{map[string]any{"name": "error_rate", "threshold": 0.2}, "more than 20% of messages answered with an error"},
		{map[string]any{"name": "error_rate", "operator": ">="}, "at least 20% of messages answered with an error"},
		{map[string]any{"name": "error_rate", "description": "page the on-call"}, "page the on-call"},
		{map[string]any{"name": "error_rate", "threshold": 0.3}, "page the on-call"}, // the operator's text stays
		{map[string]any{"name": "error_rate", "description": ""}, "at least 30% of messages answered with an error"},
		{map[string]any{"name": "conns", "metric": "connections", "threshold": 9000}, "open connections above 9000"},
		{map[string]any{"name": "conns", "operator": "<", "threshold": 10}, "open connections below 10"},
		{map[string]any{"name": "p99", "metric": "response_time", "threshold": 250.5, "operator": "<="}, "message-handling p99 at or below 250.5 ms"},
		{map[string]any{"name": "mem", "metric": "memory_usage", "threshold": 0.07}, "memory above 7% of the limit"},
		{map[string]any{"name": "cpu", "metric": "cpu_usage", "threshold": 0.85}, "process CPU above 85% of all cores"},
		{map[string]any{"name": "mps", "metric": "messages_per_second", "threshold": 1e5}, "messages received per second above 100000"},
	}
	for _, s := range steps {
		if got := configure(s.data).Description; got != s.want {
			t.Errorf("%v: description %q, want %q", s.data, got, s.want)
		}
	}
	// Stored as shown.
	list, _ = f.ctl.AlertConfigs()
	for _, a := range list {
		if a.Name == "error_rate" && a.Description != "at least 30% of messages answered with an error" {
			t.Errorf("stored error_rate rule: %+v", a)
		}
	}
}

// The three default rules' descriptions are the derived ones, so a
// configure_alert on them derives again (the store of an older version
// holds the same text).
func TestDefaultAlertDescriptions(t *testing.T) {
	want := map[string]string{
		"error_rate":    "more than 10% of messages answered with an error",
		"response_time": "message-handling p99 above 5000 ms",
		"memory_usage":  "memory above 90% of the limit",
	}
	for _, a := range defaultAlerts(time.Time{}) {
		if a.Description != want[a.Name] {
			t.Errorf("%s: %q, want %q", a.Name, a.Description, want[a.Name])
		}
	}
}
