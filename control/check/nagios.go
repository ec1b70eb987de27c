package check

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// statusLineLimit is the length the Monitoring Plugins guidelines want the
// first line's text within (the Monitoring Plugins development guidelines).
const statusLineLimit = 80

// WriteNagios writes r as the Monitoring Plugins development guidelines
// ask of a plugin, for the exit code int(r.State):
//
//	SOCKMON OK - healthy, 3 connections, p99 1.2ms, health 4ms | response_time=4.1ms;1000;5000;0; ...
//
// verbosity is the -v level:
//
//	0  one line; its text kept within 80 characters (problems are never
//	   cut); all perfdata on it
//	1  one line with every fact: error and message rates, canary steps
//	2  as 1, then one line per finding, then "| " and the perfdata of the
//	   measures marked Extra (the first line keeps the others)
//	3  as 2, plus the configuration in force and full error texts
//
// Text never contains "|", which would start perfdata.
func WriteNagios(w io.Writer, r *Result, verbosity int) error {
	var b strings.Builder
	prefix := "SOCKMON " + r.State.String() + " - "
	limit := 0
	if verbosity <= 0 {
		limit = statusLineLimit - len(prefix)
	}
	b.WriteString(prefix)
	b.WriteString(clean(r.Summary(limit)))
	var main, extra []Measure
	for _, m := range r.Measures {
		if m.Extra && verbosity >= 2 {
			extra = append(extra, m)
		} else {
			main = append(main, m)
		}
	}
	if len(main) > 0 {
		b.WriteString(" | ")
		b.WriteString(Perfdata(main))
	}
	b.WriteByte('\n')
	if verbosity >= 2 {
		for _, l := range r.detailLines() {
			fmt.Fprintf(&b, "%s: %s\n", l[0], clean(l[1]))
		}
		if verbosity >= 3 {
			for _, l := range r.configLines() {
				fmt.Fprintf(&b, "%s: %s\n", l[0], clean(l[1]))
			}
		}
		if len(extra) > 0 {
			// Nagios joins the two perfdata parts without a space: this
			// part starts with one.
			b.WriteString("| ")
			b.WriteString(Perfdata(extra))
			b.WriteByte('\n')
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// configLines are -v 3's diagnosis: the configuration in force and the
// full errors.
func (r *Result) configLines() [][2]string {
	var ls [][2]string
	add := func(label, format string, a ...any) { ls = append(ls, [2]string{label, fmt.Sprintf(format, a...)}) }
	names := make([]string, 0, len(r.StatusStates))
	for s := range r.StatusStates {
		names = append(names, s)
	}
	slices.SortFunc(names, func(a, b string) int { return slices.Index(statuses, a) - slices.Index(statuses, b) })
	var m []string
	for _, s := range names {
		m = append(m, s+" "+r.StatusStates[s].String())
	}
	add("config", "timeout %s (expired: %s); status states: %s; detailed view (admin token): %t",
		r.Timeout, r.TimeoutState, strings.Join(m, ", "), r.Detailed)
	add("check", "%s ms in all", formatNumber(durMs(r.Duration)))
	if r.Health.Err != nil {
		add("health error", "%v", r.Health.Err)
	}
	if c := r.Canary; c != nil && c.Err() != nil {
		add("canary error", "%v", c.Err())
	}
	return ls
}

// clean makes s safe for plugin output text: no "|" (perfdata starts
// there) and no line breaks.
func clean(s string) string {
	return strings.ReplaceAll(oneLine(s), "|", "/")
}

// Perfdata formats ms as space-separated perfdata items,
// label=value[UOM];warn;crit;min;max (the Monitoring Plugins development guidelines). An unknown
// value is "U"; a label with a space is quoted.
func Perfdata(ms []Measure) string {
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(' ')
		}
		label := strings.NewReplacer("=", "_", "'", "''").Replace(m.Label)
		if strings.ContainsAny(label, " '") {
			label = "'" + label + "'"
		}
		b.WriteString(label)
		b.WriteByte('=')
		if m.Known {
			b.WriteString(perfNumber(m.Value, m.Unit))
			b.WriteString(m.Unit)
		} else {
			b.WriteByte('U')
		}
		b.WriteByte(';')
		if m.Warning != nil {
			b.WriteString(m.Warning.String())
		}
		b.WriteByte(';')
		if m.Critical != nil {
			b.WriteString(m.Critical.String())
		}
		b.WriteByte(';')
		if m.Min != nil {
			b.WriteString(formatNumber(*m.Min))
		}
		b.WriteByte(';')
		if m.Max != nil {
			b.WriteString(formatNumber(*m.Max))
		}
	}
	return b.String()
}

// perfNumber writes a perfdata value: counts and bytes whole, percentages
// with 4 decimals, times with 3.
func perfNumber(v float64, unit string) string {
	switch unit {
	case "", "B":
		return formatDecimal(v, 0)
	case "%":
		return formatDecimal(v, 4)
	}
	return formatNumber(v)
}
