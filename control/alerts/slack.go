package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// The Slack channel posts to an incoming webhook (SOCKMON_SLACK_WEBHOOK,
// a secret): {"text": ...} in Slack's mrkdwn, one line per alert. Slack
// answers 200 "ok"; other answers are errors, retried only for 429 and
// 5xx.

// SlackPayload is what the Slack channel posts.
type SlackPayload struct {
	Text string `json:"text"`
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// slackText renders m.
func slackText(m *message) string {
	var b strings.Builder
	firing := 0
	for i := range m.alerts {
		if m.alerts[i].State == StateFiring {
			firing++
		}
	}
	switch {
	case m.test:
		fmt.Fprintf(&b, "*[TEST] sockmon on %s*\n", slackEscape(m.instance))
	case firing > 0:
		fmt.Fprintf(&b, "*[FIRING:%d] sockmon on %s*\n", firing, slackEscape(m.instance))
	default:
		fmt.Fprintf(&b, "*[RESOLVED] sockmon on %s*\n", slackEscape(m.instance))
	}
	for i := range m.alerts {
		a := &m.alerts[i]
		icon, state := ":red_circle:", "firing"
		switch {
		case m.test:
			icon, state = ":white_circle:", "test"
		case a.State != StateFiring:
			icon, state = ":white_check_mark:", "resolved"
		case a.Level == LevelInfo:
			icon = ":large_blue_circle:"
		case a.Level == LevelWarning:
			icon = ":large_orange_circle:"
		}
		extra := ""
		if i < len(m.reasons) && m.reasons[i] == EventEscalated {
			extra = ", escalated"
		}
		if a.Flapping {
			extra += ", flapping"
		}
		fmt.Fprintf(&b, "%s *%s* (%s) %s%s: %s\n", icon, slackEscape(a.Name), a.Level, state, extra, slackEscape(a.Annotations["summary"]))
		if d := a.Annotations["description"]; d != "" {
			fmt.Fprintf(&b, ">%s\n", slackEscape(d))
		}
		if u := a.Annotations["runbook_url"]; u != "" {
			fmt.Fprintf(&b, "><%s|Runbook>\n", u)
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

type slackSender struct {
	cfg    *ChannelConfig
	client *http.Client
}

func (s *slackSender) send(ctx context.Context, m *message) error {
	body, err := json.Marshal(SlackPayload{Text: slackText(m)})
	if err != nil {
		return &permanentError{err}
	}
	return postJSON(ctx, s.client, s.cfg.URL, body, nil)
}
