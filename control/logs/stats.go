package logs

import (
	"context"
	"log/slog"
	"sort"
	"time"

	"github.com/sockmon/sockmon/metrics"
)

// DefaultStatsInterval is the period of the connection_stats line.
const DefaultStatsInterval = time.Minute

// StatsMessage is the message of the periodic line, so that
// `grep connection_stats logs/combined.log` finds them all.
const StatsMessage = "connection_stats"

// ConnectionStats is one connection_stats line: the connections now, and
// what happened since the previous line (the counts), with latency and
// error rate over the last minute.
type ConnectionStats struct {
	// IntervalMs is the time the counts cover.
	IntervalMs  int64                    `json:"intervalMs"`
	Connections metrics.ConnectionCounts `json:"connections"`
	Accepted    uint64                   `json:"accepted"`
	Closed      uint64                   `json:"closed"`
	// Rejected counts refused upgrades, by the reason label of
	// sockmon_connections_rejected_total (reasons with none left out).
	Rejected         uint64            `json:"rejected"`
	RejectedByReason map[string]uint64 `json:"rejectedByReason"`
	MessagesReceived uint64            `json:"messagesReceived"`
	MessagesSent     uint64            `json:"messagesSent"`
	MessagesPerSec   float64           `json:"messagesPerSec"`
	// Errors counts error replies, by code (codes with none left out).
	Errors       uint64            `json:"errors"`
	ErrorsByCode map[string]uint64 `json:"errorsByCode"`
	// ErrorRate, P95Ms and P99Ms cover the last minute.
	ErrorRate float64 `json:"errorRate"`
	P95Ms     float64 `json:"p95Ms"`
	P99Ms     float64 `json:"p99Ms"`
	// Memory and goroutines from the last process sample.
	RSSBytes       uint64 `json:"rssBytes"`
	HeapInuseBytes uint64 `json:"heapInuseBytes"`
	Goroutines     int    `json:"goroutines"`
	// CloseLinesSuppressed counts close lines over CloseLog's rate.
	CloseLinesSuppressed uint64 `json:"closeLinesSuppressed"`
}

// StatsOptions configures a StatsReporter. Metrics and Logger are
// required.
type StatsOptions struct {
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// Interval is the period of the line. Default DefaultStatsInterval.
	Interval time.Duration
	// Closes, when set, has its suppressed lines counted in each line.
	Closes *CloseLog
}

// StatsReporter writes the connection_stats line. Create it with
// NewStatsReporter; Run writes the line every interval until its context
// ends. Stats and Log may also be called directly (not concurrently with
// each other or with Run).
type StatsReporter struct {
	o     StatsOptions
	prev  metrics.Totals
	prevT time.Time
}

// NewStatsReporter returns a reporter whose first line covers the time
// since this call.
func NewStatsReporter(o StatsOptions) *StatsReporter {
	if o.Interval <= 0 {
		o.Interval = DefaultStatsInterval
	}
	snap := o.Metrics.Snapshot()
	return &StatsReporter{o: o, prev: snap.Totals, prevT: snap.Time}
}

// Stats takes a metrics snapshot and returns the line's content, counting
// from the previous call.
func (r *StatsReporter) Stats() ConnectionStats {
	snap := r.o.Metrics.Snapshot()
	t, p := &snap.Totals, &r.prev
	w := &snap.Windows[metrics.Window1m]
	span := snap.Time.Sub(r.prevT)
	s := ConnectionStats{
		IntervalMs:       span.Milliseconds(),
		Connections:      snap.Connections,
		Accepted:         t.ConnectionsAccepted - p.ConnectionsAccepted,
		Closed:           t.Disconnections - p.Disconnections,
		Rejected:         t.ConnectionsRejected - p.ConnectionsRejected,
		RejectedByReason: deltas(t.RejectedByReason, p.RejectedByReason),
		MessagesReceived: t.MessagesReceived - p.MessagesReceived,
		MessagesSent:     t.MessagesSent - p.MessagesSent,
		Errors:           t.MessageErrors - p.MessageErrors,
		ErrorsByCode:     deltas(t.ErrorsByCode, p.ErrorsByCode),
		ErrorRate:        w.ErrorRate,
		P95Ms:            w.Latency.P95Ms,
		P99Ms:            w.Latency.P99Ms,
		RSSBytes:         snap.Process.RSSBytes,
		HeapInuseBytes:   snap.Process.HeapInuseBytes,
		Goroutines:       snap.Process.Goroutines,
	}
	if sec := span.Seconds(); sec > 0 {
		s.MessagesPerSec = float64(s.MessagesReceived) / sec
	}
	if r.o.Closes != nil {
		s.CloseLinesSuppressed = r.o.Closes.TakeSuppressed()
	}
	r.prev, r.prevT = snap.Totals, snap.Time
	return s
}

// deltas returns cur minus prev for the keys that grew.
func deltas(cur, prev map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range cur {
		if d := v - prev[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// Log writes one connection_stats line at info.
func (r *StatsReporter) Log() {
	s := r.Stats()
	r.o.Logger.LogAttrs(context.Background(), slog.LevelInfo, StatsMessage,
		slog.Int64("intervalMs", s.IntervalMs),
		slog.Group("connections",
			slog.Int64("total", s.Connections.Total),
			slog.Int64("authenticated", s.Connections.Authenticated),
			slog.Int64("anonymous", s.Connections.Anonymous),
			slog.Uint64("accepted", s.Accepted),
			slog.Uint64("closed", s.Closed)),
		slog.Group("rejected", append([]any{slog.Uint64("total", s.Rejected)}, countAttrs(s.RejectedByReason)...)...),
		slog.Group("messages",
			slog.Uint64("received", s.MessagesReceived),
			slog.Uint64("sent", s.MessagesSent),
			slog.Float64("perSec", round3(s.MessagesPerSec))),
		slog.Group("errors", append([]any{slog.Uint64("total", s.Errors), slog.Float64("rate1m", round3(s.ErrorRate))},
			countAttrs(s.ErrorsByCode)...)...),
		slog.Group("latencyMs", slog.Float64("p95", s.P95Ms), slog.Float64("p99", s.P99Ms)),
		slog.Group("memory", slog.Uint64("rssBytes", s.RSSBytes), slog.Uint64("heapInuseBytes", s.HeapInuseBytes)),
		slog.Int("goroutines", s.Goroutines),
		slog.Uint64("closeLinesSuppressed", s.CloseLinesSuppressed),
	)
}

// countAttrs turns counts into attributes, sorted by key.
func countAttrs(m map[string]uint64) []any {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = slog.Uint64(k, m[k])
	}
	return out
}

func round3(f float64) float64 {
	return float64(int64(f*1000+0.5)) / 1000
}

// Run writes the line every interval until ctx ends. It returns when ctx
// ends; the caller owns the goroutine it runs on.
func (r *StatsReporter) Run(ctx context.Context) {
	t := time.NewTicker(r.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.Log()
		case <-ctx.Done():
			return
		}
	}
}
