package alerts

import (
	"errors"
	"strings"
	"testing"
)

const goodFile = `# rules in version control
rules:
  - name: high_error_rate
    metric: error_rate
    comparison: gt
    threshold: 0.05
    duration: 120000
    severity: warning
    labels: {team: realtime}
    escalate:
      - afterMs: 600000
        level: critical
    notify: [ops-slack, ops-hook]
  - name: overloaded
    metric: connections
    operator: ">="
    threshold: 9000
    forMs: 0
    level: critical
    remediation: shed_load
    maxRemediationMs: 600000
channels:
  ops-slack: {type: slack, urlEnv: OPS_SLACK}
  ops-hook:
    type: webhook
    url: https://hooks.example.com/sockmon
    secretEnv: OPS_HOOK_SECRET
  oncall: {type: pagerduty, routingKeyEnv: ONCALL_KEY}
routes:
  critical: [ops-slack, oncall]
`

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

var goodEnv = env(map[string]string{"OPS_SLACK": "https://hooks.slack.com/services/T/B/X", "OPS_HOOK_SECRET": "s3cret", "ONCALL_KEY": "k"})

func TestParseFile(t *testing.T) {
	f, err := ParseFile("rules.yaml", []byte(goodFile), goodEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Rules) != 2 || f.Rules[0].Operator != ">" || f.Rules[0].ForMs != 120000 || f.Rules[0].Level != LevelWarning ||
		f.Rules[0].Labels["team"] != "realtime" || f.Rules[0].Escalate[0].Level != LevelCritical || !f.Rules[0].Enabled ||
		f.Rules[1].Remediation != ShedLoad || f.Rules[1].ForMs != 0 {
		t.Fatalf("rules %+v", f.Rules)
	}
	if len(f.Channels) != 3 || f.Channels[1].Secret != "s3cret" || f.Channels[2].URL != "https://hooks.slack.com/services/T/B/X" ||
		f.Channels[0].RoutingKey != "k" {
		t.Fatalf("channels %+v", f.Channels)
	}
	if strings.Join(f.Routes[LevelCritical], ",") != "ops-slack,oncall" {
		t.Fatalf("routes %v", f.Routes)
	}
	if err := f.CheckNotify(nil); err != nil {
		t.Fatal(err)
	}
	// JSON is YAML.
	j := `{"rules":[{"name":"conns","metric":"connections","operator":">","threshold":0,"forMs":0,"level":"info"}]}`
	if f, err := ParseFile("rules.json", []byte(j), nil); err != nil || f.Rules[0].Level != LevelInfo {
		t.Fatalf("json: %+v %v", f, err)
	}
}

// A bad file is an error naming the line and the field.
func TestParseFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		line       int
		field      string
		msg        string
	}{
		{"bad level", "rules:\n  - name: a\n    metric: connections\n    threshold: 1\n    level: page\n", 5, "rules[0].level", "not one of"},
		{"unknown field", "rules:\n  - name: a\n    metric: connections\n    threshold: 1\n    levle: warning\n", 5, "rules[0].levle", "unknown field"},
		{"wrong type", "rules:\n  - name: a\n    metric: connections\n    threshold: lots\n", 4, "rules[0].threshold", "wrong type"},
		{"NaN", "rules:\n  - name: a\n    metric: connections\n    threshold: .nan\n", 4, "rules[0].threshold", "finite"},
		{"negative for", "rules:\n  - name: a\n    metric: connections\n    threshold: 1\n    forMs: -5\n", 5, "rules[0].forMs", "between"},
		{"bad escalation", "rules:\n  - name: a\n    metric: connections\n    threshold: 1\n    escalate:\n      - afterMs: 1000\n        level: info\n", 7, "rules[0].escalate[0].level", "does not raise"},
		{"duplicate", "rules:\n  - {name: a, metric: connections, threshold: 1}\n  - {name: a, metric: connections, threshold: 2}\n", 3, "rules[1].name", "already"},
		{"literal secret", "channels:\n  hook:\n    type: webhook\n    url: https://x.example.com\n    secret: hunter2\n", 5, "channels.hook.secret", "environment"},
		{"slack url in the file", "channels:\n  s:\n    type: slack\n    url: https://hooks.slack.com/services/T/B/X\n", 4, "channels.s.url", "secret"},
		{"unset env", "channels:\n  pd:\n    type: pagerduty\n    routingKeyEnv: NOPE\n", 4, "channels.pd.routingKeyEnv", "NOPE is not set"},
		{"bad route level", "routes:\n  page: [slack]\n", 2, "routes.page", "not one of"},
		{"syntax", "rules:\n  - name: a\n   metric: [\n", 0, "", ""},
	} {
		_, err := ParseFile("rules.yaml", []byte(tc.file), goodEnv)
		var fe *FileError
		if !errors.As(err, &fe) {
			t.Errorf("%s: %v, want a *FileError", tc.name, err)
			continue
		}
		if tc.line != 0 && (fe.Line != tc.line || fe.Field != tc.field || !strings.Contains(fe.Message, tc.msg)) {
			t.Errorf("%s: %v (line %d, field %q), want line %d field %s", tc.name, err, fe.Line, fe.Field, tc.line, tc.field)
		}
		if !strings.HasPrefix(err.Error(), "alerts file rules.yaml:") {
			t.Errorf("%s: %q does not name the file and line", tc.name, err)
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "services/T/B/X") {
			t.Errorf("%s: the error shows a secret: %v", tc.name, err)
		}
	}
	f, _ := ParseFile("rules.yaml", []byte("rules:\n  - {name: a, metric: connections, threshold: 1, notify: [nope]}\n"), nil)
	if err := f.CheckNotify([]string{"webhook"}); err == nil || !strings.Contains(err.Error(), `rules[0].notify[0]: channel "nope" is not configured`) {
		t.Fatalf("notify of an unknown channel: %v", err)
	}
}

// ApplyFile: the file's rules overlay the stored ones by name; a file
// whose channel cannot be built changes nothing.
func TestApplyFile(t *testing.T) {
	r := newRig(t, nil)
	r.e.SetStoredRules([]Rule{rule("error_rate", "error_rate", ">", 0.1, 300000, LevelWarning), rule("mine", "connections", ">", 5, 0, LevelInfo)})
	f, err := ParseFile("rules.yaml", []byte("rules:\n  - {name: error_rate, metric: error_rate, threshold: 0.5, level: critical}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.e.ApplyFile(f); err != nil {
		t.Fatal(err)
	}
	rs := r.e.Rules()
	if len(rs) != 2 || rs[0].Threshold != 0.5 || rs[0].Source != SourceFile || rs[1].Source != SourceStore || !r.e.FileRule("error_rate") {
		t.Fatalf("rules %+v", rs)
	}
	bad := &File{Name: "x", Channels: []ChannelConfig{{Name: "hook", Type: TypeWebhook, URL: "ftp://nope"}}}
	if err := r.e.ApplyFile(bad); err == nil {
		t.Fatal("a bad channel applied")
	}
	if rs := r.e.Rules(); rs[0].Threshold != 0.5 {
		t.Fatalf("rules changed by a failed apply: %+v", rs)
	}
}
