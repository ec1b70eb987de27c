package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sockmon/sockmon/control/alerts"
	bolt "go.etcd.io/bbolt"
)

// The alert actions of the admin API. The rules written by configure_alert
// (and the defaults) live in the store's alerts bucket; the engine
// (control/alerts) evaluates them together with the rules file's, keeps
// the history and the silences in the same store, and notifies.

// AlertConfig is one stored alert rule (alerts.Rule: a rule stored with
// the "severity" field of earlier versions still loads, as its level).
type AlertConfig = alerts.Rule

// Alert actions besides configure_alert and get_alert_configs.
const (
	ActionGetAlerts        = "get_alerts"
	ActionGetAlertHistory  = "get_alert_history"
	ActionAcknowledgeAlert = "acknowledge_alert"
	ActionSilenceAlerts    = "silence_alerts"
	ActionGetSilences      = "get_silences"
	ActionExpireSilence    = "expire_silence"
	ActionTestAlertChannel = "test_alert_channel"

	// ActionAlertRemediation is how the engine's remediations appear in
	// the audit log (actor "alerts").
	ActionAlertRemediation = "alert_remediation"
)

// Alerts returns the alerts engine, to register OnAlert hooks or apply a
// rules file.
func (s *Server) Alerts() *alerts.Engine { return s.alerts }

// ConfigureAlertRequest is the data of configure_alert: a rule's fields
// (alerts.RuleInput, with the seed's aliases comparison, duration and
// severity), each optional for an update; Name is required, and Metric and
// Threshold too for a new rule. Delete removes the rule.
type ConfigureAlertRequest struct {
	alerts.RuleInput
	Delete bool `json:"delete"`
}

func fieldError422(fe *alerts.FieldError) *Error { return invalidField(fe.Field, "%s", fe.Message) }

// AlertConfigs lists the rules in force by name, stored and from the
// rules file, with their state and the metric's value at the last
// evaluation (or why it is unknown: such a rule cannot fire).
func (s *Server) AlertConfigs() ([]alerts.RuleStatus, error) {
	return s.alerts.Rules(), nil
}

// storedRules reads the store's rules for the engine.
func (s *Server) storedRules() ([]AlertConfig, error) {
	a, err := s.store.alerts()
	if err != nil {
		return nil, internalError("cannot read the alert rules", err)
	}
	return a, nil
}

func (s *Server) doGetAlertConfigs(o *op, data json.RawMessage) (any, *Error) {
	var r struct{}
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	a, err := s.AlertConfigs()
	if err != nil {
		return nil, asError(err)
	}
	return map[string]any{"alerts": a, "metrics": alerts.Metrics(), "channels": s.alerts.Channels(), "levels": alerts.Levels()}, nil
}

func (s *Server) doConfigureAlert(o *op, data json.RawMessage) (any, *Error) {
	var r ConfigureAlertRequest
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	if fe := alerts.ValidName("data.name", r.Name); fe != nil {
		return nil, fieldError422(fe)
	}
	if s.alerts.FileRule(r.Name) {
		return nil, &Error{Status: http.StatusConflict, Code: CodeConflict,
			Message: fmt.Sprintf("rule %q comes from the alerts file, which wins: change it there and send SIGHUP", r.Name)}
	}
	if r.Notify != nil {
		known := s.alerts.ChannelNames()
		for i, c := range *r.Notify {
			if !slices.Contains(known, c) {
				return nil, invalidField(fmt.Sprintf("data.notify[%d]", i), "channel %q is not configured (configured: %s)", c, strings.Join(known, ", "))
			}
		}
	}
	s.cmdMu.Lock()
	defer s.cmdMu.Unlock()
	var result AlertConfig
	e := o.commit(func(tx *bolt.Tx) error {
		cur, exists, err := getAlert(tx, r.Name)
		if err != nil {
			return err
		}
		if r.Delete {
			if !exists {
				return notFound("no alert rule named %q", r.Name)
			}
			result = cur
			return deleteAlert(tx, r.Name)
		}
		if !exists {
			cur = alerts.NewRule(r.Name)
		}
		next, fe := r.Apply("data", cur, exists)
		if fe != nil {
			return fieldError422(fe)
		}
		next.UpdatedAt, next.UpdatedBy, next.Source = o.start.UTC(), o.actor.Sub, ""
		result = next
		return putAlert(tx, next)
	})
	if e != nil {
		return nil, e
	}
	if err := s.reloadStoredRules(); err != nil {
		s.log.Error("alert rules stored but not reloaded", "err", err)
	}
	if r.Delete {
		return map[string]any{"deleted": result}, nil
	}
	return map[string]any{"alert": result}, nil
}

// reloadStoredRules hands the store's rules to the engine.
func (s *Server) reloadStoredRules() error {
	rules, err := s.storedRules()
	if err != nil {
		return err
	}
	s.alerts.SetStoredRules(rules)
	return nil
}

func (s *Server) doGetAlerts(o *op, data json.RawMessage) (any, *Error) {
	var r struct{}
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	list := s.alerts.Alerts()
	return map[string]any{"alerts": list, "count": len(list), "evaluatedAt": s.alerts.LastEvaluation()}, nil
}

// AlertHistoryRequest is the data of get_alert_history.
type AlertHistoryRequest struct {
	Name  string          `json:"name"`
	Level string          `json:"level"`
	Since json.RawMessage `json:"since"`
	Until json.RawMessage `json:"until"`
	// Limit is 1 to 1000, default 100; entries come newest first.
	Limit *int `json:"limit"`
}

func (s *Server) doGetAlertHistory(o *op, data json.RawMessage) (any, *Error) {
	var r AlertHistoryRequest
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	q := alerts.HistoryQuery{Name: r.Name, Level: alerts.Level(r.Level), Limit: 100}
	if r.Name != "" {
		if fe := alerts.ValidName("data.name", r.Name); fe != nil {
			return nil, fieldError422(fe)
		}
	}
	if r.Level != "" && !q.Level.Valid() {
		return nil, invalidField("data.level", "%q is not one of info, warning, critical, emergency", r.Level)
	}
	if r.Limit != nil {
		if *r.Limit < 1 || *r.Limit > 1000 {
			return nil, invalidField("data.limit", "%d is not between 1 and 1000", *r.Limit)
		}
		q.Limit = *r.Limit
	}
	var e *Error
	if q.Since, e = parseTime("data.since", r.Since); e != nil {
		return nil, e
	}
	if q.Until, e = parseTime("data.until", r.Until); e != nil {
		return nil, e
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return nil, invalidField("data.until", "must not be before since")
	}
	h, err := s.alerts.History(q)
	if err != nil {
		return nil, internalError("cannot read the alert history", err)
	}
	return map[string]any{"history": h, "count": len(h)}, nil
}

// AcknowledgeRequest is the data of acknowledge_alert.
type AcknowledgeRequest struct {
	Name    string `json:"name"`
	Comment string `json:"comment"`
}

func (s *Server) doAcknowledgeAlert(o *op, data json.RawMessage) (any, *Error) {
	var r AcknowledgeRequest
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	if fe := alerts.ValidName("data.name", r.Name); fe != nil {
		return nil, fieldError422(fe)
	}
	if len(r.Comment) > alerts.MaxDescriptionBytes {
		return nil, invalidField("data.comment", "%d bytes, at most %d", len(r.Comment), alerts.MaxDescriptionBytes)
	}
	a, err := s.alerts.Acknowledge(r.Name, o.actor.Sub, r.Comment)
	if errors.Is(err, alerts.ErrNotFiring) {
		return nil, notFound("no firing alert of rule %q", r.Name)
	}
	if err != nil {
		return nil, internalError("cannot acknowledge", err)
	}
	return map[string]any{"alert": a}, nil
}

// SilenceRequest is the data of silence_alerts: matchers (name, level,
// labels; at least one) and a window: startsAt (default now) and endsAt or
// durationMs.
type SilenceRequest struct {
	Name       string            `json:"name"`
	Level      string            `json:"level"`
	Labels     map[string]string `json:"labels"`
	StartsAt   json.RawMessage   `json:"startsAt"`
	EndsAt     json.RawMessage   `json:"endsAt"`
	DurationMs *int64            `json:"durationMs"`
	Comment    string            `json:"comment"`
}

func (s *Server) doSilenceAlerts(o *op, data json.RawMessage) (any, *Error) {
	var r SilenceRequest
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	sil := alerts.Silence{Name: r.Name, Level: alerts.Level(r.Level), Labels: r.Labels, Comment: r.Comment}
	var e *Error
	if sil.StartsAt, e = parseTime("data.startsAt", r.StartsAt); e != nil {
		return nil, e
	}
	if sil.EndsAt, e = parseTime("data.endsAt", r.EndsAt); e != nil {
		return nil, e
	}
	if r.DurationMs != nil {
		if len(r.EndsAt) > 0 {
			return nil, invalidField("data.durationMs", "give endsAt or durationMs, not both")
		}
		if *r.DurationMs <= 0 {
			return nil, invalidField("data.durationMs", "%d: want a positive duration", *r.DurationMs)
		}
		if sil.StartsAt.IsZero() {
			sil.StartsAt = time.Now()
		}
		sil.EndsAt = sil.StartsAt.Add(time.Duration(*r.DurationMs) * time.Millisecond)
	}
	out, err := s.alerts.AddSilence(sil, o.actor.Sub)
	var fe *alerts.FieldError
	if errors.As(err, &fe) {
		return nil, fieldError422(fe)
	}
	if err != nil {
		return nil, internalError("cannot store the silence", err)
	}
	return map[string]any{"silence": out}, nil
}

func (s *Server) doGetSilences(o *op, data json.RawMessage) (any, *Error) {
	var r struct{}
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	list := s.alerts.Silences()
	return map[string]any{"silences": list, "count": len(list)}, nil
}

// ExpireSilenceRequest is the data of expire_silence.
type ExpireSilenceRequest struct {
	ID string `json:"id"`
}

func (s *Server) doExpireSilence(o *op, data json.RawMessage) (any, *Error) {
	var r ExpireSilenceRequest
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	if r.ID == "" {
		return nil, invalidField("data.id", "required")
	}
	out, err := s.alerts.ExpireSilence(r.ID, o.actor.Sub)
	if errors.Is(err, alerts.ErrNoSuchSilence) {
		return nil, notFound("no silence %q", clip(r.ID, 64))
	}
	if err != nil {
		return nil, internalError("cannot expire the silence", err)
	}
	return map[string]any{"silence": out}, nil
}

// TestChannelRequest is the data of test_alert_channel.
type TestChannelRequest struct {
	Channel string `json:"channel"`
}

func (s *Server) doTestAlertChannel(o *op, data json.RawMessage) (any, *Error) {
	var r TestChannelRequest
	if e := decodeObject("data", data, &r); e != nil {
		return nil, e
	}
	known := s.alerts.ChannelNames()
	if r.Channel == "" {
		return nil, invalidField("data.channel", "required; configured: %s", strings.Join(known, ", "))
	}
	if !slices.Contains(known, r.Channel) {
		return nil, notFound("no alert channel %q; configured: %s", clip(r.Channel, 64), strings.Join(known, ", "))
	}
	ctx, cancel := context.WithTimeout(s.bg, s.alerts.Config().Notify.SendTimeout)
	defer cancel()
	if err := s.alerts.Test(ctx, r.Channel, o.actor.Sub); err != nil {
		return nil, &Error{Status: http.StatusBadGateway, Code: CodeUnavailable, Message: "the test notification failed: " + err.Error()}
	}
	return map[string]any{"channel": r.Channel, "sent": true}, nil
}

// Remediate applies or undoes an alert's remediation (alerts.Remediator):
// load shedding stays on while at least one rule wants it; maintenance is
// turned on only when no operator has it on, and off only when the
// engine's own maintenance is still in force. Every call is in the audit
// log as actor "alerts" with the rule's name.
func (s *Server) Remediate(kind alerts.Remediation, on bool, rule, reason string) error {
	s.remMu.Lock()
	defer s.remMu.Unlock()
	note := ""
	switch kind {
	case alerts.ShedLoad:
		if on {
			s.shedRules[rule] = true
		} else {
			delete(s.shedRules, rule)
		}
		if len(s.shedRules) > 0 {
			s.engine.SetShedLoad(true, "alerts: "+strings.Join(sortedKeys(s.shedRules), ", "))
		} else {
			s.engine.SetShedLoad(false, "")
		}
	case alerts.Maintenance:
		if on {
			s.maintRules[rule] = true
		} else {
			delete(s.maintRules, rule)
		}
		m := s.engine.Maintenance()
		switch {
		case len(s.maintRules) > 0 && m == nil:
			s.maintReason = "alerts: " + strings.Join(sortedKeys(s.maintRules), ", ")
			s.engine.SetMaintenance(true, s.maintReason, false)
		case len(s.maintRules) > 0 && s.maintReason == "":
			note = "maintenance was already on by an operator: left as it is"
		case len(s.maintRules) == 0 && m != nil && s.maintReason != "" && m.Reason == s.maintReason:
			s.engine.SetMaintenance(false, "", false)
			s.maintReason = ""
		case len(s.maintRules) == 0:
			note = "maintenance is not the engine's: left as it is"
			s.maintReason = ""
		}
	default:
		return fmt.Errorf("control: unknown remediation %q", kind)
	}
	b, _ := json.Marshal(remediationRecord{Rule: rule, Remediation: string(kind), On: on, Reason: reason, Note: note})
	start := time.Now()
	rec := &AuditRecord{Time: start, Actor: alerts.ActorAlerts, SourceIP: "", Action: ActionAlertRemediation, Data: s.redactor.data(ActionAlertRemediation, b)}
	rec.finish(nil, start)
	return s.record(rec)
}

// remediationRecord is the audit data of a remediation applied or undone
// by the alerts engine.
type remediationRecord struct {
	Rule        string `json:"rule"`
	Remediation string `json:"remediation"`
	On          bool   `json:"on"`
	Reason      string `json:"reason"`
	Note        string `json:"note,omitempty"`
}

// sortedKeys returns the keys of m, sorted.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
