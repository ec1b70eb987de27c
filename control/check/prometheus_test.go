package check

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestPrometheusFormat(t *testing.T) {
	for name, r := range fixtures() {
		var b bytes.Buffer
		if err := WritePrometheus(&b, r); err != nil {
			t.Fatal(err)
		}
		page := b.Bytes()
		problems, err := promlint.New(bytes.NewReader(page)).Lint()
		if err != nil {
			t.Fatalf("%s: promlint: %v\n%s", name, err, page)
		}
		for _, p := range problems {
			t.Errorf("%s: promlint: %s: %s", name, p.Metric, p.Text)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := parser.TextToMetricFamilies(bytes.NewReader(page))
		if err != nil {
			t.Fatalf("%s: does not parse: %v\n%s", name, err, page)
		}
		for n, mf := range mfs {
			if !strings.HasPrefix(n, "sockmon_check_") || mf.GetType() != dto.MetricType_GAUGE || mf.GetHelp() == "" {
				t.Errorf("%s: family %s: type %s, help %q", name, n, mf.GetType(), mf.GetHelp())
			}
			for _, m := range mf.Metric {
				if m.TimestampMs != nil {
					t.Errorf("%s: %s has a timestamp", name, n)
				}
			}
		}
		// Exactly one state is 1, and it is the exit code's.
		ones := 0
		for _, m := range mfs["sockmon_check_state"].GetMetric() {
			if m.GetGauge().GetValue() == 1 {
				ones++
				if got := m.GetLabel()[0].GetValue(); got != strings.ToLower(r.State.String()) {
					t.Errorf("%s: state %s is 1, want %s", name, got, r.State)
				}
			}
		}
		if ones != 1 {
			t.Errorf("%s: %d states are 1", name, ones)
		}
		up := mfs["sockmon_check_health_up"].GetMetric()[0].GetGauge().GetValue()
		if _, has := mfs["sockmon_check_connections"]; (up == 1) != (r.Health.Body != nil) || has != (r.Health.Body != nil) {
			t.Errorf("%s: health_up %v, connections present %t, body %v", name, up, has, r.Health.Body != nil)
		}
		if _, has := mfs["sockmon_check_canary_success"]; has != (r.Canary != nil) {
			t.Errorf("%s: canary_success present %t with canary %v", name, has, r.Canary != nil)
		}
	}
}

func TestPrometheusValues(t *testing.T) {
	var b bytes.Buffer
	_ = WritePrometheus(&b, fixtures()["healthy detailed with canary"])
	for _, want := range []string{
		`sockmon_check_state{state="ok"} 1`,
		`sockmon_check_health_request_duration_seconds 0.0042`,
		`sockmon_check_health_status{status="healthy"} 1`,
		`sockmon_check_health_status{status="maintenance"} 0`,
		`sockmon_check_connections{auth="authenticated"} 120`,
		`sockmon_check_message_error_ratio 0.002`,
		`sockmon_check_message_latency_p99_seconds 0.0011`,
		`sockmon_check_messages_received_per_second 1500`,
		`sockmon_check_server_start_timestamp_seconds 1795780740`,
		`sockmon_check_server_resident_memory_bytes 52428800`,
		`sockmon_check_canary_step_duration_seconds{step="connect"} 0.0012`,
		`sockmon_check_canary_success 1`,
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("no line %q in:\n%s", want, b.String())
		}
	}
}
