package alerts

import (
	"crypto/tls"
	"fmt"
	"maps"
	"net/mail"
	"net/url"
	"slices"
	"strings"
)

// Channel types.
const (
	TypeWebhook      = "webhook"
	TypeSlack        = "slack"
	TypePagerDuty    = "pagerduty"
	TypeEmail        = "email"
	TypeAlertmanager = "alertmanager"
)

// DefaultPagerDutyURL is PagerDuty's Events API v2 endpoint
// (--alert-pagerduty-url; EU accounts use events.eu.pagerduty.com).
const DefaultPagerDutyURL = "https://events.pagerduty.com/v2/enqueue"

// ChannelConfig is one notification channel. Secrets (Secret, RoutingKey,
// SMTPPassword, and the whole URL of a Slack channel) come from the
// environment: they are never shown (View redacts them), logged or put in
// the audit log.
type ChannelConfig struct {
	// Name identifies the channel in routes, rules' notify and metrics.
	// The channels of the flags are named after their type.
	Name string
	// Type is webhook, slack, pagerduty, email or alertmanager.
	Type string
	// URL is where a webhook, Slack or PagerDuty channel posts (a Slack
	// URL is a secret; PagerDuty's defaults to DefaultPagerDutyURL).
	URL string
	// URLs are the Alertmanagers an alertmanager channel pushes to (their
	// base URLs; /api/v2/alerts is added).
	URLs []string
	// Secret signs webhook bodies (HMAC-SHA256, header
	// X-Sockmon-Signature: sha256=<hex>); empty sends them unsigned.
	Secret string
	// RoutingKey is the PagerDuty integration key.
	RoutingKey string
	// SMTPAddr (host:port), SMTPUser, SMTPPassword, From and To configure
	// an email channel. The connection must use STARTTLS (port 465:
	// implicit TLS); a user logs in with SMTP AUTH (PLAIN or LOGIN, over
	// TLS only).
	SMTPAddr     string
	SMTPUser     string
	SMTPPassword string
	From         string
	To           []string
	// TLSConfig, when set, is the TLS configuration of an email channel
	// (tests trust their own certificate with it). Go API only.
	TLSConfig *tls.Config
}

// key identifies a configuration, to keep a channel's sender (and its
// queue) across a reload that does not change it.
func (c *ChannelConfig) key() string {
	return fmt.Sprintf("%s|%s|%s|%q|%s|%s|%s|%s|%s|%s|%q|%p", c.Name, c.Type, c.URL, c.URLs, c.Secret, c.RoutingKey,
		c.SMTPAddr, c.SMTPUser, c.SMTPPassword, c.From, c.To, c.TLSConfig)
}

// validate checks c; field prefixes the field names in the error.
func (c *ChannelConfig) validate(field string) error {
	bad := func(f, format string, args ...any) error {
		return fmt.Errorf("%s%s: %s", field, f, fmt.Sprintf(format, args...))
	}
	if !nameRE.MatchString(c.Name) {
		return bad("", "channel name %q: want 1 to 64 of a-z 0-9 _ . -", c.Name)
	}
	httpURL := func(f, u string, secret bool) error {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			if secret {
				return bad(f, "not an http or https URL (not shown: it is a secret)")
			}
			return bad(f, "%q: want an http or https URL", u)
		}
		return nil
	}
	switch c.Type {
	case TypeWebhook:
		if c.URL == "" {
			return bad("url", "required for a webhook channel")
		}
		return httpURL("url", c.URL, false)
	case TypeSlack:
		if c.URL == "" {
			return bad("url", "required for a slack channel (an incoming-webhook URL, from the environment)")
		}
		return httpURL("url", c.URL, true)
	case TypePagerDuty:
		if c.RoutingKey == "" {
			return bad("routingKey", "required for a pagerduty channel (from the environment)")
		}
		if c.URL != "" {
			return httpURL("url", c.URL, false)
		}
	case TypeEmail:
		if c.SMTPAddr == "" || !strings.Contains(c.SMTPAddr, ":") {
			return bad("smtpAddr", "%q: want host:port", c.SMTPAddr)
		}
		if _, err := mail.ParseAddress(c.From); err != nil {
			return bad("from", "%q: %v", c.From, err)
		}
		if len(c.To) == 0 {
			return bad("to", "at least one recipient is required")
		}
		for _, to := range c.To {
			if _, err := mail.ParseAddress(to); err != nil {
				return bad("to", "%q: %v", to, err)
			}
		}
		if c.SMTPPassword != "" && c.SMTPUser == "" {
			return bad("smtpUser", "required with a password")
		}
	case TypeAlertmanager:
		if len(c.URLs) == 0 {
			return bad("urls", "at least one Alertmanager URL is required")
		}
		for _, u := range c.URLs {
			if err := httpURL("urls", u, false); err != nil {
				return err
			}
		}
	default:
		return bad("type", "%q is not one of webhook, slack, pagerduty, email, alertmanager", c.Type)
	}
	return nil
}

// ChannelView is a channel as the admin API shows it: no secret, only
// whether one is set.
type ChannelView struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Target is where it sends, secrets left out: the scheme and host of
	// a URL, the SMTP server and recipients. A Slack URL is "[REDACTED]".
	Target  []string `json:"target"`
	Signed  bool     `json:"signed,omitempty"`
	Secrets []string `json:"secrets,omitempty"`
	// Queued is how many alert notifications wait for delivery.
	Queued  int            `json:"queued"`
	Breaker string         `json:"breaker"`
	Counts  map[string]any `json:"counts"`
}

const redacted = "[REDACTED]"

func hostOnly(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return redacted
	}
	return p.Scheme + "://" + p.Host
}

func (c *ChannelConfig) view() ChannelView {
	v := ChannelView{Name: c.Name, Type: c.Type}
	switch c.Type {
	case TypeWebhook:
		v.Target = []string{hostOnly(c.URL)}
		v.Signed = c.Secret != ""
		if c.Secret != "" {
			v.Secrets = []string{"SOCKMON_ALERT_WEBHOOK_SECRET"}
		}
	case TypeSlack:
		v.Target = []string{redacted}
		v.Secrets = []string{"url"}
	case TypePagerDuty:
		v.Target = []string{hostOnly(c.pagerDutyURL())}
		v.Secrets = []string{"routingKey"}
	case TypeEmail:
		v.Target = append([]string{"smtp://" + c.SMTPAddr}, c.To...)
		if c.SMTPPassword != "" {
			v.Secrets = []string{"smtpPassword"}
		}
	case TypeAlertmanager:
		for _, u := range c.URLs {
			v.Target = append(v.Target, hostOnly(u))
		}
	}
	return v
}

func (c *ChannelConfig) pagerDutyURL() string {
	if c.URL == "" {
		return DefaultPagerDutyURL
	}
	return c.URL
}

// DefaultRoutes sends info to the webhook and Alertmanager; warning also
// to Slack; critical also to PagerDuty and e-mail; emergency everywhere.
// Routes name channels that may not be configured: those are skipped.
func DefaultRoutes() map[Level][]string {
	return map[Level][]string{
		LevelInfo:      {TypeWebhook, TypeAlertmanager},
		LevelWarning:   {TypeWebhook, TypeSlack, TypeAlertmanager},
		LevelCritical:  {TypeWebhook, TypeSlack, TypePagerDuty, TypeEmail, TypeAlertmanager},
		LevelEmergency: {"*"},
	}
}

// mergeRoutes returns base with the levels of over replaced.
func mergeRoutes(base, over map[Level][]string) map[Level][]string {
	out := maps.Clone(base)
	if out == nil {
		out = map[Level][]string{}
	}
	for l, chans := range over {
		out[l] = slices.Clone(chans)
	}
	return out
}

// mergeChannels returns base with the channels of over added, replacing
// those of the same name.
func mergeChannels(base, over []ChannelConfig) []ChannelConfig {
	out := slices.Clone(base)
	for _, c := range over {
		if i := slices.IndexFunc(out, func(b ChannelConfig) bool { return b.Name == c.Name }); i >= 0 {
			out[i] = c
		} else {
			out = append(out, c)
		}
	}
	return out
}

// routeLocked lists the configured channels of an alert of rule r at
// level: the rule's notify if set, else the level's route. e.mu held.
func (e *Engine) routeLocked(r *Rule, level Level) []string {
	want := r.Notify
	if len(want) == 0 {
		want = e.routes[level]
	}
	configured := e.notifier.names()
	var out []string
	for _, w := range want {
		if w == "*" {
			for _, n := range configured {
				if !slices.Contains(out, n) {
					out = append(out, n)
				}
			}
			continue
		}
		if slices.Contains(configured, w) && !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}
