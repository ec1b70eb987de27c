package alerts

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// State is an alert's state, as Prometheus has them: inactive -> pending
// (condition true, ForMs not yet elapsed) -> firing -> resolved (the
// condition cleared, after KeepFiringForMs if set). A resolved alert is
// listed for Config.ResolvedRetention, then it is inactive again.
type State string

// States.
const (
	StateInactive State = "inactive"
	StatePending  State = "pending"
	StateFiring   State = "firing"
	StateResolved State = "resolved"
)

// States lists the states in order.
func States() []State { return []State{StateInactive, StatePending, StateFiring, StateResolved} }

// Event kinds: every transition of an alert, and what operators and the
// engine do to it. Each is a history entry and an AlertEvent.
const (
	EventPending      = "pending"      // the condition became true; ForMs is running
	EventInactive     = "inactive"     // a pending condition cleared before ForMs
	EventFiring       = "firing"       // ForMs elapsed: the alert fires
	EventEscalated    = "escalated"    // an escalation raised the level
	EventResolved     = "resolved"     // the condition cleared (after KeepFiringForMs)
	EventAcknowledged = "acknowledged" // an operator acknowledged it
	EventSilenced     = "silenced"     // a notification was held back by a silence
	EventRemediation  = "remediation"  // a remediation was applied, undone or expired
)

// Alert is one rule's alert as the admin API, the hooks and the notifiers
// see it. It is a copy: callers may keep it.
type Alert struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	State       State  `json:"state"`
	// Level is the current level (raised by escalations).
	Level     Level   `json:"level"`
	Metric    string  `json:"metric"`
	Operator  string  `json:"operator"`
	Threshold float64 `json:"threshold"`
	// Value is the metric at the last evaluation.
	Value float64 `json:"value"`
	// Labels are alertname (the rule), severity (the level), instance
	// (the node) and the rule's labels. Annotations are summary,
	// description and runbook_url.
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	// ActiveAt is when the condition became true (pending), StartsAt when
	// the alert fired, EndsAt when it resolved (zero until then).
	ActiveAt time.Time `json:"activeAt,omitzero"`
	StartsAt time.Time `json:"startsAt,omitzero"`
	EndsAt   time.Time `json:"endsAt,omitzero"`
	// Since is when the alert entered its current state.
	Since          time.Time `json:"since"`
	Acknowledged   bool      `json:"acknowledged"`
	AcknowledgedBy string    `json:"acknowledgedBy,omitempty"`
	AcknowledgedAt time.Time `json:"acknowledgedAt,omitzero"`
	// SilencedBy lists the ids of the silences that match the alert now.
	SilencedBy []string `json:"silencedBy,omitempty"`
	// Flapping: the alert fired again within Config.FlapWindow of its last
	// resolve, so it now stays firing until the condition has been clear
	// for a whole FlapWindow.
	Flapping           bool        `json:"flapping"`
	Remediation        Remediation `json:"remediation"`
	RemediationActive  bool        `json:"remediationActive"`
	RemediationSince   time.Time   `json:"remediationSince,omitzero"`
	RemediationExpired bool        `json:"remediationExpired,omitempty"`
}

// AlertEvent is what OnAlert hooks receive: one transition or action.
type AlertEvent struct {
	// Kind is one of the Event constants.
	Kind  string    `json:"kind"`
	Time  time.Time `json:"time"`
	Alert Alert     `json:"alert"`
	// Actor is who acted: an admin's sub for acknowledged, "alerts" for
	// what the engine does itself.
	Actor string `json:"actor,omitempty"`
	// Detail says more: the remediation applied or undone, the silence id.
	Detail string `json:"detail,omitempty"`
}

// fingerprint is the alert's identity: a hash of its rule name and its
// labels, without the level, so that an escalated alert stays the same
// alert (PagerDuty updates the same incident).
func fingerprint(name string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	fmt.Fprintf(h, "alertname\x00%s\x00", name)
	for _, k := range keys {
		fmt.Fprintf(h, "%s\x00%s\x00", k, labels[k])
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// summary is the one-line text of an alert: "error_rate: error_rate 0.23 >
// 0.1" while it is active, "error_rate: error_rate now 0.02 (fires at >
// 0.1)" once resolved.
func summary(a *Alert) string {
	if a.State == StateResolved {
		return fmt.Sprintf("%s: %s now %s (fires at %s %s)", a.Name, a.Metric, formatValue(a.Value), a.Operator, formatValue(a.Threshold))
	}
	return fmt.Sprintf("%s: %s %s %s %s", a.Name, a.Metric, formatValue(a.Value), a.Operator, formatValue(a.Threshold))
}

func formatValue(v float64) string {
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// status is "firing" when any alert of the list fires, else "resolved".
func status(list []Alert) string {
	for i := range list {
		if list[i].State == StateFiring {
			return "firing"
		}
	}
	return "resolved"
}

// names joins the alert names of a list, at most n of them.
func names(list []Alert, n int) string {
	var out []string
	for i := range list {
		if i == n {
			out = append(out, fmt.Sprintf("and %d more", len(list)-n))
			break
		}
		out = append(out, list[i].Name)
	}
	return strings.Join(out, ", ")
}
