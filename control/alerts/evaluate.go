package alerts

import (
	"encoding/json"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The state machine of one rule's alert, with its hysteresis written out:
//
//	inactive/resolved --cond, forMs > 0------------------------> pending
//	inactive/resolved --cond, forMs = 0------------------------> firing
//	pending           --!cond----------------------------------> inactive
//	pending           --cond held for forMs--------------------> firing
//	firing            --!cond for hold-------------------------> resolved
//	resolved          --ResolvedRetention without cond---------> inactive (not in history)
//
// Entering needs the condition at every evaluation for forMs: one clear
// evaluation sends a pending alert back to inactive. Leaving needs the
// condition clear for hold = keepFiringForMs, or, while the alert is
// flapping, max(keepFiringForMs, FlapWindow). An alert is flapping when it
// fires again within FlapWindow of its last resolve; it stays so until it
// resolves. So a condition that flaps faster than anything else pages at
// most twice per FlapWindow: once when it first fires, once when it comes
// back, and its resolve waits for a calm FlapWindow. Notification grouping
// adds to that: an alert that fires and resolves within GroupWait, before
// anything was sent, is not sent at all.
//
// While firing: escalations raise the level at their afterMs (counted from
// the firing); an alert that is neither acknowledged nor silenced is
// re-notified every RepeatInterval; a remediation turns off after its
// maxRemediationMs unless the alert was acknowledged.

// alertState is one rule's alert. e.mu guards it.
type alertState struct {
	rule   Rule
	fp     string
	labels map[string]string // instance and the rule's labels (no alertname, severity)

	state      State
	since      time.Time
	activeAt   time.Time
	startsAt   time.Time
	endsAt     time.Time
	clearSince time.Time
	lastFired  time.Time
	lastResolv time.Time
	lastNotify time.Time
	level      Level
	esc        int
	value      float64

	acked    bool
	ackedBy  string
	ackedAt  time.Time
	flapping bool

	silencedNoted bool
	notified      []string // channels told that this episode fires
	amPushed      bool

	remOn      bool
	remKind    Remediation // what remOn applied
	resumed    bool        // restored from the store: its remediation is applied again
	remSince   time.Time
	remExpired bool
}

// effects is what an evaluation or an action does outside e.mu: history,
// persistence, notifications, remediations and hook events, in that order.
type effects struct {
	history []HistoryEntry
	events  []AlertEvent
	notes   []note
	rem     []remCall
	put     map[string]*activeRecord // nil value: delete
	amPush  []Alert
	amSet   bool
}

type remCall struct {
	kind   Remediation
	on     bool
	rule   string
	reason string
}

func (o *effects) event(a *Alert, kind string, now time.Time, actor, detail string) {
	o.history = append(o.history, HistoryEntry{Time: now, Name: a.Name, Fingerprint: a.Fingerprint, Kind: kind, State: a.State,
		Level: a.Level, Metric: a.Metric, Operator: a.Operator, Value: a.Value, Threshold: a.Threshold, Actor: actor, Detail: detail})
	o.events = append(o.events, AlertEvent{Kind: kind, Time: now, Alert: *a, Actor: actor, Detail: detail})
}

func (o *effects) persist(st *alertState) {
	if o.put == nil {
		o.put = map[string]*activeRecord{}
	}
	if st.state != StateFiring {
		o.put[st.rule.Name] = nil
		return
	}
	o.put[st.rule.Name] = &activeRecord{Rule: st.rule.Name, Level: st.level, ActiveAt: st.activeAt, StartsAt: st.startsAt, Escalations: st.esc,
		Acknowledged: st.acked, AckedBy: st.ackedBy, AckedAt: st.ackedAt, Flapping: st.flapping, Value: st.value, Notified: slices.Clone(st.notified)}
}

// Evaluate evaluates every enabled rule once, at Config.Now, against a
// fresh metrics snapshot, and then records, notifies, remediates and runs
// the hooks for what changed. The loop started by Start calls it every
// Interval; tests with an injected clock call it themselves.
func (e *Engine) Evaluate() {
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	now := e.now()
	snap := e.cfg.Metrics.Snapshot()
	vals := e.values(&snap, now)

	var out effects
	e.mu.Lock()
	e.lastValues, e.lastEval = vals, now
	live := map[string]bool{}
	for i := range e.rules {
		r := &e.rules[i]
		if !r.Enabled {
			continue
		}
		live[r.Name] = true
		st := e.stateLocked(r, now)
		v := vals[r.Metric]
		if v.Known {
			st.value = v.V
		}
		e.step(st, v.Known && r.holds(v.V), now, &out)
	}
	// A rule deleted or disabled while its alert fires resolves now.
	for name, st := range e.states {
		if live[name] {
			continue
		}
		if st.state == StateFiring {
			e.resolve(st, now, &out, "rule removed or disabled")
		}
		delete(e.states, name)
	}
	e.alertmanagerPushLocked(now, &out)
	e.prom.set(e.states)
	e.mu.Unlock()
	e.applyEffects(&out)
}

// stateLocked returns the state of rule r, creating it (from what the
// store says was firing, if anything) the first time. e.mu held.
func (e *Engine) stateLocked(r *Rule, now time.Time) *alertState {
	st := e.states[r.Name]
	labels := cloneMap(r.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels["instance"] = e.cfg.Instance
	if st == nil {
		st = &alertState{state: StateInactive, since: now, level: r.Level}
		if rec, ok := e.restored[r.Name]; ok {
			delete(e.restored, r.Name)
			st.state, st.since, st.activeAt, st.startsAt, st.lastFired = StateFiring, rec.StartsAt, rec.ActiveAt, rec.StartsAt, rec.StartsAt
			st.level, st.esc, st.value, st.flapping = rec.Level, rec.Escalations, rec.Value, rec.Flapping
			st.acked, st.ackedBy, st.ackedAt = rec.Acknowledged, rec.AckedBy, rec.AckedAt
			st.notified, st.lastNotify, st.resumed = rec.Notified, now, true
			if !st.level.Valid() {
				st.level = r.Level
			}
			e.log.Info("firing alert resumed from the store", "rule", r.Name, "since", rec.StartsAt)
		}
		e.states[r.Name] = st
	}
	st.rule, st.labels = *r, labels
	fp := fingerprint(r.Name, labels)
	if fp != st.fp && st.state == StateFiring {
		// Resumed from the store (or relabelled): the channels told it
		// fires must take its resolve.
		for _, ch := range st.notified {
			e.notifier.markAttempted(ch, fp)
		}
	}
	st.fp = fp
	if st.state != StateFiring {
		st.level = r.Level
	}
	return st
}

// step advances st by one evaluation in which the condition is cond.
func (e *Engine) step(st *alertState, cond bool, now time.Time, out *effects) {
	r := &st.rule
	switch st.state {
	case StateInactive, StateResolved:
		if !cond {
			if st.state == StateResolved && now.Sub(st.endsAt) >= e.cfg.ResolvedRetention {
				st.state, st.since = StateInactive, now
			}
			return
		}
		st.activeAt = now
		if r.ForMs <= 0 {
			e.fire(st, now, out)
			return
		}
		st.state, st.since = StatePending, now
		a := e.view(st, now)
		out.event(&a, EventPending, now, ActorAlerts, "")
	case StatePending:
		switch {
		case !cond:
			st.state, st.since = StateInactive, now
			a := e.view(st, now)
			out.event(&a, EventInactive, now, ActorAlerts, "the condition cleared before forMs")
		case now.Sub(st.activeAt) >= time.Duration(r.ForMs)*time.Millisecond:
			e.fire(st, now, out)
		}
	case StateFiring:
		if st.resumed {
			// A node restarted while this alert fired: its remediation
			// (not persisted, like the engine state it changes) is applied
			// again, its cap counted from now.
			st.resumed = false
			if kind := r.remediation(); kind != NotifyOnly && cond {
				st.remOn, st.remKind, st.remSince = true, kind, now
				a := e.view(st, now)
				out.rem = append(out.rem, remCall{kind: kind, on: true, rule: r.Name, reason: "alert " + summary(&a) + " (resumed after a restart)"})
				out.event(&a, EventRemediation, now, ActorAlerts, string(kind)+" applied again after a restart")
			}
		}
		if cond {
			st.clearSince = time.Time{}
			e.escalate(st, now, out)
			e.repeat(st, now, out)
		} else {
			if st.clearSince.IsZero() {
				st.clearSince = now
			}
			hold := time.Duration(r.KeepFiringForMs) * time.Millisecond
			if st.flapping {
				hold = max(hold, e.cfg.FlapWindow)
			}
			if now.Sub(st.clearSince) >= hold {
				e.resolve(st, now, out, "")
				return
			}
		}
		e.expireRemediation(st, now, out)
	}
}

func (e *Engine) fire(st *alertState, now time.Time, out *effects) {
	r := &st.rule
	st.flapping = e.cfg.FlapWindow > 0 && !st.lastResolv.IsZero() && now.Sub(st.lastResolv) < e.cfg.FlapWindow
	st.state, st.since, st.startsAt, st.endsAt, st.lastFired = StateFiring, now, now, time.Time{}, now
	st.clearSince, st.level, st.esc = time.Time{}, r.Level, 0
	st.acked, st.ackedBy, st.ackedAt = false, "", time.Time{}
	st.silencedNoted, st.notified, st.amPushed = false, nil, false
	st.remOn, st.remKind, st.remSince, st.remExpired = false, "", time.Time{}, false
	a := e.view(st, now)
	detail := ""
	if st.flapping {
		detail = "flapping: fired again within the flap window of its last resolve"
	}
	out.event(&a, EventFiring, now, ActorAlerts, detail)
	e.notify(st, now, EventFiring, out)
	if kind := r.remediation(); kind != NotifyOnly {
		st.remOn, st.remKind, st.remSince = true, kind, now
		out.rem = append(out.rem, remCall{kind: kind, on: true, rule: r.Name, reason: "alert " + summary(&a)})
		a = e.view(st, now)
		out.event(&a, EventRemediation, now, ActorAlerts, string(kind)+" applied")
	}
	out.persist(st)
}

func (e *Engine) resolve(st *alertState, now time.Time, out *effects, why string) {
	st.state, st.since, st.endsAt, st.lastResolv = StateResolved, now, now, now
	st.flapping, st.clearSince = false, time.Time{}
	a := e.view(st, now)
	out.event(&a, EventResolved, now, ActorAlerts, why)
	for _, ch := range st.notified {
		out.notes = append(out.notes, note{channel: ch, alert: a, reason: EventResolved})
	}
	if st.remOn {
		st.remOn = false
		out.rem = append(out.rem, remCall{kind: st.remKind, on: false, rule: st.rule.Name, reason: "alert resolved"})
		a = e.view(st, now)
		out.event(&a, EventRemediation, now, ActorAlerts, string(st.remKind)+" undone: resolved")
	}
	out.persist(st)
}

func (e *Engine) escalate(st *alertState, now time.Time, out *effects) {
	r := &st.rule
	changed := false
	for st.esc < len(r.Escalate) && now.Sub(st.startsAt) >= time.Duration(r.Escalate[st.esc].AfterMs)*time.Millisecond {
		if lv := r.Escalate[st.esc].Level; lv.rank() > st.level.rank() {
			st.level, changed = lv, true
		}
		st.esc++
	}
	if !changed {
		return
	}
	// An escalation is a new episode for silences and acknowledgements of
	// the lower level: a silence on the old level no longer matches.
	st.silencedNoted = false
	a := e.view(st, now)
	out.event(&a, EventEscalated, now, ActorAlerts, "escalated to "+string(st.level))
	e.notify(st, now, EventEscalated, out)
	out.persist(st)
}

func (e *Engine) repeat(st *alertState, now time.Time, out *effects) {
	if e.cfg.RepeatInterval <= 0 || st.acked || now.Sub(st.lastNotify) < e.cfg.RepeatInterval {
		return
	}
	e.notify(st, now, "repeat", out)
}

func (e *Engine) expireRemediation(st *alertState, now time.Time, out *effects) {
	if st.remOn && st.rule.remediation() != st.remKind {
		// The rule's remediation was changed (to notify_only, say) while
		// it was applied: undo it now.
		st.remOn = false
		out.rem = append(out.rem, remCall{kind: st.remKind, on: false, rule: st.rule.Name, reason: "the rule's remediation changed"})
		a := e.view(st, now)
		out.event(&a, EventRemediation, now, ActorAlerts, string(st.remKind)+" undone: the rule's remediation changed")
		return
	}
	if !st.remOn || st.acked || now.Sub(st.remSince) < st.rule.maxRemediation() {
		return
	}
	st.remOn, st.remExpired = false, true
	kind := st.remKind
	out.rem = append(out.rem, remCall{kind: kind, on: false, rule: st.rule.Name,
		reason: "on for maxRemediationMs without an acknowledgement"})
	a := e.view(st, now)
	out.event(&a, EventRemediation, now, ActorAlerts, string(kind)+" expired: on for "+st.rule.maxRemediation().String()+" without an acknowledgement")
	e.log.Warn("remediation turned off: it reached maxRemediationMs without an acknowledgement", "rule", st.rule.Name, "remediation", kind)
}

// notify sends st to the channels of its rule and level, unless a silence
// holds it back. alertmanager is pushed separately (every evaluation).
func (e *Engine) notify(st *alertState, now time.Time, reason string, out *effects) {
	st.lastNotify = now
	a := e.view(st, now)
	if len(a.SilencedBy) > 0 {
		if !st.silencedNoted {
			st.silencedNoted = true
			out.event(&a, EventSilenced, now, ActorAlerts, "silence "+a.SilencedBy[0])
		}
		return
	}
	for _, ch := range e.routeLocked(&st.rule, st.level) {
		if e.notifier.isPush(ch) {
			continue
		}
		out.notes = append(out.notes, note{channel: ch, alert: a, reason: reason})
		if !slices.Contains(st.notified, ch) {
			st.notified = append(st.notified, ch)
		}
	}
}

// alertmanagerPushLocked lists what the Alertmanager channels get this
// round: the firing alerts routed to them and not silenced (endsAt four
// intervals ahead, so Alertmanager resolves them by itself if this node
// goes away), and the alerts pushed as firing that resolved within the
// last 5 minutes.
func (e *Engine) alertmanagerPushLocked(now time.Time, out *effects) {
	for _, ch := range e.notifier.pushChannels() {
		var list []Alert
		for _, r := range e.rules {
			st := e.states[r.Name]
			if st == nil || !slices.Contains(e.routeLocked(&st.rule, st.level), ch) {
				continue
			}
			a := e.view(st, now)
			switch {
			case st.state == StateFiring && len(a.SilencedBy) == 0:
				a.EndsAt = now.Add(4 * e.cfg.Interval)
				st.amPushed = true
				list = append(list, a)
			case st.state == StateResolved && st.amPushed && now.Sub(st.endsAt) <= alertmanagerResend:
				list = append(list, a)
			}
		}
		for _, a := range list {
			out.notes = append(out.notes, note{channel: ch, alert: a, reason: "push"})
		}
	}
}

// view builds the Alert of st at now. e.mu held.
func (e *Engine) view(st *alertState, now time.Time) Alert {
	r := &st.rule
	labels := cloneMap(st.labels)
	labels["alertname"] = r.Name
	labels["severity"] = string(st.level)
	ann := map[string]string{}
	a := Alert{Name: r.Name, Fingerprint: st.fp, State: st.state, Level: st.level, Metric: r.Metric, Operator: r.Operator,
		Threshold: r.Threshold, Value: st.value, Labels: labels, Annotations: ann, ActiveAt: st.activeAt,
		StartsAt: st.startsAt, EndsAt: st.endsAt, Since: st.since, Acknowledged: st.acked, AcknowledgedBy: st.ackedBy,
		AcknowledgedAt: st.ackedAt, Flapping: st.flapping, Remediation: r.remediation(), RemediationActive: st.remOn,
		RemediationSince: st.remSince, RemediationExpired: st.remExpired}
	if st.state == StatePending || st.state == StateInactive {
		a.StartsAt, a.EndsAt = time.Time{}, time.Time{}
	}
	if !st.remOn {
		a.RemediationSince = time.Time{}
	}
	ann["summary"] = summary(&a)
	if r.Description != "" {
		ann["description"] = r.Description
	}
	if r.RunbookURL != "" {
		ann["runbook_url"] = r.RunbookURL
	}
	a.SilencedBy = e.silencedBy(&a, now)
	return a
}

// applyEffects records, notifies, remediates and hands the events to the
// hooks, outside e.mu.
func (e *Engine) applyEffects(o *effects) {
	if len(o.history) > 0 || len(o.put) > 0 {
		now := e.now()
		err := e.cfg.DB.Update(func(tx *bolt.Tx) error {
			if err := putHistory(tx, o.history, e.cfg.HistoryMaxEntries, e.cfg.HistoryMaxAge, now); err != nil {
				return err
			}
			b := tx.Bucket(bucketActive)
			for name, rec := range o.put {
				if rec == nil {
					if err := b.Delete([]byte(name)); err != nil {
						return err
					}
					continue
				}
				data, err := json.Marshal(rec)
				if err != nil {
					return err
				}
				if err := b.Put([]byte(name), data); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			e.log.Error("alert history not stored", "err", err, "entries", len(o.history))
		}
	}
	for _, h := range o.history {
		level := e.log.Info
		if h.Kind == EventPending || h.Kind == EventInactive {
			level = e.log.Debug
		}
		level("alert "+h.Kind, "rule", h.Name, "state", h.State, "level", h.Level, "value", h.Value, "threshold", h.Threshold, "detail", h.Detail)
	}
	for _, n := range o.notes {
		e.notifier.enqueue(n)
	}
	for _, c := range o.rem {
		if e.cfg.Remediator == nil {
			e.log.Warn("remediation not applied: no remediator", "rule", c.rule, "remediation", c.kind, "on", c.on)
			continue
		}
		if err := e.cfg.Remediator.Remediate(c.kind, c.on, c.rule, c.reason); err != nil {
			e.log.Error("remediation failed", "rule", c.rule, "remediation", c.kind, "on", c.on, "err", err)
		}
	}
	for _, ev := range o.events {
		e.emitHook(ev)
	}
}
