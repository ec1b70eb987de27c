package metrics

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func scrape(t testing.TB, m *Metrics) []byte {
	t.Helper()
	var b bytes.Buffer
	m.WritePrometheus(&b)
	return b.Bytes()
}

func parse(t testing.TB, page []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(page))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, page)
	}
	return mfs
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// busyMetrics returns a Metrics with some of everything recorded.
func busyMetrics(t testing.TB) *Metrics {
	t.Helper()
	m, clk := newTestMetrics(t, Options{Version: "1.2.3", Revision: `abc"\def`})
	sh := m.Shard(0)
	for i := range 1000 {
		sh.ObserveMessage(Kind(i%int(numKinds)), time.Duration(i)*37*time.Microsecond)
		sh.MessageReceived(100)
	}
	sh.ObserveHandshake(3 * time.Millisecond)
	sh.MessagesSent(10, 1000)
	sh.MessageError(ErrNotFound)
	sh.RateLimited(ScopeIP)
	m.ConnectionOpened(Authenticated)
	m.ConnectionRejected(RejectOrigin)
	m.ConnectionClosed(Anonymous, InitiatorClient, ReasonNormal)
	m.SetMaintenance(true)
	if err := m.RegisterGauge("sockmon_circuit_breaker_state", `breaker="ai",state="open"`, "Circuit breaker state, one series per state.", func() float64 { return 0 }); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Second)
	m.Sample()
	return m
}

func TestExpositionLintsClean(t *testing.T) {
	page := scrape(t, busyMetrics(t))
	problems, err := promlint.New(bytes.NewReader(page)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestExpositionFormat(t *testing.T) {
	page := scrape(t, busyMetrics(t))
	if len(page) == 0 || page[len(page)-1] != '\n' {
		t.Fatal("page must end with a newline")
	}
	help, typ := map[string]int{}, map[string]int{}
	for line := range strings.SplitSeq(strings.TrimSuffix(string(page), "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "# HELP "):
			help[strings.Fields(line)[2]]++
		case strings.HasPrefix(line, "# TYPE "):
			typ[strings.Fields(line)[2]]++
		case strings.HasPrefix(line, "#"):
			t.Errorf("unexpected comment %q", line)
		}
	}
	mfs := parse(t, page)
	for name, mf := range mfs {
		if help[name] != 1 || typ[name] != 1 {
			t.Errorf("%s: %d HELP and %d TYPE lines, want one each", name, help[name], typ[name])
		}
		if mf.GetHelp() == "" {
			t.Errorf("%s: empty help", name)
		}
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range mf.Metric {
				h := s.GetHistogram()
				bs := h.GetBucket()
				if n := len(bs); n == 0 || !math.IsInf(bs[n-1].GetUpperBound(), 1) || bs[n-1].GetCumulativeCount() != h.GetSampleCount() {
					t.Errorf("%s: the +Inf bucket must be last and equal _count (%d)", name, h.GetSampleCount())
				}
				for i := 1; i < len(bs); i++ {
					if bs[i].GetCumulativeCount() < bs[i-1].GetCumulativeCount() || bs[i].GetUpperBound() <= bs[i-1].GetUpperBound() {
						t.Errorf("%s: buckets not cumulative and ascending at %d", name, i)
					}
				}
			}
		}
	}
	for _, want := range []string{
		"sockmon_connections", "sockmon_message_duration_seconds", "sockmon_messages_received_total",
		"sockmon_messages_sent_total", "sockmon_message_errors_total", "sockmon_connections_rejected_total",
		"sockmon_maintenance_mode", "sockmon_build_info", "sockmon_connections_accepted_total",
		"sockmon_disconnections_total", "sockmon_received_bytes_total", "sockmon_sent_bytes_total",
		"sockmon_rate_limited_total", "sockmon_ready", "sockmon_handshake_duration_seconds",
		"sockmon_message_duration_window_seconds", "sockmon_connection_attempts_total",
		"go_goroutines", "go_gc_duration_seconds", "go_memstats_alloc_bytes", "go_info",
		"process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds",
		"sockmon_circuit_breaker_state",
	} {
		if mfs[want] == nil {
			t.Errorf("family %s missing", want)
		}
	}
	bi := mfs["sockmon_build_info"].Metric[0]
	labels := map[string]string{}
	for _, l := range bi.Label {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["version"] != "1.2.3" || labels["revision"] != `abc"\def` || labels["goversion"] == "" {
		t.Errorf("build info labels %v", labels)
	}
	if v := mfs["sockmon_maintenance_mode"].Metric[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("maintenance mode %v, want 1", v)
	}
}

// TestPreinitialisedSeries checks that every known label combination is
// there from the start, at zero.
func TestPreinitialisedSeries(t *testing.T) {
	m, _ := newTestMetrics(t, Options{})
	mfs := parse(t, scrape(t, m))
	want := map[string]int{
		"sockmon_connections":                     int(numAuths),
		"sockmon_connections_accepted_total":      int(numAuths),
		"sockmon_connections_rejected_total":      int(numRejectReasons),
		"sockmon_disconnections_total":            int(numInitiators) * int(numDisconnectReasons),
		"sockmon_message_errors_total":            int(numErrorCodes),
		"sockmon_rate_limited_total":              int(numScopes),
		"sockmon_message_duration_seconds":        int(numKinds),
		"sockmon_message_duration_window_seconds": int(numRolling) * 5,
	}
	for name, n := range want {
		mf := mfs[name]
		if mf == nil || len(mf.Metric) != n {
			t.Errorf("%s: %v series, want %d", name, mf, n)
		}
	}
}

// TestHistogramBucketsExact compares every `le` bucket with the raw values.
func TestHistogramBucketsExact(t *testing.T) {
	m, _ := newTestMetrics(t, Options{Shards: 8})
	r := rand.New(rand.NewPCG(5, 6))
	var raw []time.Duration
	for i := range 50_000 {
		d := time.Duration(math.Exp(r.Float64() * math.Log(float64(20*time.Second))))
		if i%100 == 0 {
			d = time.Duration(promBucketsMicros[r.IntN(len(promBucketsMicros))]) * time.Microsecond // exactly on a bound
		}
		raw = append(raw, d)
		m.Shard(uint64(i)).ObserveMessage(KindJoin, d)
	}
	mfs := parse(t, scrape(t, m))
	var h *dto.Histogram
	for _, s := range mfs["sockmon_message_duration_seconds"].Metric {
		if labelValue(s, "kind") == "join" {
			h = s.GetHistogram()
		}
	}
	if h == nil || h.GetSampleCount() != uint64(len(raw)) {
		t.Fatalf("join histogram %v, want %d samples", h, len(raw))
	}
	var sum float64
	for _, d := range raw {
		sum += d.Seconds()
	}
	if math.Abs(h.GetSampleSum()-sum) > 1e-6*sum {
		t.Errorf("sum %v, raw sum %v", h.GetSampleSum(), sum)
	}
	for _, b := range h.GetBucket() {
		le := b.GetUpperBound()
		if math.IsInf(le, 1) {
			continue
		}
		leNs := time.Duration(math.Round(le * 1e9))
		var want uint64
		for _, d := range raw {
			if d <= leNs {
				want++
			}
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("le=%v: %d, raw values <= le: %d", le, b.GetCumulativeCount(), want)
		}
	}
}

func TestWindowQuantilesExported(t *testing.T) {
	m, _ := newTestMetrics(t, Options{})
	sh := m.Shard(0)
	for i := 1; i <= 1000; i++ {
		sh.ObserveMessage(KindEcho, time.Duration(i)*time.Microsecond)
	}
	mfs := parse(t, scrape(t, m))
	got := map[string]float64{}
	for _, s := range mfs["sockmon_message_duration_window_seconds"].Metric {
		got[labelValue(s, "window")+"/"+labelValue(s, "stat")] = s.GetGauge().GetValue()
	}
	want := map[string]float64{"1m/p50": 500e-6, "5m/p99": 990e-6, "15m/max": 1000e-6, "1m/p999": 999e-6}
	for k, v := range want {
		if math.Abs(got[k]-v) > 1e-9 {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	m2, _ := newTestMetrics(t, Options{})
	for _, s := range parse(t, scrape(t, m2))["sockmon_message_duration_window_seconds"].Metric {
		if !math.IsNaN(s.GetGauge().GetValue()) {
			t.Errorf("empty window exported %v, want NaN", s.GetGauge().GetValue())
		}
	}
}

func TestRegisterGauge(t *testing.T) {
	m, _ := newTestMetrics(t, Options{})
	ok := func() float64 { return 1 }
	tests := []struct {
		name, metric, labels, help string
		f                          func() float64
		wantErr                    bool
	}{
		{"valid", "sockmon_alerts", `severity="critical",state="firing"`, "Alerts by severity and state.", ok, false},
		{"second series of the family", "sockmon_alerts", `severity="warning",state="firing"`, "Alerts by severity and state.", ok, false},
		{"same series twice", "sockmon_alerts", `severity="warning",state="firing"`, "Alerts by severity and state.", ok, true},
		{"other help for the family", "sockmon_alerts", `severity="info",state="firing"`, "Other.", ok, true},
		{"no prefix", "alerts", "", "Alerts.", ok, true},
		{"camelCase", "sockmon_alertCount", "", "Alerts.", ok, true},
		{"counter suffix", "sockmon_alerts_total", "", "Alerts.", ok, true},
		{"built-in family", "sockmon_connections", `auth="x"`, "Open WebSocket connections by authentication state.", ok, true},
		{"no help", "sockmon_x", "", "", ok, true},
		{"nil func", "sockmon_x", "", "X.", nil, true},
		{"bad labels", "sockmon_x", `a=b`, "X.", ok, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.RegisterGauge(tt.metric, tt.labels, tt.help, tt.f)
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
	if problems, _ := promlint.New(bytes.NewReader(scrape(t, m))).Lint(); len(problems) != 0 {
		t.Errorf("lint after RegisterGauge: %v", problems)
	}
}

// TestScrapeIndependentOfConnections opens 15,000 connections: the page has
// the same series, and no more bytes than the digits of the counters.
func TestScrapeIndependentOfConnections(t *testing.T) {
	m, _ := newTestMetrics(t, Options{})
	series := func() int { return bytes.Count(scrape(t, m), []byte("\n")) }
	before := series()
	for i := range 15_000 {
		m.ConnectionOpened(Auth(i % 2))
	}
	if after := series(); after != before {
		t.Errorf("%d lines with 15000 connections, %d without", after, before)
	}
}

func TestAnnotateEscapesHelp(t *testing.T) {
	if got := escapeHelp("a\\b\nc"); got != `a\\b\nc` {
		t.Errorf("escapeHelp = %q", got)
	}
	if got := quoteLabel("a\"b\\c\nd"); got != `"a\"b\\c\nd"` {
		t.Errorf("quoteLabel = %q", got)
	}
}

func TestFloatFormat(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{{math.NaN(), "NaN"}, {math.Inf(1), "+Inf"}, {math.Inf(-1), "-Inf"}, {0.25, "0.25"}, {1e21, "1e+21"}}
	for _, tt := range tests {
		if got := string(appendFloat(nil, tt.v)); got != tt.want {
			t.Errorf("appendFloat(%v) = %q, want %q", tt.v, got, tt.want)
		}
		if _, err := strconv.ParseFloat(tt.want, 64); err != nil {
			t.Errorf("%q does not parse: %v", tt.want, err)
		}
	}
}

// BenchmarkWritePrometheus scrapes with 15,000 connections open.
func BenchmarkWritePrometheus(b *testing.B) {
	m, _ := newTestMetrics(b, Options{})
	for i := range 15_000 {
		m.ConnectionOpened(Auth(i % 2))
		m.Shard(uint64(i)).ObserveMessage(Kind(i%int(numKinds)), time.Duration(i)*time.Microsecond)
	}
	b.ReportAllocs()
	for b.Loop() {
		m.WritePrometheus(discard{})
	}
}

// BenchmarkSnapshot is what a health check or the dashboard pays.
func BenchmarkSnapshot(b *testing.B) {
	m, _ := newTestMetrics(b, Options{})
	for i := range 15_000 {
		m.Shard(uint64(i)).ObserveMessage(Kind(i%int(numKinds)), time.Duration(i)*time.Microsecond)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Snapshot()
	}
}
