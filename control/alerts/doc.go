// Package alerts is sockmon's alerts engine: rules evaluated over live
// metrics, four levels, Prometheus-like states with explicit hysteresis,
// escalation, a persistent history, silences and acknowledgements,
// remediation, and notifiers (webhook, Slack, PagerDuty, e-mail,
// Alertmanager).
//
// The engine reads metrics snapshots (metrics.Metrics.Snapshot) and the
// few Sources it is given; it never touches the message path. control
// builds it over its store, feeds it the stored rules, exposes it through
// the admin actions (get_alerts, get_alert_history, acknowledge_alert,
// silence_alerts...) and implements its Remediator; cmd/sockmon wires the
// flags, the rules file and SIGHUP.
//
// Files: rule.go (rules, levels, validation, defaults), metric.go (the
// metrics a rule can watch), evaluate.go (the state machine), engine.go
// (configuration, lifecycle, hooks), history.go (the history in bbolt),
// silence.go, file.go (the rules file), channels.go (channel
// configuration, routes), notify.go (queues, retries, breakers), and one
// file per channel: webhook.go, slack.go, pagerduty.go, email.go,
// alertmanager.go.
package alerts
