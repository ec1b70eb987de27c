package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/sockmon/sockmon/control/alerts"
)

// The alerts engine's flags (shared by `sockmon serve` and `sockmon
// alerts test`) and environment. Secrets come from the environment only:
//
//	SOCKMON_ALERT_WEBHOOK_SECRET   signs the webhook body (HMAC-SHA256)
//	SOCKMON_SLACK_WEBHOOK          the Slack incoming-webhook URL
//	SOCKMON_PAGERDUTY_ROUTING_KEY  the PagerDuty Events API v2 routing key
//	SOCKMON_SMTP_PASSWORD          the SMTP password
//
// SOCKMON_ALERT_EMAIL (the seed's ALERT_EMAIL) is read when
// --alert-email-to and SOCKMON_ALERT_EMAIL_TO are not set.

// alertFlags are the alert flags of serve and alerts test.
type alertFlags struct {
	interval          time.Duration
	file              string
	groupWait         time.Duration
	webhookURL        string
	emailTo           string
	smtpAddr          string
	smtpFrom          string
	smtpUser          string
	pagerDutyURL      string
	alertmanagerURLs  listFlag
	historyMaxEntries int
	historyMaxAge     time.Duration
}

// listFlag is a repeatable flag; one value may hold several, separated by
// commas (so that its environment variable can name more than one).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func (a *alertFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&a.interval, "alert-interval", alerts.DefaultInterval, "how often the alert rules are evaluated")
	fs.StringVar(&a.file, "alerts-file", "", "YAML or JSON file of alert rules, channels and routes; its rules win over stored ones of the same name; re-read on SIGHUP (a bad file keeps the rules in force)")
	fs.DurationVar(&a.groupWait, "alert-group-wait", alerts.DefaultGroupWait, "alerts that fire within this go out as one message per channel")
	fs.StringVar(&a.webhookURL, "alert-webhook-url", "", "webhook channel: POST Alertmanager's v4 payload here, signed with $SOCKMON_ALERT_WEBHOOK_SECRET when set")
	fs.StringVar(&a.emailTo, "alert-email-to", "", "email channel: comma-separated recipients (also $SOCKMON_ALERT_EMAIL); needs --smtp-addr and --smtp-from")
	fs.StringVar(&a.smtpAddr, "smtp-addr", "", "email channel: SMTP server host:port (STARTTLS required; port 465: implicit TLS)")
	fs.StringVar(&a.smtpFrom, "smtp-from", "", "email channel: sender address")
	fs.StringVar(&a.smtpUser, "smtp-user", "", "email channel: SMTP AUTH user (password from $SOCKMON_SMTP_PASSWORD)")
	fs.StringVar(&a.pagerDutyURL, "alert-pagerduty-url", alerts.DefaultPagerDutyURL, "pagerduty channel: Events API v2 endpoint (routing key from $SOCKMON_PAGERDUTY_ROUTING_KEY; EU accounts: https://events.eu.pagerduty.com/v2/enqueue)")
	fs.Var(&a.alertmanagerURLs, "alertmanager-url", "alertmanager channel: push alerts to this Alertmanager's /api/v2/alerts (repeatable, or comma-separated)")
	fs.IntVar(&a.historyMaxEntries, "alert-history-max-entries", alerts.DefaultHistoryMaxEntries, "alert history entries kept in the store")
	fs.DurationVar(&a.historyMaxAge, "alert-history-max-age", alerts.DefaultHistoryMaxAge, "alert history entries older than this are pruned")
}

// channels builds the channels the flags and the environment configure,
// named after their type.
func (a *alertFlags) channels(getenv func(string) string) ([]alerts.ChannelConfig, error) {
	var out []alerts.ChannelConfig
	if a.webhookURL != "" {
		out = append(out, alerts.ChannelConfig{Name: alerts.TypeWebhook, Type: alerts.TypeWebhook, URL: a.webhookURL, Secret: getenv("SOCKMON_ALERT_WEBHOOK_SECRET")})
	}
	if u := getenv("SOCKMON_SLACK_WEBHOOK"); u != "" {
		out = append(out, alerts.ChannelConfig{Name: alerts.TypeSlack, Type: alerts.TypeSlack, URL: u})
	}
	if k := getenv("SOCKMON_PAGERDUTY_ROUTING_KEY"); k != "" {
		out = append(out, alerts.ChannelConfig{Name: alerts.TypePagerDuty, Type: alerts.TypePagerDuty, URL: a.pagerDutyURL, RoutingKey: k})
	}
	to := a.emailTo
	if to == "" {
		to = getenv("SOCKMON_ALERT_EMAIL")
	}
	if to != "" || a.smtpAddr != "" {
		var rcpt []string
		for _, s := range strings.Split(to, ",") {
			if s = strings.TrimSpace(s); s != "" {
				rcpt = append(rcpt, s)
			}
		}
		out = append(out, alerts.ChannelConfig{Name: alerts.TypeEmail, Type: alerts.TypeEmail, SMTPAddr: a.smtpAddr, SMTPUser: a.smtpUser,
			SMTPPassword: getenv("SOCKMON_SMTP_PASSWORD"), From: a.smtpFrom, To: rcpt})
	}
	if len(a.alertmanagerURLs) > 0 {
		out = append(out, alerts.ChannelConfig{Name: alerts.TypeAlertmanager, Type: alerts.TypeAlertmanager, URLs: slices.Clone(a.alertmanagerURLs)})
	}
	return out, nil
}

// config is the alerts engine's configuration from the flags (the
// store, metrics, sources and remediator come from control).
func (a *alertFlags) config(getenv func(string) string) (alerts.Config, error) {
	chans, err := a.channels(getenv)
	if err != nil {
		return alerts.Config{}, err
	}
	gw := a.groupWait
	if gw == 0 {
		gw = -1 // the command line's zero: no wait
	}
	return alerts.Config{Interval: a.interval, GroupWait: gw, Channels: chans,
		HistoryMaxEntries: a.historyMaxEntries, HistoryMaxAge: a.historyMaxAge}, nil
}

// loadAlertsFile reads the rules file and puts it in force; on an error
// nothing changes.
func loadAlertsFile(e *alerts.Engine, path string, getenv func(string) string) (int, error) {
	f, err := alerts.LoadFile(path, getenv)
	if err != nil {
		return 0, err
	}
	var known []string
	for _, c := range e.Config().Channels {
		known = append(known, c.Name)
	}
	if err := f.CheckNotify(known); err != nil {
		return 0, err
	}
	if err := e.ApplyFile(f); err != nil {
		return 0, fmt.Errorf("alerts file %s: %w", path, err)
	}
	return len(f.Rules), nil
}

// alertsCommand runs `sockmon alerts test --channel NAME`: it builds the
// channels from the same flags, environment and rules file as serve, and
// sends one test notification.
func alertsCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprintln(stderr, "Usage: sockmon alerts test --channel NAME [alert flags]")
		return 2
	}
	fs := newFlagSet("alerts test")
	var a alertFlags
	a.register(fs)
	channel := fs.String("channel", "", "the channel to test: webhook, slack, pagerduty, email, alertmanager, or a channel of --alerts-file")
	timeout := fs.Duration("timeout", 10*time.Second, "how long the send may take")
	if err := parseWithEnv(fs, args[1:], os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			envFlagUsage(stdout, fs, "sockmon alerts test --channel NAME [flags]", os.Getenv)
			return 0
		}
		badFlags(stderr, fs, err)
		return 2
	}
	chans, _ := a.channels(os.Getenv)
	if a.file != "" {
		f, err := alerts.LoadFile(a.file, os.Getenv)
		if err != nil {
			fmt.Fprintf(stderr, "sockmon alerts test: %v\n", err)
			return 2
		}
		for _, c := range f.Channels {
			chans = slices.DeleteFunc(chans, func(x alerts.ChannelConfig) bool { return x.Name == c.Name })
			chans = append(chans, c)
		}
	}
	var names []string
	var target *alerts.ChannelConfig
	for i := range chans {
		names = append(names, chans[i].Name)
		if chans[i].Name == *channel {
			target = &chans[i]
		}
	}
	if target == nil {
		fmt.Fprintf(stderr, "sockmon alerts test: --channel %q is not configured; configured: %s\n", *channel, strings.Join(names, ", "))
		return 2
	}
	by := "sockmon alerts test"
	if u, err := user.Current(); err == nil {
		by += " (" + u.Username + ")"
	}
	if err := alerts.SendTest(context.Background(), *target, "", by, *timeout); err != nil {
		fmt.Fprintf(stderr, "sockmon alerts test: channel %s: %v\n", *channel, err)
		return 1
	}
	fmt.Fprintf(stdout, "test notification sent on channel %s\n", *channel)
	return 0
}
