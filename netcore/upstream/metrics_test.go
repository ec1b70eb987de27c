package upstream

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/sockmon/sockmon/metrics"
)

func TestMetrics(t *testing.T) {
	m, err := metrics.New(metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	srv := newServer(t, "ok")
	s, _ := newTestSet(t, Options{Metrics: m})
	mustReload(t, s, Spec{Name: "ai", URL: srv.URL}, Spec{Name: "db", URL: srv.URL})
	for range 3 {
		wantOK(t, call(t, s, "ai", `1`))
	}
	srv.setMode("500")
	for range 7 { // 5 reach the upstream, then the breaker is open
		call(t, s, "ai", `1`)
	}
	call(t, s, "nope", `1`) // not labelled: the name comes from the client

	scrape := func() string {
		var b bytes.Buffer
		m.WritePrometheus(&b)
		return b.String()
	}
	want := func(page string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !strings.Contains(page, l+"\n") {
				t.Errorf("no line %q", l)
			}
		}
	}
	page := scrape()
	want(page,
		`sockmon_upstream_requests_total{upstream="ai",result="ok"} 3`,
		`sockmon_upstream_requests_total{upstream="ai",result="server_error"} 5`,
		`sockmon_upstream_requests_total{upstream="ai",result="breaker_open"} 2`,
		`sockmon_upstream_requests_total{upstream="ai",result="queue_full"} 0`,
		`sockmon_upstream_requests_total{upstream="db",result="ok"} 0`,
		`sockmon_upstream_request_duration_seconds_count{upstream="ai"} 8`,
		`sockmon_upstream_request_duration_seconds_count{upstream="db"} 0`,
		`sockmon_circuit_breaker_state{breaker="ai",state="open"} 1`,
		`sockmon_circuit_breaker_state{breaker="ai",state="closed"} 0`,
		`sockmon_circuit_breaker_state{breaker="ai",state="half_open"} 0`,
		`sockmon_circuit_breaker_state{breaker="db",state="closed"} 1`,
	)
	for _, r := range resultNames {
		want(page, `sockmon_upstream_requests_total{upstream="db",result="`+r+`"} 0`)
	}
	if strings.Contains(page, "nope") {
		t.Error("an unknown service name became a label")
	}

	// Removed, its series stay and read 0; added again, they count on.
	mustReload(t, s, Spec{Name: "db", URL: srv.URL})
	want(scrape(), `sockmon_circuit_breaker_state{breaker="ai",state="open"} 0`)
	srv.setMode("ok")
	mustReload(t, s, Spec{Name: "db", URL: srv.URL}, Spec{Name: "ai", URL: srv.URL})
	wantOK(t, call(t, s, "ai", `1`))
	page = scrape()
	want(page,
		`sockmon_upstream_requests_total{upstream="ai",result="ok"} 4`,
		`sockmon_circuit_breaker_state{breaker="ai",state="closed"} 1`,
	)

	problems, err := promlint.New(strings.NewReader(page)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
