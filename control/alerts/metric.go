package alerts

import (
	"maps"
	"slices"
	"time"

	"github.com/sockmon/sockmon/metrics"
)

// The quantities a rule can watch. Each is computed at every evaluation
// from one metrics.Snapshot (the rolling windows and the process
// statistics), from the Sources the engine was given, and, for the two
// rates of counters, from the engine's own samples of those counters over
// the last minute.

// catalogue maps each metric to its description and unit.
var catalogue = map[string]string{
	"error_rate":                      "error replies per message received over the last minute, 0..1",
	"response_time":                   "message-handling p99 over the last minute, milliseconds",
	"response_time_p95":               "message-handling p95 over the last minute, milliseconds",
	"response_time_avg":               "message-handling mean over the last minute, milliseconds",
	"memory_usage":                    "resident memory (Go heap without /proc) as a fraction of the memory limit, 0..1; unknown without a limit",
	"rss_bytes":                       "resident set size, bytes; unknown without /proc",
	"heap_bytes":                      "Go heap in use, bytes",
	"cpu_usage":                       "process CPU as a fraction of all cores over the last sampling interval, 0..1; unknown without /proc",
	"load_average_1m":                 "system load average over 1 minute; unknown without /proc",
	"connections":                     "open WebSocket connections",
	"connections_authenticated":       "open authenticated connections",
	"connections_anonymous":           "open anonymous connections",
	"messages_per_second":             "messages received per second over the last minute",
	"messages_per_minute":             "messages received per minute over the last minute",
	"rejected_connections_per_second": "connections refused before the upgrade (any reason) per second over the last minute",
	"slow_consumer_closes_per_minute": "connections closed for a full outbound queue per minute over the last minute",
	"breaker_open":                    "upstream circuit breakers now open (0 without upstreams)",
	"event_loop_stalled":              "1 when the engine's event-loop heartbeat is older than the liveness timeout, else 0",
}

// Metrics returns the metrics a rule may watch with their descriptions (a
// copy).
func Metrics() map[string]string { return maps.Clone(catalogue) }

// MetricNames returns the metric names, sorted.
func MetricNames() []string {
	names := slices.Collect(maps.Keys(catalogue))
	slices.Sort(names)
	return names
}

// Sources are where the engine reads what the metrics snapshot does not
// hold. Every function must be safe for concurrent use and must not block;
// a nil one makes its metric unknown (or 0, for breaker_open).
type Sources struct {
	// Heartbeat is the engine's last event-loop heartbeat; the zero time
	// means "not serving" (before Serve, while draining), which is not a
	// stall.
	Heartbeat func() time.Time
	// HeartbeatTimeout is the age over which the heartbeat counts as
	// stalled (control's liveness timeout).
	HeartbeatTimeout time.Duration
	// SlowConsumers counts the connections closed for a full outbound
	// queue since start.
	SlowConsumers func() uint64
	// OpenBreakers counts the circuit breakers now open.
	OpenBreakers func() int
	// MemoryLimit is the memory limit of memory_usage, in bytes; 0 or
	// negative makes memory_usage unknown.
	MemoryLimit int64
}

// Value is one metric's value at an evaluation. When Known is false, the
// rule cannot be judged and Why says why; the alert does not fire.
type Value struct {
	V     float64 `json:"value"`
	Known bool    `json:"known"`
	Why   string  `json:"why,omitempty"`
}

// counterSample is one reading of the counters whose per-minute rates are
// metrics.
type counterSample struct {
	at       time.Time
	rejected uint64
	slow     uint64
	slowOK   bool
}

// rateWindow is the span of the counter rates.
const rateWindow = time.Minute

// rates keeps the counter samples of the last minute (plus the newest one
// older than that, the base of the rate). Only the evaluation goroutine
// touches it.
type rates struct {
	samples []counterSample
}

// add records s and returns the oldest sample at most rateWindow before it
// (ok false when there is none older than s).
func (r *rates) add(s counterSample) (base counterSample, ok bool) {
	// Drop what the window no longer needs: keep one sample at or before
	// now-rateWindow as the base.
	cut := s.at.Add(-rateWindow)
	i := 0
	for i+1 < len(r.samples) && !r.samples[i+1].at.After(cut) {
		i++
	}
	r.samples = append(r.samples[:0], r.samples[i:]...)
	if len(r.samples) > 0 && s.at.After(r.samples[0].at) {
		base, ok = r.samples[0], true
	}
	r.samples = append(r.samples, s)
	// Bound the slice however often Evaluate is called.
	if len(r.samples) > 4096 {
		r.samples = append(r.samples[:0], r.samples[len(r.samples)-2048:]...)
	}
	return base, ok
}

// values computes every metric from snap and the sources at now.
func (e *Engine) values(snap *metrics.Snapshot, now time.Time) map[string]Value {
	src := &e.cfg.Sources
	w := &snap.Windows[metrics.Window1m]
	p := &snap.Process
	known := func(v float64) Value { return Value{V: v, Known: true} }
	unknown := func(why string) Value { return Value{Why: why} }
	noProc := "no /proc on this system"
	if p.Unavailable != "" {
		noProc = p.Unavailable
	}
	v := map[string]Value{
		"error_rate":                known(w.ErrorRate),
		"response_time":             known(w.Latency.P99Ms),
		"response_time_p95":         known(w.Latency.P95Ms),
		"response_time_avg":         known(w.Latency.AvgMs),
		"heap_bytes":                known(float64(p.HeapInuseBytes)),
		"connections":               known(float64(snap.Connections.Total)),
		"connections_authenticated": known(float64(snap.Connections.Authenticated)),
		"connections_anonymous":     known(float64(snap.Connections.Anonymous)),
		"messages_per_second":       known(w.MessagesReceivedPerSec),
		"messages_per_minute":       known(w.MessagesReceivedPerSec * 60),
	}
	if p.Available {
		v["rss_bytes"] = known(float64(p.RSSBytes))
		v["cpu_usage"] = known(p.CPUFraction)
		v["load_average_1m"] = known(p.Load1)
	} else {
		v["rss_bytes"], v["cpu_usage"], v["load_average_1m"] = unknown(noProc), unknown(noProc), unknown(noProc)
	}
	if src.MemoryLimit > 0 {
		used := p.HeapSysBytes
		if p.Available && p.RSSBytes > 0 {
			used = p.RSSBytes
		}
		v["memory_usage"] = known(float64(used) / float64(src.MemoryLimit))
	} else {
		v["memory_usage"] = unknown("no memory limit is set (--memory-limit, GOMEMLIMIT or a cgroup limit)")
	}
	if src.OpenBreakers != nil {
		v["breaker_open"] = known(float64(src.OpenBreakers()))
	} else {
		v["breaker_open"] = known(0)
	}
	switch {
	case src.Heartbeat == nil:
		v["event_loop_stalled"] = unknown("no engine heartbeat is wired")
	default:
		hb := src.Heartbeat()
		stalled := !hb.IsZero() && src.HeartbeatTimeout > 0 && now.Sub(hb) > src.HeartbeatTimeout
		v["event_loop_stalled"] = known(b2f(stalled))
	}

	s := counterSample{at: now, rejected: snap.Totals.ConnectionsRejected}
	if src.SlowConsumers != nil {
		s.slow, s.slowOK = src.SlowConsumers(), true
	}
	base, ok := e.rates.add(s)
	const warming = "not enough samples yet: the rate needs two evaluations"
	if ok {
		sec := now.Sub(base.at).Seconds()
		v["rejected_connections_per_second"] = known(float64(s.rejected-min(base.rejected, s.rejected)) / sec)
		if s.slowOK && base.slowOK {
			v["slow_consumer_closes_per_minute"] = known(float64(s.slow-min(base.slow, s.slow)) / sec * 60)
		} else {
			v["slow_consumer_closes_per_minute"] = unknown("no slow-consumer counter is wired")
		}
	} else {
		v["rejected_connections_per_second"] = unknown(warming)
		v["slow_consumer_closes_per_minute"] = unknown(warming)
		if !s.slowOK {
			v["slow_consumer_closes_per_minute"] = unknown("no slow-consumer counter is wired")
		}
	}
	return v
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
