package loadtest

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// SLO is one assertion on a report, such as p99<20ms, errors<0.1% or
// rate>=99%.
//
// Metrics: p50, p90, p99, p99.9, max and mean are corrected latency (a
// duration: 20ms, 1.5s, 500us); the same with the prefix "uncorrected_" or
// "connect_" use those distributions. errors takes a percentage (of
// connection attempts plus messages sent) or a count; rate a percentage (of
// the requested rate; fails in a closed loop, which requests none) or
// messages per second; conns a percentage of --conns or a count;
// deliveries (publish mode) a percentage of expected deliveries or a count.
type SLO struct {
	Expr   string
	Metric string
	Op     string
	Value  float64 // milliseconds for latency metrics, percent when Unit is "%"
	Unit   string  // "ms", "%" or ""
}

// SLOResult is an SLO checked against a report.
type SLOResult struct {
	Expr     string  `json:"expr"`
	OK       bool    `json:"ok"`
	Observed float64 `json:"observed"`
	Unit     string  `json:"unit"`
	Detail   string  `json:"detail"`
}

var sloOps = []string{"<=", ">=", "<", ">"}

// ParseSLO parses one --slo expression: METRIC OP VALUE.
func ParseSLO(expr string) (SLO, error) {
	e := strings.ReplaceAll(expr, " ", "")
	i := strings.IndexAny(e, "<>")
	if i <= 0 {
		return SLO{}, fmt.Errorf("loadtest: slo %q: want METRIC<VALUE, METRIC<=VALUE, METRIC>VALUE or METRIC>=VALUE", expr)
	}
	op := e[i : i+1]
	if i+1 < len(e) && e[i+1] == '=' {
		op += "="
	}
	metric := strings.ToLower(e[:i])
	raw := e[i+len(op):]
	if raw == "" {
		return SLO{}, fmt.Errorf("loadtest: slo %q: no value after %s", expr, op)
	}
	s := SLO{Expr: expr, Metric: metric, Op: op}
	switch {
	case isLatencyMetric(metric):
		d, err := time.ParseDuration(raw)
		if err != nil || d < 0 {
			return SLO{}, fmt.Errorf("loadtest: slo %q: %s takes a duration such as 20ms, got %q", expr, metric, raw)
		}
		s.Value, s.Unit = float64(d)/float64(time.Millisecond), "ms"
	case metric == "errors" || metric == "rate" || metric == "conns" || metric == "deliveries":
		num, unit := raw, ""
		if strings.HasSuffix(raw, "%") {
			num, unit = raw[:len(raw)-1], "%"
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			return SLO{}, fmt.Errorf("loadtest: slo %q: %s takes a number or a percentage, got %q", expr, metric, raw)
		}
		s.Value, s.Unit = v, unit
	default:
		return SLO{}, fmt.Errorf("loadtest: slo %q: unknown metric %q (want p50, p90, p99, p99.9, max, mean, "+
			"uncorrected_p99..., connect_p99..., errors, rate, conns, deliveries)", expr, metric)
	}
	return s, nil
}

// ParseSLOs parses every expression and reports all the bad ones at once.
func ParseSLOs(exprs []string) ([]SLO, error) {
	var out []SLO
	var errs []error
	for _, e := range exprs {
		s, err := ParseSLO(e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

func isLatencyMetric(m string) bool {
	m = strings.TrimPrefix(strings.TrimPrefix(m, "uncorrected_"), "connect_")
	switch m {
	case "p50", "p90", "p99", "p99.9", "p999", "max", "mean":
		return true
	}
	return false
}

// EvaluateSLOs checks slos against rep and records the results in rep.SLOs.
// It returns true when every one holds.
func (rep *Report) EvaluateSLOs(slos []SLO) bool {
	rep.SLOs = rep.SLOs[:0]
	allOK := true
	for _, s := range slos {
		res := rep.evaluate(s)
		allOK = allOK && res.OK
		rep.SLOs = append(rep.SLOs, res)
	}
	return allOK
}

// SLOsOK reports whether every evaluated SLO held.
func (rep *Report) SLOsOK() bool {
	for _, r := range rep.SLOs {
		if !r.OK {
			return false
		}
	}
	return true
}

func (rep *Report) evaluate(s SLO) SLOResult {
	res := SLOResult{Expr: s.Expr, Unit: s.Unit}
	observed, ok, why := rep.observe(s)
	if !ok {
		res.Detail = why
		return res
	}
	res.Observed = observed
	switch s.Op {
	case "<":
		res.OK = observed < s.Value
	case "<=":
		res.OK = observed <= s.Value
	case ">":
		res.OK = observed > s.Value
	case ">=":
		res.OK = observed >= s.Value
	}
	res.Detail = strconv.FormatFloat(observed, 'f', -1, 64) + s.Unit
	if s.Unit == "ms" || s.Unit == "%" {
		res.Detail = strconv.FormatFloat(observed, 'f', 3, 64) + s.Unit
	}
	return res
}

// observe returns the value s is checked against, in s's unit, or why there
// is none (which fails the SLO).
func (rep *Report) observe(s SLO) (float64, bool, string) {
	pct := func(num, den float64) (float64, bool, string) {
		if den <= 0 {
			return 0, false, "no denominator (nothing was attempted)"
		}
		return num / den * 100, true, ""
	}
	switch s.Metric {
	case "errors":
		if s.Unit == "%" {
			return rep.Errors.Ratio * 100, true, ""
		}
		return float64(rep.Errors.Total), true, ""
	case "rate":
		if s.Unit == "%" {
			if rep.Messages.RateRatio == nil {
				return 0, false, "no requested rate (closed loop or connect-only); give msg/s instead"
			}
			return *rep.Messages.RateRatio * 100, true, ""
		}
		return rep.Messages.AchievedRate, true, ""
	case "conns":
		if s.Unit == "%" {
			return pct(float64(rep.Connections.Established), float64(rep.Settings.Conns))
		}
		return float64(rep.Connections.Established), true, ""
	case "deliveries":
		if rep.Publish == nil {
			return 0, false, "deliveries need --mode publish"
		}
		if s.Unit == "%" {
			return pct(float64(rep.Publish.Deliveries), float64(rep.Publish.ExpectedDeliveries))
		}
		return float64(rep.Publish.Deliveries), true, ""
	}
	q := rep.Latency.Corrected
	m := s.Metric
	switch {
	case strings.HasPrefix(m, "uncorrected_"):
		q, m = rep.Latency.Uncorrected, strings.TrimPrefix(m, "uncorrected_")
	case strings.HasPrefix(m, "connect_"):
		q, m = rep.Connections.ConnectMS, strings.TrimPrefix(m, "connect_")
	}
	if q.Count == 0 {
		return 0, false, "no samples"
	}
	switch m {
	case "p50":
		return q.P50, true, ""
	case "p90":
		return q.P90, true, ""
	case "p99":
		return q.P99, true, ""
	case "p99.9", "p999":
		return q.P999, true, ""
	case "max":
		return q.Max, true, ""
	case "mean":
		return q.Mean, true, ""
	}
	return 0, false, "unknown metric"
}

// Exit statuses of `sockmon load`.
const (
	ExitOK     = 0
	ExitFailed = 1 // an SLO failed, or no connection could be established
	ExitUsage  = 2
	// ExitRefused: most connections were refused at the upgrade or closed
	// by the server's policy (Report.RefusedByPolicy), SLOs or not.
	ExitRefused     = 3
	ExitInterrupted = 130
)

// ExitCode is the exit status for a finished run whose SLOs were evaluated:
// ExitInterrupted, else ExitRefused, else ExitFailed, else ExitOK.
func (rep *Report) ExitCode() int {
	switch {
	case rep.Interrupted:
		return ExitInterrupted
	case rep.RefusedByPolicy():
		return ExitRefused
	case !rep.SLOsOK(), rep.Connections.Established == 0:
		return ExitFailed
	}
	return ExitOK
}
