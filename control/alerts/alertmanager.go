package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// The alertmanager channel pushes to POST /api/v2/alerts of each
// configured Alertmanager (--alertmanager-url, repeatable), so its own
// routing, grouping, inhibition and silences apply. Alertmanager asks
// clients to re-send firing alerts periodically and resolved ones for a
// while: the engine pushes every firing alert at every evaluation with
// endsAt four intervals ahead (if the node goes away, Alertmanager resolves
// it by itself), and a resolved alert, with its real endsAt, for 5
// minutes.

// AlertmanagerAlert is one alert of a push (Alertmanager's postableAlert).
type AlertmanagerAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     string            `json:"startsAt"`
	EndsAt       string            `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

type alertmanagerSender struct {
	cfg    *ChannelConfig
	client *http.Client
}

func (s *alertmanagerSender) send(ctx context.Context, m *message) error {
	list := make([]AlertmanagerAlert, 0, len(m.alerts))
	for i := range m.alerts {
		a := &m.alerts[i]
		list = append(list, AlertmanagerAlert{Labels: a.Labels, Annotations: a.Annotations, StartsAt: rfc3339(a.StartsAt),
			EndsAt: rfc3339(a.EndsAt), GeneratorURL: m.extURL})
	}
	body, err := json.Marshal(list)
	if err != nil {
		return &permanentError{err}
	}
	var errs []error
	for _, u := range s.cfg.URLs {
		if err := postJSON(ctx, s.client, strings.TrimSuffix(u, "/")+"/api/v2/alerts", body, nil); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", hostOnly(u), cleanError(err)))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	// Retry unless every failure is permanent.
	for _, err := range errs {
		var p *permanentError
		if !errors.As(err, &p) {
			return errors.Join(errs...)
		}
	}
	return &permanentError{errors.Join(errs...)}
}
