package alerts

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Level is how serious an alert is; it picks the channels (Routes) and is
// the `severity` label of what is sent.
type Level string

// The four levels, lowest first (the seed's multi-level alerting).
const (
	LevelInfo      Level = "info"
	LevelWarning   Level = "warning"
	LevelCritical  Level = "critical"
	LevelEmergency Level = "emergency"
)

// Levels lists the levels, lowest first.
func Levels() []Level { return []Level{LevelInfo, LevelWarning, LevelCritical, LevelEmergency} }

// rank orders levels: 0 for info ... 3 for emergency, -1 for an unknown one.
func (l Level) rank() int { return slices.Index(Levels(), l) }

// Valid reports whether l is one of the four levels.
func (l Level) Valid() bool { return l.rank() >= 0 }

// Remediation is what the engine does, besides notifying, while a rule
// fires.
type Remediation string

// Remediations.
const (
	// NotifyOnly: notifications only (the default).
	NotifyOnly Remediation = "notify_only"
	// ShedLoad: readiness off and new upgrades refused with 503 and
	// Retry-After; connected clients stay.
	ShedLoad Remediation = "shed_load"
	// Maintenance: maintenance mode (no drain); only for emergency rules.
	Maintenance Remediation = "maintenance"
)

// Escalation raises a firing alert's level once it has fired for AfterMs.
type Escalation struct {
	AfterMs int64 `json:"afterMs" yaml:"afterMs"`
	Level   Level `json:"level" yaml:"level"`
}

// Rule is one alert rule: the alert fires when Metric Operator Threshold
// has held for ForMs. Rules are values: the engine keeps its own copy.
type Rule struct {
	// Name identifies the rule ([a-z0-9_.-], at most 64 bytes); it is the
	// alertname label of what is sent.
	Name string `json:"name"`
	// Metric is one of Metrics().
	Metric string `json:"metric"`
	// Operator is one of ">", ">=", "<", "<=".
	Operator  string  `json:"operator"`
	Threshold float64 `json:"threshold"`
	// ForMs is how long the condition must hold before the alert fires.
	ForMs int64 `json:"forMs"`
	// Level is the level the alert fires at. Rules stored before levels
	// existed carry it as "severity", which still loads.
	Level       Level  `json:"level"`
	Enabled     bool   `json:"enabled"`
	Description string `json:"description,omitempty"`
	RunbookURL  string `json:"runbookUrl,omitempty"`
	// Labels are extra labels of the alert (at most MaxLabels); they take
	// part in its identity.
	Labels map[string]string `json:"labels,omitempty"`
	// KeepFiringForMs keeps a firing alert firing until the condition has
	// been clear that long (Prometheus's keep_firing_for).
	KeepFiringForMs int64 `json:"keepFiringForMs,omitempty"`
	// Escalate raises the level while the alert keeps firing, in order.
	Escalate []Escalation `json:"escalate,omitempty"`
	// Remediation applied while the alert fires; empty means notify_only.
	Remediation Remediation `json:"remediation,omitempty"`
	// MaxRemediationMs bounds how long a remediation stays on without an
	// acknowledgement; 0 means DefaultMaxRemediation.
	MaxRemediationMs int64 `json:"maxRemediationMs,omitempty"`
	// Notify names the channels of this rule; empty means the routes of
	// its level.
	Notify []string `json:"notify,omitempty"`

	UpdatedAt time.Time `json:"updatedAt,omitzero"`
	UpdatedBy string    `json:"updatedBy,omitempty"`
	// Source is where the rule comes from: "store" (defaults and
	// configure_alert) or "file" (--alerts-file). Not stored.
	Source string `json:"source,omitempty"`
}

// UnmarshalJSON reads a rule, taking the "severity" of rules stored
// before levels existed as Level.
func (r *Rule) UnmarshalJSON(b []byte) error {
	type plain Rule
	var v struct {
		plain
		Severity Level `json:"severity"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Rule(v.plain)
	if r.Level == "" {
		r.Level = v.Severity
	}
	return nil
}

// Rule sources.
const (
	SourceStore = "store"
	SourceFile  = "file"
)

// Limits of a rule.
const (
	MaxLabels             = 16
	MaxEscalations        = 4
	MaxNotify             = 8
	MaxDescriptionBytes   = 1024
	maxLabelValueBytes    = 256
	maxRunbookBytes       = 2048
	maxRuleDuration       = int64(24 * time.Hour / time.Millisecond)
	maxEscalationAfter    = int64(7 * 24 * time.Hour / time.Millisecond)
	minMaxRemediationMs   = int64(time.Second / time.Millisecond)
	DefaultMaxRemediation = 15 * time.Minute
)

var (
	nameRE      = regexp.MustCompile(`^[a-z0-9_.-]{1,64}$`)
	labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,63}$`)
	operators   = []string{">", ">=", "<", "<="}
	comparisons = map[string]string{"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
	reserved    = []string{"alertname", "severity", "instance"}
)

// FieldError is an invalid field of a rule or request; Field is its path
// ("data.threshold", "rules[2].level").
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// ValidName checks a rule name.
func ValidName(field, name string) *FieldError {
	if name == "" {
		return fieldErr(field, "required")
	}
	if !nameRE.MatchString(name) {
		return fieldErr(field, "%q: want 1 to 64 of a-z 0-9 _ . -", name)
	}
	return nil
}

// RuleInput is a rule as given by configure_alert or the rules file: every
// field optional, so that an update changes only what it names. It takes
// the seed's names as aliases: comparison (gt, gte, lt, lte) for operator,
// duration (ms) for forMs, severity for level.
type RuleInput struct {
	Name             string            `json:"name" yaml:"name"`
	Metric           *string           `json:"metric" yaml:"metric"`
	Operator         *string           `json:"operator" yaml:"operator"`
	Comparison       *string           `json:"comparison" yaml:"comparison"`
	Threshold        *float64          `json:"threshold" yaml:"threshold"`
	ForMs            *int64            `json:"forMs" yaml:"forMs"`
	Duration         *int64            `json:"duration" yaml:"duration"`
	Level            *string           `json:"level" yaml:"level"`
	Severity         *string           `json:"severity" yaml:"severity"`
	Enabled          *bool             `json:"enabled" yaml:"enabled"`
	Description      *string           `json:"description" yaml:"description"`
	RunbookURL       *string           `json:"runbookUrl" yaml:"runbookUrl"`
	Labels           map[string]string `json:"labels" yaml:"labels"`
	KeepFiringForMs  *int64            `json:"keepFiringForMs" yaml:"keepFiringForMs"`
	Escalate         *[]Escalation     `json:"escalate" yaml:"escalate"`
	Remediation      *string           `json:"remediation" yaml:"remediation"`
	MaxRemediationMs *int64            `json:"maxRemediationMs" yaml:"maxRemediationMs"`
	Notify           *[]string         `json:"notify" yaml:"notify"`
}

// NewRule is the rule a RuleInput starts from when no rule of its name
// exists: operator ">", 5 minutes, level warning, enabled.
func NewRule(name string) Rule {
	return Rule{Name: name, Operator: ">", ForMs: int64(5 * time.Minute / time.Millisecond), Level: LevelWarning, Enabled: true}
}

// Apply merges in into cur (the current rule, or NewRule for a new one;
// exists says which) and checks the result. prefix is the field path of in
// ("data"); the error names the first field at fault.
func (in *RuleInput) Apply(prefix string, cur Rule, exists bool) (Rule, *FieldError) {
	f := func(name string) string {
		if prefix == "" {
			return name
		}
		return prefix + "." + name
	}
	// A description nobody wrote (empty, or the one derived from the
	// rule) follows the rule when it changes; an operator's stays.
	derived := cur.Description == "" || cur.Description == Describe(cur)
	if !exists {
		if in.Metric == nil {
			return cur, fieldErr(f("metric"), "required for a new rule; one of %s", strings.Join(MetricNames(), ", "))
		}
		if in.Threshold == nil {
			return cur, fieldErr(f("threshold"), "required for a new rule")
		}
	}
	if in.Metric != nil {
		if _, ok := catalogue[*in.Metric]; !ok {
			return cur, fieldErr(f("metric"), "%q is not one of %s", *in.Metric, strings.Join(MetricNames(), ", "))
		}
		cur.Metric = *in.Metric
	}
	if in.Operator != nil {
		if !slices.Contains(operators, *in.Operator) {
			return cur, fieldErr(f("operator"), "%q is not one of %s", *in.Operator, strings.Join(operators, " "))
		}
		cur.Operator = *in.Operator
	}
	if in.Comparison != nil {
		op, ok := comparisons[*in.Comparison]
		if !ok {
			return cur, fieldErr(f("comparison"), "%q is not one of gt, gte, lt, lte", *in.Comparison)
		}
		if in.Operator != nil && *in.Operator != op {
			return cur, fieldErr(f("comparison"), "%q contradicts operator %q", *in.Comparison, *in.Operator)
		}
		cur.Operator = op
	}
	if in.Threshold != nil {
		if math.IsNaN(*in.Threshold) || math.IsInf(*in.Threshold, 0) {
			return cur, fieldErr(f("threshold"), "%v: want a finite number", *in.Threshold)
		}
		cur.Threshold = *in.Threshold
	}
	for _, d := range []struct {
		name string
		v    *int64
	}{{"forMs", in.ForMs}, {"duration", in.Duration}} {
		if d.v == nil {
			continue
		}
		if *d.v < 0 || *d.v > maxRuleDuration {
			return cur, fieldErr(f(d.name), "%d is not between 0 and %d (24 h)", *d.v, maxRuleDuration)
		}
		if d.name == "duration" && in.ForMs != nil && *in.ForMs != *d.v {
			return cur, fieldErr(f("duration"), "%d contradicts forMs %d", *d.v, *in.ForMs)
		}
		cur.ForMs = *d.v
	}
	for _, l := range []struct {
		name string
		v    *string
	}{{"level", in.Level}, {"severity", in.Severity}} {
		if l.v == nil {
			continue
		}
		if !Level(*l.v).Valid() {
			return cur, fieldErr(f(l.name), "%q is not one of info, warning, critical, emergency", *l.v)
		}
		if l.name == "severity" && in.Level != nil && *in.Level != *l.v {
			return cur, fieldErr(f("severity"), "%q contradicts level %q", *l.v, *in.Level)
		}
		cur.Level = Level(*l.v)
	}
	if in.Enabled != nil {
		cur.Enabled = *in.Enabled
	}
	if in.Description != nil {
		if len(*in.Description) > MaxDescriptionBytes {
			return cur, fieldErr(f("description"), "%d bytes, at most %d", len(*in.Description), MaxDescriptionBytes)
		}
		cur.Description = *in.Description
	}
	if in.RunbookURL != nil {
		u, err := url.Parse(*in.RunbookURL)
		if *in.RunbookURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(*in.RunbookURL) > maxRunbookBytes) {
			return cur, fieldErr(f("runbookUrl"), "want an http or https URL of at most %d bytes", maxRunbookBytes)
		}
		cur.RunbookURL = *in.RunbookURL
	}
	if in.Labels != nil {
		if len(in.Labels) > MaxLabels {
			return cur, fieldErr(f("labels"), "%d labels, at most %d", len(in.Labels), MaxLabels)
		}
		for k, v := range in.Labels {
			switch {
			case !labelNameRE.MatchString(k) || strings.HasPrefix(k, "__"):
				return cur, fieldErr(f("labels."+k), "label name: want [a-zA-Z_][a-zA-Z0-9_]*, at most 64 bytes, not starting with __")
			case slices.Contains(reserved, k):
				return cur, fieldErr(f("labels."+k), "reserved: sockmon sets %s itself", k)
			case len(v) > maxLabelValueBytes:
				return cur, fieldErr(f("labels."+k), "%d bytes, at most %d", len(v), maxLabelValueBytes)
			}
		}
		if len(in.Labels) == 0 {
			cur.Labels = nil
		} else {
			cur.Labels = cloneMap(in.Labels)
		}
	}
	if in.KeepFiringForMs != nil {
		if *in.KeepFiringForMs < 0 || *in.KeepFiringForMs > maxRuleDuration {
			return cur, fieldErr(f("keepFiringForMs"), "%d is not between 0 and %d (24 h)", *in.KeepFiringForMs, maxRuleDuration)
		}
		cur.KeepFiringForMs = *in.KeepFiringForMs
	}
	if in.Escalate != nil {
		cur.Escalate = slices.Clone(*in.Escalate)
		if len(cur.Escalate) == 0 {
			cur.Escalate = nil
		}
	}
	if in.Remediation != nil {
		switch r := Remediation(*in.Remediation); r {
		case NotifyOnly, ShedLoad, Maintenance, "":
			cur.Remediation = r
		default:
			return cur, fieldErr(f("remediation"), "%q is not one of notify_only, shed_load, maintenance", *in.Remediation)
		}
	}
	if in.MaxRemediationMs != nil {
		if *in.MaxRemediationMs != 0 && (*in.MaxRemediationMs < minMaxRemediationMs || *in.MaxRemediationMs > maxRuleDuration) {
			return cur, fieldErr(f("maxRemediationMs"), "%d is not between %d and %d (24 h)", *in.MaxRemediationMs, minMaxRemediationMs, maxRuleDuration)
		}
		cur.MaxRemediationMs = *in.MaxRemediationMs
	}
	if in.Notify != nil {
		if len(*in.Notify) > MaxNotify {
			return cur, fieldErr(f("notify"), "%d channels, at most %d", len(*in.Notify), MaxNotify)
		}
		for i, c := range *in.Notify {
			if !nameRE.MatchString(c) {
				return cur, fieldErr(fmt.Sprintf("%s[%d]", f("notify"), i), "%q: want a channel name (a-z 0-9 _ . -)", c)
			}
		}
		cur.Notify = slices.Clone(*in.Notify)
		if len(cur.Notify) == 0 {
			cur.Notify = nil
		}
	}
	if (in.Description == nil && derived) || (in.Description != nil && *in.Description == "") {
		cur.Description = Describe(cur)
	}
	if e := cur.check(f); e != nil {
		return cur, e
	}
	return cur, nil
}

// Describe is the description a rule gets unless an operator writes one:
// its condition in words, the threshold in the metric's unit (fractions as
// percentages). "" for a metric it has no words for.
func Describe(r Rule) string {
	var above, more string
	switch r.Operator {
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
	switch r.Metric {
	case "error_rate":
		return more + " " + pct(r.Threshold) + " of messages answered with an error"
	case "response_time":
		return "message-handling p99 " + above + " " + num(r.Threshold) + " ms"
	case "response_time_p95":
		return "message-handling p95 " + above + " " + num(r.Threshold) + " ms"
	case "response_time_avg":
		return "average message-handling time " + above + " " + num(r.Threshold) + " ms"
	case "memory_usage":
		return "memory " + above + " " + pct(r.Threshold) + " of the limit"
	case "connections":
		return "open connections " + above + " " + num(r.Threshold)
	case "messages_per_second":
		return "messages received per second " + above + " " + num(r.Threshold)
	case "cpu_usage":
		return "process CPU " + above + " " + pct(r.Threshold) + " of all cores"
	}
	return ""
}

// check verifies what depends on several fields: escalations go up from
// the rule's level, and maintenance is only for emergency rules.
func (r *Rule) check(f func(string) string) *FieldError {
	prev, prevAfter := r.Level, int64(0)
	for i, e := range r.Escalate {
		field := fmt.Sprintf("%s[%d]", f("escalate"), i)
		switch {
		case e.AfterMs <= 0 || e.AfterMs > maxEscalationAfter:
			return fieldErr(field+".afterMs", "%d is not between 1 and %d (7 days)", e.AfterMs, maxEscalationAfter)
		case !e.Level.Valid():
			return fieldErr(field+".level", "%q is not one of info, warning, critical, emergency", e.Level)
		case e.Level.rank() <= prev.rank():
			return fieldErr(field+".level", "%q does not raise %q", e.Level, prev)
		case e.AfterMs <= prevAfter:
			return fieldErr(field+".afterMs", "%d: escalations must come later one after the other", e.AfterMs)
		}
		prev, prevAfter = e.Level, e.AfterMs
	}
	if len(r.Escalate) > MaxEscalations {
		return fieldErr(f("escalate"), "%d escalations, at most %d", len(r.Escalate), MaxEscalations)
	}
	if r.Remediation == Maintenance && r.Level != LevelEmergency {
		return fieldErr(f("remediation"), "maintenance is only for emergency rules (level is %q)", r.Level)
	}
	return nil
}

// Validate checks a whole rule (one read from the store or built in Go).
func (r *Rule) Validate() *FieldError {
	if e := ValidName("name", r.Name); e != nil {
		return e
	}
	in := RuleInput{Name: r.Name, Metric: &r.Metric, Operator: &r.Operator, Threshold: &r.Threshold, ForMs: &r.ForMs,
		Level: (*string)(&r.Level), KeepFiringForMs: &r.KeepFiringForMs, Remediation: (*string)(&r.Remediation),
		MaxRemediationMs: &r.MaxRemediationMs, Labels: r.Labels, Description: &r.Description, RunbookURL: &r.RunbookURL}
	if r.Escalate != nil {
		in.Escalate = &r.Escalate
	}
	if r.Notify != nil {
		in.Notify = &r.Notify
	}
	_, e := in.Apply("", *r, true)
	return e
}

// maxRemediation is the rule's remediation cap.
func (r *Rule) maxRemediation() time.Duration {
	if r.MaxRemediationMs > 0 {
		return time.Duration(r.MaxRemediationMs) * time.Millisecond
	}
	return DefaultMaxRemediation
}

// remediation is the rule's remediation, notify_only when unset.
func (r *Rule) remediation() Remediation {
	if r.Remediation == "" {
		return NotifyOnly
	}
	return r.Remediation
}

// holds reports whether v op threshold.
func (r *Rule) holds(v float64) bool {
	switch r.Operator {
	case ">":
		return v > r.Threshold
	case ">=":
		return v >= r.Threshold
	case "<":
		return v < r.Threshold
	case "<=":
		return v <= r.Threshold
	}
	return false
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// DefaultRules are the rules written on a node's first start: the seed's
// three (error rate, response time, memory; 5 minutes each) and an
// emergency one on the engine's heartbeat.
func DefaultRules(now time.Time) []Rule {
	const fiveMin = int64(5 * time.Minute / time.Millisecond)
	rules := []Rule{
		{Name: "error_rate", Metric: "error_rate", Operator: ">", Threshold: 0.1, ForMs: fiveMin, Level: LevelWarning, Enabled: true,
			UpdatedAt: now, UpdatedBy: "default"},
		{Name: "response_time", Metric: "response_time", Operator: ">", Threshold: 5000, ForMs: fiveMin, Level: LevelWarning, Enabled: true,
			UpdatedAt: now, UpdatedBy: "default"},
		{Name: "memory_usage", Metric: "memory_usage", Operator: ">", Threshold: 0.9, ForMs: fiveMin, Level: LevelCritical, Enabled: true,
			UpdatedAt: now, UpdatedBy: "default"},
	}
	for i := range rules {
		rules[i].Description = Describe(rules[i])
	}
	return append(rules, EmergencyDefault(now))
}

// EmergencyDefault is the emergency default rule: the engine's event loops
// have not answered their heartbeat for 30 seconds.
func EmergencyDefault(now time.Time) Rule {
	return Rule{Name: "event_loop_stalled", Metric: "event_loop_stalled", Operator: ">=", Threshold: 1, ForMs: 30_000, Level: LevelEmergency, Enabled: true,
		Description: "the WebSocket engine's event loops have not answered their heartbeat for 30 s: clients are not being served",
		UpdatedAt:   now, UpdatedBy: "default"}
}
