package loadtest

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

// The server-side metrics a scrape reads (their names are fixed: see the
// README's metrics section).
const (
	metricReceived    = "sockmon_messages_received_total"
	metricSent        = "sockmon_messages_sent_total"
	metricErrors      = "sockmon_message_errors_total"
	metricConnections = "sockmon_connections"
	metricDuration    = "sockmon_message_duration_seconds"
	metricCPU         = "process_cpu_seconds_total"
	metricRSS         = "process_resident_memory_bytes"
)

// scrapeResult is one parsed /metrics response, or the reason there is none.
type scrapeResult struct {
	samples *promSamples
	err     error
}

// scrapeSet holds the scrapes of a run: before dialling, at the start and at
// the end of the measured phase.
type scrapeSet struct {
	before, start, end *scrapeResult
}

// scrape fetches and parses url within 5 seconds.
func scrape(ctx context.Context, url string) *scrapeResult {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return &scrapeResult{err: err}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return &scrapeResult{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &scrapeResult{err: fmt.Errorf("GET %s: status %d", url, resp.StatusCode)}
	}
	samples, err := parsePromText(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &scrapeResult{err: fmt.Errorf("read %s: %w", url, err)}
	}
	return &scrapeResult{samples: samples}
}

// sum adds up every sample of the metric name over its label sets; ok is
// false when the scrape failed or has no such metric.
func (s *scrapeResult) sum(name string) (float64, bool) {
	if s == nil || s.samples == nil {
		return 0, false
	}
	v, ok := s.samples.sums[name]
	return v, ok
}

// buckets returns the cumulative bucket counts of a histogram, summed over
// its label sets, by upper bound.
func (s *scrapeResult) buckets(name string) map[float64]float64 {
	if s == nil || s.samples == nil {
		return nil
	}
	return s.samples.buckets[name]
}

// ServerReport is the server's own view over the measured phase, from its
// /metrics (--metrics-url). Counter fields are increases over the measured
// phase; RSS is read before dialling and at the end of the measured phase.
type ServerReport struct {
	MetricsURL   string   `json:"metrics_url"`
	ScrapeErrors []string `json:"scrape_errors,omitempty"`
	// MissingMetrics names metrics a successful scrape did not have: the
	// fields computed from them are 0 and are not to be read as zero.
	MissingMetrics        []string       `json:"missing_metrics,omitempty"`
	MessagesReceived      float64        `json:"messages_received"`
	MessagesSent          float64        `json:"messages_sent"`
	MessageErrors         float64        `json:"message_errors"`
	ConnectionsAtEnd      float64        `json:"connections_at_end"`
	CPUSeconds            float64        `json:"cpu_seconds"`
	CPUPerMessageUS       float64        `json:"cpu_per_message_us"`
	RSSBeforeBytes        float64        `json:"rss_before_bytes"`
	RSSAfterBytes         float64        `json:"rss_after_bytes"`
	RSSPerConnectionBytes float64        `json:"rss_per_connection_bytes"`
	Latency               *ServerLatency `json:"latency_ms,omitempty"`
}

// ServerLatency is estimated from the increase of the server's
// sockmon_message_duration_seconds buckets, interpolated as Prometheus's
// histogram_quantile does.
type ServerLatency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
}

func (ss scrapeSet) report(url string) *ServerReport {
	r := &ServerReport{MetricsURL: url}
	for _, s := range []*scrapeResult{ss.before, ss.start, ss.end} {
		if s != nil && s.err != nil {
			r.ScrapeErrors = append(r.ScrapeErrors, s.err.Error())
		}
	}
	// value reads name from s, noting it as missing when s parsed but has
	// no such metric (a failed scrape is already in ScrapeErrors).
	value := func(s *scrapeResult, name string) (float64, bool) {
		v, ok := s.sum(name)
		if !ok && s != nil && s.err == nil && !slices.Contains(r.MissingMetrics, name) {
			r.MissingMetrics = append(r.MissingMetrics, name)
		}
		return v, ok
	}
	delta := func(name string) float64 {
		a, ok1 := value(ss.start, name)
		b, ok2 := value(ss.end, name)
		if !ok1 || !ok2 {
			return 0
		}
		return b - a
	}
	r.MessagesReceived = delta(metricReceived)
	r.MessagesSent = delta(metricSent)
	r.MessageErrors = delta(metricErrors)
	r.CPUSeconds = delta(metricCPU)
	if r.MessagesReceived > 0 {
		r.CPUPerMessageUS = r.CPUSeconds * 1e6 / r.MessagesReceived
	}
	r.ConnectionsAtEnd, _ = value(ss.end, metricConnections)
	r.RSSBeforeBytes, _ = value(ss.before, metricRSS)
	r.RSSAfterBytes, _ = value(ss.end, metricRSS)
	if r.ConnectionsAtEnd > 0 && r.RSSBeforeBytes > 0 && r.RSSAfterBytes > 0 {
		r.RSSPerConnectionBytes = (r.RSSAfterBytes - r.RSSBeforeBytes) / r.ConnectionsAtEnd
	}
	if a, b := ss.start.buckets(metricDuration), ss.end.buckets(metricDuration); len(b) > 0 {
		d := make(map[float64]float64, len(b))
		for le, v := range b {
			d[le] = v - a[le]
		}
		if q50, ok := bucketQuantile(0.5, d); ok {
			q90, _ := bucketQuantile(0.9, d)
			q99, _ := bucketQuantile(0.99, d)
			r.Latency = &ServerLatency{P50: q50 * 1000, P90: q90 * 1000, P99: q99 * 1000}
		}
	}
	return r
}

// bucketQuantile estimates quantile q from cumulative buckets by linear
// interpolation within the bucket that holds it, as histogram_quantile does.
func bucketQuantile(q float64, cum map[float64]float64) (float64, bool) {
	les := make([]float64, 0, len(cum))
	for le := range cum {
		les = append(les, le)
	}
	sort.Float64s(les)
	if len(les) == 0 {
		return 0, false
	}
	total := cum[les[len(les)-1]]
	if total <= 0 {
		return 0, false
	}
	rank := q * total
	prevLE, prevCount := 0.0, 0.0
	for _, le := range les {
		c := cum[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				return prevLE, true
			}
			if c == prevCount {
				return le, true
			}
			return prevLE + (le-prevLE)*(rank-prevCount)/(c-prevCount), true
		}
		prevLE, prevCount = le, c
	}
	return prevLE, true
}

func (sv *ServerReport) writeText(p func(string, ...any)) {
	p("server (%s): %.0f received, %.0f sent, %.0f errors, %.2f CPU-s, %.1f µs CPU per message\n",
		sv.MetricsURL, sv.MessagesReceived, sv.MessagesSent, sv.MessageErrors, sv.CPUSeconds, sv.CPUPerMessageUS)
	p("  connections at end %.0f, RSS %.1f MiB -> %.1f MiB", sv.ConnectionsAtEnd, sv.RSSBeforeBytes/(1<<20), sv.RSSAfterBytes/(1<<20))
	if sv.RSSPerConnectionBytes > 0 {
		p(" (%.0f B per connection)", sv.RSSPerConnectionBytes)
	}
	p("\n")
	if l := sv.Latency; l != nil {
		p("  server-side latency (ms, from histogram buckets): p50 %.3f p90 %.3f p99 %.3f\n", l.P50, l.P90, l.P99)
	}
	if len(sv.ScrapeErrors) > 0 {
		p("  scrape errors: %s\n", strings.Join(sv.ScrapeErrors, "; "))
	}
	if len(sv.MissingMetrics) > 0 {
		p("  not in the server's /metrics (figures from them are missing, not zero): %s\n", strings.Join(sv.MissingMetrics, ", "))
	}
}
