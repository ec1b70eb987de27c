package breaker

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/sockmon/sockmon/metrics"
)

func TestRegisterMetrics(t *testing.T) {
	m, err := metrics.New(metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b, _ := newTestBreaker(t, Config{})
	var cur atomic.Pointer[Breaker]
	cur.Store(b)
	if err := RegisterMetrics(m, "ai", cur.Load); err != nil {
		t.Fatal(err)
	}
	if err := RegisterMetrics(m, `odd"name`, func() *Breaker { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := RegisterMetrics(m, "ai", cur.Load); err == nil {
		t.Error("registering a name twice succeeded")
	}
	scrape := func() string {
		var buf bytes.Buffer
		m.WritePrometheus(&buf)
		return buf.String()
	}
	want := func(page string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !strings.Contains(page, l+"\n") {
				t.Errorf("no line %q in\n%s", l, grepLines(page, StateMetric))
			}
		}
	}
	page := scrape()
	want(page,
		`sockmon_circuit_breaker_state{breaker="ai",state="closed"} 1`,
		`sockmon_circuit_breaker_state{breaker="ai",state="open"} 0`,
		`sockmon_circuit_breaker_state{breaker="ai",state="half_open"} 0`,
		`sockmon_circuit_breaker_state{breaker="odd\"name",state="closed"} 0`,
	)
	if n := strings.Count(page, "# TYPE "+StateMetric+" gauge"); n != 1 {
		t.Errorf("%d TYPE lines for the family, want 1", n)
	}
	trip(t, b)
	want(scrape(),
		`sockmon_circuit_breaker_state{breaker="ai",state="closed"} 0`,
		`sockmon_circuit_breaker_state{breaker="ai",state="open"} 1`,
	)
	cur.Store(nil) // the breaker went away in a reload
	want(scrape(), `sockmon_circuit_breaker_state{breaker="ai",state="open"} 0`)

	problems, err := promlint.New(strings.NewReader(scrape())).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func grepLines(page, substr string) string {
	var out []string
	for _, l := range strings.Split(page, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
