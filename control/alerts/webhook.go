package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// The webhook channel posts Alertmanager's webhook payload (version 4), so
// that a receiver written for Alertmanager works unchanged:
// labels.alertname is the rule and labels.severity its level. With a
// secret (SOCKMON_ALERT_WEBHOOK_SECRET) the body is signed:
//
//	X-Sockmon-Signature: sha256=<hex of HMAC-SHA256(secret, body)>
//
// A receiver recomputes the HMAC over the raw body and compares in
// constant time (VerifySignature does it).

// SignatureHeader carries the webhook body's HMAC-SHA256.
const SignatureHeader = "X-Sockmon-Signature"

// WebhookPayload is Alertmanager's webhook payload, version 4.
type WebhookPayload struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert of a WebhookPayload.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     string            `json:"startsAt"`
	EndsAt       string            `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Sign returns the signature header value of body.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature reports whether header is the signature of body.
func VerifySignature(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(header), []byte(Sign(secret, body)))
}

// alertStatus is an alert's status in Alertmanager's terms.
func alertStatus(a *Alert) string {
	if a.State == StateFiring {
		return "firing"
	}
	return "resolved"
}

// rfc3339 formats t as Alertmanager does (zero: 0001-01-01T00:00:00Z).
func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// webhookPayload builds the payload of m.
func webhookPayload(m *message) *WebhookPayload {
	p := &WebhookPayload{Version: "4", Status: status(m.alerts), Receiver: m.channel,
		GroupKey:    `{}:{instance=` + quote(m.instance) + `}`,
		GroupLabels: map[string]string{"instance": m.instance}, ExternalURL: m.extURL}
	for i := range m.alerts {
		a := &m.alerts[i]
		p.Alerts = append(p.Alerts, WebhookAlert{Status: alertStatus(a), Labels: a.Labels, Annotations: a.Annotations,
			StartsAt: rfc3339(a.StartsAt), EndsAt: rfc3339(a.EndsAt), GeneratorURL: m.extURL, Fingerprint: a.Fingerprint})
	}
	p.CommonLabels = common(m.alerts, func(a *Alert) map[string]string { return a.Labels })
	p.CommonAnnotations = common(m.alerts, func(a *Alert) map[string]string { return a.Annotations })
	return p
}

// common is the key/value pairs every alert of list shares.
func common(list []Alert, get func(*Alert) map[string]string) map[string]string {
	out := map[string]string{}
	if len(list) == 0 {
		return out
	}
	for k, v := range get(&list[0]) {
		out[k] = v
	}
	for i := 1; i < len(list); i++ {
		m := get(&list[i])
		for k, v := range out {
			if m[k] != v {
				delete(out, k)
			}
		}
	}
	return out
}

type webhookSender struct {
	cfg    *ChannelConfig
	client *http.Client
}

func (s *webhookSender) send(ctx context.Context, m *message) error {
	body, err := json.Marshal(webhookPayload(m))
	if err != nil {
		return &permanentError{err}
	}
	h := map[string]string{}
	if s.cfg.Secret != "" {
		h[SignatureHeader] = Sign([]byte(s.cfg.Secret), body)
	}
	return postJSON(ctx, s.client, s.cfg.URL, body, h)
}

// postJSON posts body and turns any non-2xx answer into an error carrying
// the status and the start of the answer's text.
func postJSON(ctx context.Context, client *http.Client, url string, body []byte, headers map[string]string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return &permanentError{err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sockmon-alerts")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	return statusError(resp.StatusCode, strings.Join(strings.Fields(string(text)), " "))
}
