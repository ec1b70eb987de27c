package alerts

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

// The PagerDuty channel sends one Events API v2 event per alert
// (SOCKMON_PAGERDUTY_ROUTING_KEY; --alert-pagerduty-url for EU accounts):
// trigger when it fires or escalates, acknowledge when an operator
// acknowledges it, resolve when it resolves, all with the same dedup_key
// <cluster>/<instance>/<rule>/<fingerprint>, so PagerDuty keeps one
// incident per alert. Levels map to PagerDuty severities in order: info ->
// info, warning -> warning, critical -> error, emergency -> critical. 202
// is success; 400 is not retried; 429 and 5xx are.

// PagerDutyEvent is one Events API v2 event.
type PagerDutyEvent struct {
	RoutingKey  string            `json:"routing_key"`
	EventAction string            `json:"event_action"`
	DedupKey    string            `json:"dedup_key"`
	Payload     *PagerDutyPayload `json:"payload,omitempty"`
	Links       []PagerDutyLink   `json:"links,omitempty"`
	Client      string            `json:"client,omitempty"`
	ClientURL   string            `json:"client_url,omitempty"`
}

// PagerDutyPayload is the payload of a trigger.
type PagerDutyPayload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	Timestamp     string         `json:"timestamp,omitempty"`
	Component     string         `json:"component,omitempty"`
	Group         string         `json:"group,omitempty"`
	Class         string         `json:"class,omitempty"`
	CustomDetails map[string]any `json:"custom_details,omitempty"`
}

// PagerDutyLink is a link of an event.
type PagerDutyLink struct {
	Href string `json:"href"`
	Text string `json:"text"`
}

// PagerDutySeverity maps a level to PagerDuty's severity.
func PagerDutySeverity(l Level) string {
	switch l {
	case LevelEmergency:
		return "critical"
	case LevelCritical:
		return "error"
	case LevelWarning:
		return "warning"
	}
	return "info"
}

// DedupKey is the PagerDuty dedup_key of an alert: at most 255 bytes.
func DedupKey(cluster, instance string, a *Alert) string {
	k := cluster + "/" + instance + "/" + a.Name + "/" + a.Fingerprint
	if len(k) > 255 {
		k = k[:255]
	}
	return k
}

func clipString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

type pagerDutySender struct {
	cfg    *ChannelConfig
	client *http.Client
}

func (s *pagerDutySender) event(m *message, a *Alert, action string) PagerDutyEvent {
	ev := PagerDutyEvent{RoutingKey: s.cfg.RoutingKey, EventAction: action, DedupKey: DedupKey(m.cluster, m.instance, a)}
	if action != "trigger" {
		return ev
	}
	summary := a.Annotations["summary"]
	if d := a.Annotations["description"]; d != "" {
		summary += " — " + d
	}
	details := map[string]any{"rule": a.Name, "level": string(a.Level), "metric": a.Metric, "value": a.Value,
		"operator": a.Operator, "threshold": a.Threshold, "labels": a.Labels, "flapping": a.Flapping}
	ev.Payload = &PagerDutyPayload{Summary: clipString(summary, 1024), Source: m.instance, Severity: PagerDutySeverity(a.Level),
		Timestamp: rfc3339(a.StartsAt), Component: "sockmon", Group: m.cluster, Class: a.Metric, CustomDetails: details}
	if u := a.Annotations["runbook_url"]; strings.HasPrefix(u, "http") {
		ev.Links = []PagerDutyLink{{Href: u, Text: "Runbook"}}
	}
	ev.Client = "sockmon"
	if m.extURL != "" {
		ev.ClientURL = m.extURL
	}
	return ev
}

func (s *pagerDutySender) send(ctx context.Context, m *message) error {
	for i := range m.alerts {
		a := &m.alerts[i]
		var actions []string
		switch {
		case m.test:
			// A test opens nothing: trigger, then resolve at once.
			actions = []string{"trigger", "resolve"}
		case i < len(m.reasons) && m.reasons[i] == EventAcknowledged:
			actions = []string{"acknowledge"}
		case a.State == StateFiring:
			actions = []string{"trigger"}
		default:
			actions = []string{"resolve"}
		}
		for _, act := range actions {
			body, err := json.Marshal(s.event(m, a, act))
			if err != nil {
				return &permanentError{err}
			}
			if err := postJSON(ctx, s.client, s.cfg.pagerDutyURL(), body, nil); err != nil {
				return err
			}
		}
	}
	return nil
}
