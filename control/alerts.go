package control

import (
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Alert rules are stored and listed here; evaluating them (pending, firing,
// resolved, notifications) is the alerts engine's job (roadmap step 2), which
// reads the same rules.

// AlertConfig is one alert rule: fire when Metric Operator Threshold has
// held for ForMs.
type AlertConfig struct {
	// Name identifies the rule ([a-z0-9_.-], at most 64 bytes).
	Name string `json:"name"`
	// Metric is one of AlertMetrics().
	Metric string `json:"metric"`
	// Operator is one of ">", ">=", "<", "<=".
	Operator  string  `json:"operator"`
	Threshold float64 `json:"threshold"`
	// ForMs is how long the condition must hold, in milliseconds.
	ForMs    int64  `json:"forMs"`
	Severity string `json:"severity"`
	Enabled  bool   `json:"enabled"`
	// Description says what the rule watches, for people. Unless an
	// operator set one, it is derived from Metric, Operator and Threshold
	// (describeAlert) and follows them when they change.
	Description string    `json:"description,omitempty"`
	UpdatedAt   time.Time `json:"updatedAt"`
	UpdatedBy   string    `json:"updatedBy,omitempty"`
}

// AlertMetrics returns the quantities a rule may watch, with their units
// (a copy: callers may keep or change it).
func AlertMetrics() map[string]string { return maps.Clone(alertMetrics) }

var alertMetrics = map[string]string{
	"error_rate":          "error replies per message received over the last minute, 0..1",
	"response_time":       "message-handling p99 over the last minute, milliseconds",
	"memory_usage":        "resident memory as a fraction of the memory limit, 0..1",
	"connections":         "open connections",
	"messages_per_second": "messages received per second over the last minute",
	"cpu_usage":           "process CPU as a fraction of all cores, 0..1",
}

var (
	alertOperators  = []string{">", ">=", "<", "<="}
	alertSeverities = []string{"info", "warning", "critical"}
	alertNameRE     = regexp.MustCompile(`^[a-z0-9_.-]{1,64}$`)
)

// defaultAlerts are the seed's three rules, written on first start, with
// derived descriptions ("more than 10% of messages answered with an error").
func defaultAlerts(now time.Time) []AlertConfig {
	const fiveMin = int64(5 * time.Minute / time.Millisecond)
	rules := []AlertConfig{
		{Name: "error_rate", Metric: "error_rate", Operator: ">", Threshold: 0.1, ForMs: fiveMin, Severity: "warning", Enabled: true},
		{Name: "response_time", Metric: "response_time", Operator: ">", Threshold: 5000, ForMs: fiveMin, Severity: "warning", Enabled: true},
		{Name: "memory_usage", Metric: "memory_usage", Operator: ">", Threshold: 0.9, ForMs: fiveMin, Severity: "critical", Enabled: true},
	}
	for i := range rules {
		rules[i].Description = describeAlert(rules[i])
		rules[i].UpdatedAt, rules[i].UpdatedBy = now, "default"
	}
	return rules
}

// describeAlert is the description a rule gets unless an operator writes
// one: its condition in words, the threshold in the metric's unit
// (fractions as percentages).
func describeAlert(a AlertConfig) string {
	var above, more string
	switch a.Operator {
	case ">":
		above, more = "above", "more than"
	case ">=":
		above, more = "at or above", "at least"
	case "<":
		above, more = "below", "less than"
	case "<=":
		above, more = "at or below", "at most"
	default:
		return ""
	}
	num := func(v float64) string { return strconv.FormatFloat(math.Round(v*1e6)/1e6, 'f', -1, 64) }
	pct := func(v float64) string { return num(v*100) + "%" }
	switch a.Metric {
	case "error_rate":
		return more + " " + pct(a.Threshold) + " of messages answered with an error"
	case "response_time":
		return "message-handling p99 " + above + " " + num(a.Threshold) + " ms"
	case "memory_usage":
		return "memory " + above + " " + pct(a.Threshold) + " of the limit"
	case "connections":
		return "open connections " + above + " " + num(a.Threshold)
	case "messages_per_second":
		return "messages received per second " + above + " " + num(a.Threshold)
	case "cpu_usage":
		return "process CPU " + above + " " + pct(a.Threshold) + " of all cores"
	}
	return ""
}

// ConfigureAlertRequest is the data of configure_alert. Name is required;
// for a new rule Metric and Threshold are too. Fields left out keep the
// rule's current value (or the default: operator ">", 5 minutes, severity
// "warning", enabled). Description left out keeps an operator's text, and
// a derived one (see describeAlert) is derived again from the changed
// rule; "" goes back to the derived text. Delete removes the rule.
type ConfigureAlertRequest struct {
	Name        string   `json:"name"`
	Metric      *string  `json:"metric"`
	Operator    *string  `json:"operator"`
	Threshold   *float64 `json:"threshold"`
	ForMs       *int64   `json:"forMs"`
	Severity    *string  `json:"severity"`
	Enabled     *bool    `json:"enabled"`
	Description *string  `json:"description"`
	Delete      bool     `json:"delete"`
}

// apply merges r into cur (the rule as stored, or zero for a new one) and
// checks the result.
func (r *ConfigureAlertRequest) apply(cur AlertConfig, exists bool) (AlertConfig, *Error) {
	derived := cur.Description == "" || cur.Description == describeAlert(cur)
	if !exists {
		cur = AlertConfig{Name: r.Name, Operator: ">", ForMs: int64(5 * time.Minute / time.Millisecond), Severity: "warning", Enabled: true}
		if r.Metric == nil {
			return cur, invalidField("data.metric", "required for a new rule; one of %s", strings.Join(sortedKeys(alertMetrics), ", "))
		}
		if r.Threshold == nil {
			return cur, invalidField("data.threshold", "required for a new rule")
		}
	}
	if r.Metric != nil {
		if _, ok := alertMetrics[*r.Metric]; !ok {
			return cur, invalidField("data.metric", "%q is not one of %s", *r.Metric, strings.Join(sortedKeys(alertMetrics), ", "))
		}
		cur.Metric = *r.Metric
	}
	if r.Operator != nil {
		if !slices.Contains(alertOperators, *r.Operator) {
			return cur, invalidField("data.operator", "%q is not one of %s", *r.Operator, strings.Join(alertOperators, " "))
		}
		cur.Operator = *r.Operator
	}
	if r.Threshold != nil {
		cur.Threshold = *r.Threshold
	}
	if r.ForMs != nil {
		if *r.ForMs < 0 || *r.ForMs > int64(24*time.Hour/time.Millisecond) {
			return cur, invalidField("data.forMs", "%d is not between 0 and 86400000 (24 h)", *r.ForMs)
		}
		cur.ForMs = *r.ForMs
	}
	if r.Severity != nil {
		if !slices.Contains(alertSeverities, *r.Severity) {
			return cur, invalidField("data.severity", "%q is not one of %s", *r.Severity, strings.Join(alertSeverities, ", "))
		}
		cur.Severity = *r.Severity
	}
	if r.Enabled != nil {
		cur.Enabled = *r.Enabled
	}
	if r.Description != nil {
		if len(*r.Description) > 1024 {
			return cur, invalidField("data.description", "%d bytes, at most 1024", len(*r.Description))
		}
		cur.Description = *r.Description
	}
	if cur.Description == "" || (r.Description == nil && derived) {
		cur.Description = describeAlert(cur)
	}
	return cur, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// validateAlertName checks a rule name.
func validateAlertName(name string) *Error {
	if name == "" {
		return invalidField("data.name", "required")
	}
	if !alertNameRE.MatchString(name) {
		return invalidField("data.name", "%q: want 1 to 64 of a-z 0-9 _ . -", name)
	}
	return nil
}
