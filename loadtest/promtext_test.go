package loadtest

import (
	"strings"
	"testing"
)

const promSample = `# HELP sockmon_messages_received_total Messages received.
# TYPE sockmon_messages_received_total counter
sockmon_messages_received_total 1000
# TYPE sockmon_connections gauge
sockmon_connections{auth="authenticated"} 30
sockmon_connections{auth="anonymous"} 12 1700000000000
# TYPE sockmon_message_duration_seconds histogram
sockmon_message_duration_seconds_bucket{kind="echo",le="0.001"} 50
sockmon_message_duration_seconds_bucket{kind="echo",le="0.01"} 90
sockmon_message_duration_seconds_bucket{kind="echo",le="+Inf"} 100
sockmon_message_duration_seconds_bucket{kind="rpc",le="0.001"} 0
sockmon_message_duration_seconds_bucket{kind="rpc",le="0.01"} 0
sockmon_message_duration_seconds_bucket{le="+Inf",kind="rpc"} 0
sockmon_message_duration_seconds_sum{kind="echo"} 0.3
weird{msg="a \"quoted\" } brace"} 7
broken{le="1" 3
nan_metric NaN
`

func TestParsePromText(t *testing.T) {
	p, err := parsePromText(strings.NewReader(promSample))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"sockmon_messages_received_total":      1000,
		"sockmon_connections":                  42,
		"sockmon_message_duration_seconds_sum": 0.3,
		"weird":                                7,
	} {
		if got := p.sums[name]; got != want {
			t.Errorf("%s = %g, want %g", name, got, want)
		}
	}
	if _, ok := p.sums["broken"]; ok {
		t.Error("unterminated label set parsed")
	}
	b := p.buckets["sockmon_message_duration_seconds"]
	if len(b) != 3 || b[0.001] != 50 || b[0.01] != 90 {
		t.Fatalf("buckets %v", b)
	}
	if q, _ := bucketQuantile(0.5, b); q != 0.001 {
		t.Errorf("p50 %g, want 0.001", q)
	}
	if q, _ := bucketQuantile(0.7, b); q < 0.0054 || q > 0.0056 {
		t.Errorf("p70 %g, want 0.0055 (interpolated)", q)
	}
	if q, _ := bucketQuantile(0.99, b); q != 0.01 {
		t.Errorf("p99 in the +Inf bucket: %g, want the highest finite bound", q)
	}
}

func FuzzParsePromText(f *testing.F) {
	f.Add(promSample)
	f.Add(`x{le="1\\"} 1`)
	f.Add("a{b=\"\\")
	f.Fuzz(func(t *testing.T, s string) {
		p, _ := parsePromText(strings.NewReader(s))
		for _, b := range p.buckets {
			bucketQuantile(0.99, b)
		}
	})
}
