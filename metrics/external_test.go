package metrics

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func TestRegisterCounter(t *testing.T) {
	m, _ := newTestMetrics(t, Options{})
	const help = "Calls to upstream services, by upstream and result."
	tests := []struct {
		name, metric, labels, help string
		wantErr                    bool
	}{
		{"valid", "sockmon_upstream_requests_total", `upstream="ai",result="ok"`, help, false},
		{"second series of the family", "sockmon_upstream_requests_total", `upstream="ai",result="timeout"`, help, false},
		{"same series twice", "sockmon_upstream_requests_total", `upstream="ai",result="ok"`, help, true},
		{"other help for the family", "sockmon_upstream_requests_total", `upstream="b",result="ok"`, "Other.", true},
		{"no _total", "sockmon_upstream_requests", "", "X.", true},
		{"no prefix", "upstream_requests_total", "", "X.", true},
		{"camelCase", "sockmon_upstreamRequests_total", "", "X.", true},
		{"built-in family", "sockmon_messages_received_total", "", "Messages received from clients.", true},
		{"no help", "sockmon_x_total", "", "", true},
		{"bad labels", "sockmon_x_total", `a=b`, "X.", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := m.RegisterCounter(tt.metric, tt.labels, tt.help)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && c == nil {
				t.Fatal("nil counter without an error")
			}
		})
	}
	if err := m.RegisterGauge("sockmon_upstream_requests_total", "", help, func() float64 { return 0 }); err == nil {
		t.Error("RegisterGauge joined a counter family")
	}
}

func TestRegisterHistogram(t *testing.T) {
	m, _ := newTestMetrics(t, Options{})
	const help = "Time of calls to upstream services, by upstream."
	tests := []struct {
		name, metric, labels, help string
		buckets                    []float64
		wantErr                    bool
	}{
		{"valid", "sockmon_upstream_request_duration_seconds", `upstream="ai"`, help, nil, false},
		{"second series", "sockmon_upstream_request_duration_seconds", `upstream="b"`, help, nil, false},
		{"same series twice", "sockmon_upstream_request_duration_seconds", `upstream="b"`, help, nil, true},
		{"own buckets", "sockmon_reply_size_bytes", "", "Reply sizes.", []float64{100, 1000, 10000}, false},
		{"le label", "sockmon_x_seconds", `le="1"`, "X.", nil, true},
		{"le label after another", "sockmon_x_seconds", `a="b", le="1"`, "X.", nil, true},
		{"label ending in le is fine", "sockmon_y_seconds", `scale="1"`, "Y.", nil, false},
		{"_total suffix", "sockmon_x_seconds_total", "", "X.", nil, true},
		{"_count suffix", "sockmon_x_count", "", "X.", nil, true},
		{"unsorted buckets", "sockmon_x_seconds", "", "X.", []float64{1, 0.5}, true},
		{"duplicate bucket", "sockmon_x_seconds", "", "X.", []float64{1, 1}, true},
		{"empty buckets", "sockmon_x_seconds", "", "X.", []float64{}, true},
		{"built-in histogram", "sockmon_message_duration_seconds", `kind="x"`, "Time to handle a client message, by message kind.", nil, true},
		{"counter family", "sockmon_upstream_request_duration_seconds", `upstream="c"`, "Other.", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := m.RegisterHistogram(tt.metric, tt.labels, tt.help, tt.buckets)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && h == nil {
				t.Fatal("nil histogram without an error")
			}
		})
	}
	// A gauge of the same name and help must not join the histogram family.
	if err := m.RegisterGauge("sockmon_upstream_request_duration_seconds", `upstream="z"`, help, func() float64 { return 0 }); err == nil {
		t.Error("RegisterGauge joined a histogram family")
	}
}

func TestExternalExposition(t *testing.T) {
	m, _ := newTestMetrics(t, Options{})
	const chelp, hhelp = "Calls to upstream services, by upstream and result.", "Time of calls to upstream services, by upstream."
	var cs []*Counter
	var hs []*Histogram
	for _, up := range []string{"ai", "db"} {
		for _, res := range []string{"ok", "timeout"} {
			c, err := m.RegisterCounter("sockmon_upstream_requests_total", `upstream="`+up+`",result="`+res+`"`, chelp)
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
		}
		h, err := m.RegisterHistogram("sockmon_upstream_request_duration_seconds", `upstream="`+up+`"`, hhelp, nil)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	cs[0].Inc()
	cs[0].Add(2)
	cs[0].Add(-5) // ignored
	hs[0].ObserveDuration(30 * time.Millisecond)
	hs[0].Observe(2)
	hs[0].Observe(100) // above the last bound: only +Inf
	hs[0].Observe(-1)  // dropped

	page := string(scrape(t, m))
	for _, l := range []string{
		`sockmon_upstream_requests_total{upstream="ai",result="ok"} 3`,
		`sockmon_upstream_requests_total{upstream="db",result="timeout"} 0`,
		`sockmon_upstream_request_duration_seconds_bucket{upstream="ai",le="0.025"} 0`,
		`sockmon_upstream_request_duration_seconds_bucket{upstream="ai",le="0.05"} 1`,
		`sockmon_upstream_request_duration_seconds_bucket{upstream="ai",le="2.5"} 2`,
		`sockmon_upstream_request_duration_seconds_bucket{upstream="ai",le="60"} 2`,
		`sockmon_upstream_request_duration_seconds_bucket{upstream="ai",le="+Inf"} 3`,
		`sockmon_upstream_request_duration_seconds_count{upstream="ai"} 3`,
		`sockmon_upstream_request_duration_seconds_sum{upstream="ai"} 102.03`,
		`sockmon_upstream_request_duration_seconds_count{upstream="db"} 0`,
		"# TYPE sockmon_upstream_requests_total counter",
		"# TYPE sockmon_upstream_request_duration_seconds histogram",
		"# HELP sockmon_upstream_request_duration_seconds " + hhelp,
	} {
		if !strings.Contains(page, l+"\n") {
			t.Errorf("no line %q", l)
		}
	}
	for _, fam := range []string{"sockmon_upstream_requests_total", "sockmon_upstream_request_duration_seconds"} {
		if n := strings.Count(page, "# TYPE "+fam+" "); n != 1 {
			t.Errorf("%d TYPE lines for %s, want 1 (family split?)", n, fam)
		}
	}
	problems, err := promlint.New(strings.NewReader(page)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestExternalConcurrent registers and updates while scraping (-race).
func TestExternalConcurrent(t *testing.T) {
	m, _ := newTestMetrics(t, Options{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			up := string(rune('a' + i))
			c, err := m.RegisterCounter("sockmon_calls_total", `upstream="`+up+`"`, "Calls.")
			if err != nil {
				t.Error(err)
				return
			}
			h, err := m.RegisterHistogram("sockmon_call_duration_seconds", `upstream="`+up+`"`, "Call time.", nil)
			if err != nil {
				t.Error(err)
				return
			}
			for j := range 1000 {
				c.Inc()
				h.Observe(float64(j) / 1000)
			}
		}()
	}
	for range 20 {
		var buf bytes.Buffer
		m.WritePrometheus(&buf)
	}
	wg.Wait()
	page := string(scrape(t, m))
	if !strings.Contains(page, `sockmon_calls_total{upstream="c"} 1000`+"\n") {
		t.Errorf("counter lost updates:\n%s", page)
	}
}
