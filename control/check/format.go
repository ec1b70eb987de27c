package check

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Format is an output format of the check.
type Format string

// The four formats.
const (
	FormatText       Format = "text"       // for people: a verdict line and one line per finding
	FormatJSON       Format = "json"       // everything measured, field names in json.go
	FormatNagios     Format = "nagios"     // Monitoring Plugins output (the Monitoring Plugins development guidelines)
	FormatPrometheus Format = "prometheus" // text exposition for node_exporter's textfile collector
)

// ParseFormat reads text, json, nagios or prometheus.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case FormatText, FormatJSON, FormatNagios, FormatPrometheus:
		return f, nil
	}
	return "", fmt.Errorf("check: format %q is not one of text, json, nagios, prometheus", s)
}

// Write writes r to w in format f. verbosity (0-3) is the Nagios -v level;
// the other formats ignore it.
func Write(w io.Writer, r *Result, f Format, verbosity int) error {
	switch f {
	case FormatJSON:
		return WriteJSON(w, r)
	case FormatNagios:
		return WriteNagios(w, r, verbosity)
	case FormatPrometheus:
		return WritePrometheus(w, r)
	}
	return WriteText(w, r)
}

// Summary is the status text: the problems, most severe first, then facts
// ("healthy", "3 connections", "p99 1.2ms", "health 4ms", "canary 2ms")
// for as long as the text stays within limit bytes. Problems are never
// dropped. limit 0 means no limit, and adds the error rate, the message
// rate and the canary's steps.
func (r *Result) Summary(limit int) string {
	probs := slices.Clone(r.Problems)
	slices.SortStableFunc(probs, func(a, b Problem) int { return cmp.Compare(b.State.severity(), a.State.severity()) })
	var head []string
	for _, p := range probs {
		head = append(head, p.Text)
	}
	text := strings.Join(head, "; ")
	sep := "; "
	if text == "" {
		sep = ""
	}
	for _, f := range r.facts(limit == 0) {
		next := text + sep + f
		if limit > 0 && len(next) > limit {
			break
		}
		text, sep = next, ", "
	}
	return text
}

// facts are the summary's facts in the order they are worth room.
func (r *Result) facts(all bool) []string {
	var fs []string
	h := &r.Health
	if b := h.Body; b != nil {
		// A status that is not OK is already a problem.
		if r.stateOf(b.Status) == OK {
			fs = append(fs, r.statusText())
		}
		fs = append(fs, fmt.Sprintf("%d connections", b.Details.Connections.Total),
			fmt.Sprintf("p99 %sms", formatNumber(b.Details.Performance.P99ResponseTime)))
		if all {
			fs = append(fs, fmt.Sprintf("errors %s%%", formatDecimal(b.Details.Performance.ErrorRate*100, 4)),
				fmt.Sprintf("%s msg/min", formatDecimal(b.Details.Performance.MessagesPerMinute, 0)))
		}
		fs = append(fs, fmt.Sprintf("health %sms", formatNumber(durMs(h.ResponseTime))))
	}
	if c := r.Canary; c != nil {
		switch {
		case c.OK && all:
			var steps []string
			for _, s := range c.Steps {
				steps = append(steps, fmt.Sprintf("%s %sms", s.Name, formatNumber(durMs(s.Duration))))
			}
			fs = append(fs, "canary "+strings.Join(steps, " "))
		case c.OK:
			fs = append(fs, fmt.Sprintf("canary %sms", formatNumber(durMs(c.Total()))))
		case r.canaryRefusalExpected():
			fs = append(fs, fmt.Sprintf("canary refused (HTTP %d)", c.HTTPStatus))
		}
	}
	return fs
}

// detailLines are the findings, one "label: text" per line, that the text
// format and Nagios' long output (-v 2 and up) show.
func (r *Result) detailLines() [][2]string {
	var ls [][2]string
	add := func(label, format string, a ...any) { ls = append(ls, [2]string{label, fmt.Sprintf(format, a...)}) }
	h := &r.Health
	switch {
	case h.TimedOut:
		add("health", "%s %s: no answer within the %s timeout", h.Method, h.URL, r.Timeout)
	case h.Err != nil && h.HTTPStatus != 0:
		add("health", "%s %s: %v", h.Method, h.URL, h.Err)
	case h.Err != nil:
		add("health", "%s %s: %s", h.Method, h.URL, rootCause(h.Err))
	default:
		add("health", "%s %s: HTTP %d in %s ms (server %s ms)", h.Method, h.URL, h.HTTPStatus,
			formatNumber(durMs(h.ResponseTime)), formatNumber(h.Body.ResponseTime))
	}
	if b := h.Body; b != nil {
		reasons := "none"
		if len(b.Reasons) > 0 {
			reasons = strings.Join(b.Reasons, ", ")
		}
		add("status", "%s (reasons: %s) -> %s", b.Status, reasons, r.stateOf(b.Status))
		c, p := b.Details.Connections, b.Details.Performance
		add("connections", "%d (%d authenticated, %d anonymous)", c.Total, c.Authenticated, c.Anonymous)
		add("messages", "%s/min over the last minute; latency avg %s ms, p95 %s ms, p99 %s ms; errors %s%%",
			formatDecimal(p.MessagesPerMinute, 0), formatNumber(p.AvgResponseTime), formatNumber(p.P95ResponseTime),
			formatNumber(p.P99ResponseTime), formatDecimal(p.ErrorRate*100, 4))
		add("uptime", "%s", (time.Duration(b.Uptime) * time.Millisecond).String())
		names := make([]string, 0, len(b.Details.CircuitBreakers))
		for n := range b.Details.CircuitBreakers {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			cb := b.Details.CircuitBreakers[n]
			add("breaker", "%s %s (%d failures)", n, cb.Status, cb.Failures)
		}
	}
	if d := h.Detail; d != nil {
		engine := "ready"
		if !d.Ready {
			engine = "not ready"
		}
		if d.Draining {
			engine += ", draining"
		}
		if d.HeartbeatAgeMs != nil {
			engine += fmt.Sprintf(", heartbeat %s ms ago", formatNumber(*d.HeartbeatAgeMs))
		}
		add("engine", "%s", engine)
		if m := d.Maintenance; m.Enabled {
			add("maintenance", "on since %s, reason %q, drain %t", m.Since.UTC().Format(time.RFC3339), m.Reason, m.Drain)
		}
		s := d.Connections
		add("since start", "%d connections accepted, %d rejected, %d closed, %d slow consumers, %d protocol errors; %d rooms",
			s.Accepted, s.Rejected, s.Closed, s.SlowConsumers, s.ProtocolErrors, s.Rooms)
		if pr := d.Process; pr.Available {
			add("process", "rss %d bytes, heap in use %d bytes, %d goroutines, %d threads, cpu %s%% of %d cores",
				pr.RSSBytes, pr.HeapInuseBytes, pr.Goroutines, pr.Threads, formatDecimal(pr.CPUFraction*100, 1), pr.NumCPU)
		} else {
			add("process", "%d goroutines, heap in use %d bytes", pr.Goroutines, pr.HeapInuseBytes)
		}
	}
	if c := r.Canary; c != nil {
		var steps []string
		for _, s := range c.Steps {
			if s.Err == nil {
				steps = append(steps, fmt.Sprintf("%s %s ms", s.Name, formatNumber(durMs(s.Duration))))
			}
		}
		switch {
		case c.OK:
			add("canary", "%s: %s (close %d); total %s ms", c.URL, strings.Join(steps, ", "), c.CloseCode, formatNumber(durMs(c.Total())))
		case r.canaryRefusalExpected():
			add("canary", "%s: refused with HTTP %d, as a node in %s should", c.URL, c.HTTPStatus, h.Body.Status)
		default:
			done := ""
			if len(steps) > 0 {
				done = " after " + strings.Join(steps, ", ")
			}
			add("canary", "%s: %s failed%s: %s", c.URL, c.FailedStep(), done, rootCause(c.Err()))
		}
	}
	for _, m := range r.Measures {
		if m.Warning == nil && m.Critical == nil {
			continue
		}
		v := "not measured"
		if m.Known {
			v = formatNumber(m.Value) + m.Unit
		}
		add("threshold", "%s %s: %s (warning %s, critical %s)", m.Label, v, m.State, rangeOrNone(m.Warning), rangeOrNone(m.Critical))
	}
	return ls
}

// oneLine replaces line breaks, which only a server's odd status could
// bring, so that each finding stays on its line.
func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}

func rangeOrNone(r *Range) string {
	if r == nil {
		return "none"
	}
	return r.String()
}

// WriteText writes r for people: the verdict and summary on the first
// line, then one line per finding.
func WriteText(w io.Writer, r *Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", r.State, oneLine(r.Summary(0)))
	for _, l := range r.detailLines() {
		fmt.Fprintf(&b, "  %-12s %s\n", l[0], oneLine(l[1]))
	}
	fmt.Fprintf(&b, "  %-12s %s ms in all (timeout %s), exit %d\n", "check", formatNumber(durMs(r.Duration)), r.Timeout, int(r.State))
	_, err := io.WriteString(w, b.String())
	return err
}
