package check

import (
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// WritePrometheus writes r in the Prometheus text format, for node_exporter's textfile collector: every family with # HELP
// and # TYPE, names sockmon_check_*, base units (seconds, bytes, _ratio),
// no timestamps, one 0/1 series per state of an enum. Families whose
// value was not measured (the server did not answer, no canary) are left
// out rather than written as NaN, except the ones that say so:
// sockmon_check_state, sockmon_check_health_up and, with a canary,
// sockmon_check_canary_success.
//
// The output passes promtool check metrics; write it to a temporary file
// and rename it into the collector's directory, so the collector never
// reads half a file.
func WritePrometheus(w io.Writer, r *Result) error {
	var p promWriter
	state := make([]promSample, 0, 4)
	for _, st := range []State{OK, Warning, Critical, Unknown} {
		state = append(state, promSample{`state="` + strings.ToLower(st.String()) + `"`, boolFloat(r.State == st)})
	}
	p.family("sockmon_check_state", "State the check ended in, as its exit code says: 1 for that state, 0 for the others.", state...)
	p.gauge("sockmon_check_duration_seconds", "Time the whole check took.", r.Duration.Seconds())
	p.gauge("sockmon_check_timeout_seconds", "Time the check was allowed (-t).", r.Timeout.Seconds())
	p.gauge("sockmon_check_timed_out", "1 when the check ran out of time before it finished.", boolFloat(r.TimedOut))
	p.gauge("sockmon_check_run_timestamp_seconds", "When the check began (Unix time).", float64(r.Start.UnixNano())/1e9)

	h := &r.Health
	b := h.Body
	p.gauge("sockmon_check_health_up", "1 when the health endpoint answered with a sockmon health body, whatever its status.", boolFloat(b != nil))
	if h.HTTPStatus != 0 {
		p.gauge("sockmon_check_health_http_status_code", "HTTP status code of the health answer.", float64(h.HTTPStatus))
	}
	if h.HTTPStatus != 0 && h.Err == nil {
		p.gauge("sockmon_check_health_request_duration_seconds", "Time from sending the health request to reading its answer, as the check saw it.", h.ResponseTime.Seconds())
	}
	if b != nil {
		names := slices.Clone(statuses)
		if !slices.Contains(names, b.Status) {
			names = append(names, b.Status)
		}
		var ss []promSample
		for _, s := range names {
			ss = append(ss, promSample{`status="` + escapeLabel(s) + `"`, boolFloat(b.Status == s)})
		}
		p.family("sockmon_check_health_status", "Health status the server reported: 1 for that status, 0 for the others.", ss...)
		c, perf := b.Details.Connections, b.Details.Performance
		p.family("sockmon_check_connections", "Open WebSocket connections the server reported, by authentication.",
			promSample{`auth="authenticated"`, float64(c.Authenticated)}, promSample{`auth="anonymous"`, float64(c.Anonymous)})
		p.gauge("sockmon_check_message_error_ratio", "Error replies per message received over the server's last minute.", perf.ErrorRate)
		p.gauge("sockmon_check_message_latency_avg_seconds", "Mean message handling latency over the server's last minute.", perf.AvgResponseTime/1000)
		p.gauge("sockmon_check_message_latency_p95_seconds", "95th percentile of message handling latency over the server's last minute.", perf.P95ResponseTime/1000)
		p.gauge("sockmon_check_message_latency_p99_seconds", "99th percentile of message handling latency over the server's last minute.", perf.P99ResponseTime/1000)
		p.gauge("sockmon_check_messages_received_per_second", "Messages received per second over the server's last minute.", perf.MessagesPerMinute/60)
		p.gauge("sockmon_check_health_server_duration_seconds", "Time the server took to build its health answer.", b.ResponseTime/1000)
		if !b.Timestamp.IsZero() {
			start := float64(b.Timestamp.UnixMilli()-b.Uptime) / 1000
			p.gauge("sockmon_check_server_start_timestamp_seconds", "When the server's engine started (Unix time, server clock).", start)
		}
	}
	if d := h.Detail; d != nil {
		if d.Process.Available {
			p.gauge("sockmon_check_server_resident_memory_bytes", "Resident memory of the server process.", float64(d.Process.RSSBytes))
		}
		p.gauge("sockmon_check_server_goroutines", "Goroutines in the server process.", float64(d.Process.Goroutines))
		p.gauge("sockmon_check_server_ready", "1 when the server accepts new clients.", boolFloat(d.Ready))
		p.gauge("sockmon_check_server_maintenance_mode", "1 when the server is in maintenance mode.", boolFloat(d.Maintenance.Enabled))
	}
	if c := r.Canary; c != nil {
		p.gauge("sockmon_check_canary_success", "1 when the canary connected, echoed, pinged and closed cleanly.", boolFloat(c.OK))
		var ss []promSample
		for _, s := range c.Steps {
			if s.Err == nil {
				ss = append(ss, promSample{`step="` + s.Name + `"`, s.Duration.Seconds()})
			}
		}
		if len(ss) > 0 {
			p.family("sockmon_check_canary_step_duration_seconds", "Time of each canary step that succeeded: connect (upgrade), echo, ping, close.", ss...)
		}
	}
	_, err := io.WriteString(w, p.b.String())
	return err
}

type promSample struct {
	labels string
	value  float64
}

// promWriter writes gauge families.
type promWriter struct {
	b strings.Builder
}

func (p *promWriter) gauge(name, help string, v float64) {
	p.family(name, help, promSample{value: v})
}

func (p *promWriter) family(name, help string, samples ...promSample) {
	p.b.WriteString("# HELP " + name + " " + strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(help) + "\n")
	p.b.WriteString("# TYPE " + name + " gauge\n")
	for _, s := range samples {
		p.b.WriteString(name)
		if s.labels != "" {
			p.b.WriteString("{" + s.labels + "}")
		}
		p.b.WriteByte(' ')
		p.b.WriteString(promFloat(s.value))
		p.b.WriteByte('\n')
	}
}

func promFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
