package alerts

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"
)

// The email channel sends one plain-text message per group over SMTP
// (--smtp-addr, --smtp-from, --smtp-user, SOCKMON_SMTP_PASSWORD,
// --alert-email-to). TLS is mandatory: STARTTLS, or implicit TLS on port
// 465; a server that offers neither is refused, so the password never
// crosses the network in the clear. With a user, SMTP AUTH picks the best
// mechanism the server offers (PLAIN or LOGIN only over TLS).

type emailSender struct {
	cfg *ChannelConfig
}

// emailContent is the subject and body of m.
func emailContent(m *message) (subject, body string) {
	firing := 0
	for i := range m.alerts {
		if m.alerts[i].State == StateFiring {
			firing++
		}
	}
	switch {
	case m.test:
		subject = "[TEST] sockmon on " + m.instance
	case firing > 0:
		subject = fmt.Sprintf("[FIRING:%d] sockmon on %s: %s", firing, m.instance, names(m.alerts, 5))
	default:
		subject = fmt.Sprintf("[RESOLVED] sockmon on %s: %s", m.instance, names(m.alerts, 5))
	}
	var b strings.Builder
	for i := range m.alerts {
		a := &m.alerts[i]
		state := alertStatus(a)
		if m.test {
			state = "test"
		}
		fmt.Fprintf(&b, "%s [%s] %s\n", strings.ToUpper(state), a.Level, a.Annotations["summary"])
		if d := a.Annotations["description"]; d != "" {
			fmt.Fprintf(&b, "  %s\n", d)
		}
		fmt.Fprintf(&b, "  since %s", rfc3339(a.StartsAt))
		if a.State != StateFiring && !a.EndsAt.IsZero() {
			fmt.Fprintf(&b, ", resolved %s", rfc3339(a.EndsAt))
		}
		b.WriteString("\n")
		if u := a.Annotations["runbook_url"]; u != "" {
			fmt.Fprintf(&b, "  runbook: %s\n", u)
		}
		b.WriteString("\n")
	}
	if m.extURL != "" {
		fmt.Fprintf(&b, "%s\n", m.extURL)
	}
	return subject, b.String()
}

func (s *emailSender) send(ctx context.Context, m *message) error {
	c := s.cfg
	host, portText, err := net.SplitHostPort(c.SMTPAddr)
	if err != nil {
		return &permanentError{fmt.Errorf("smtp address: %w", err)}
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return &permanentError{fmt.Errorf("smtp port %q: %w", portText, err)}
	}
	msg := mail.NewMsg()
	if err := msg.From(c.From); err != nil {
		return &permanentError{err}
	}
	if err := msg.To(c.To...); err != nil {
		return &permanentError{err}
	}
	subject, body := emailContent(m)
	msg.Subject(subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(mail.TypeTextPlain, body)

	opts := []mail.Option{mail.WithPort(port), mail.WithTLSPolicy(mail.TLSMandatory)}
	if port == 465 {
		opts = append(opts, mail.WithSSL())
	}
	if c.TLSConfig != nil {
		tc := c.TLSConfig.Clone()
		if tc.ServerName == "" {
			tc.ServerName = host
		}
		opts = append(opts, mail.WithTLSConfig(tc))
	}
	if c.SMTPUser != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(c.SMTPUser), mail.WithPassword(c.SMTPPassword))
	}
	if dl, ok := ctx.Deadline(); ok {
		opts = append(opts, mail.WithTimeout(max(time.Until(dl), time.Millisecond)))
	}
	client, err := mail.NewClient(host, opts...)
	if err != nil {
		return &permanentError{err}
	}
	return client.DialAndSendWithContext(ctx, msg)
}
