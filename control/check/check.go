package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultTimeout bounds a check when Config.Timeout is zero: the "typical
// 10 seconds" of the Monitoring Plugins guidelines.
const DefaultTimeout = 10 * time.Second

// ErrConfig is wrapped by the errors Run returns for an invalid Config.
var ErrConfig = errors.New("check: invalid configuration")

// Config says what to check and how to judge it. The zero value of every
// field but URL means "default" or "not checked".
type Config struct {
	// URL is the control side, http://host:8081. With no path (or "/") the
	// check reads HealthPath under it; any other path is used as given.
	URL string
	// AdminToken, when set, makes the check read the detailed view (POST
	// HealthPath with Authorization: Bearer). It appears in no output.
	AdminToken string
	// WSURL, when set, runs the canary against it (ws://host:8080/ws).
	WSURL string
	// ClientToken, when set, authenticates the canary's upgrade
	// (Authorization: Bearer), for servers run with --require-auth.
	ClientToken string
	// Timeout bounds the whole check, health request and canary together;
	// zero means DefaultTimeout.
	Timeout time.Duration
	// TimeoutCritical reports an expired Timeout as CRITICAL; by default it
	// is UNKNOWN. A refused connection or a failed name lookup is CRITICAL
	// either way.
	TimeoutCritical bool

	// ResponseTime judges the health request's time as the check saw it,
	// in milliseconds.
	ResponseTime Thresholds
	// Connections judges the open WebSocket connections.
	Connections Thresholds
	// ErrorRate judges the server's message error rate over the last
	// minute, in percent (0-100).
	ErrorRate Thresholds
	// P99 judges the server's p99 message latency over the last minute, in
	// milliseconds.
	P99 Thresholds
	// StatusStates maps a health status to a state; a status missing from
	// it takes DefaultStatusState.
	StatusStates map[string]State

	// HTTPClient sends the health request; nil means a client without
	// keep-alive that honours the proxy environment variables. Config.Timeout
	// applies whatever the client's own Timeout.
	HTTPClient *http.Client
}

// healthURL is the health endpoint Config.URL names.
func (c *Config) healthURL() (string, error) {
	if c.URL == "" {
		return "", fmt.Errorf("%w: no URL", ErrConfig)
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return "", fmt.Errorf("%w: URL %q: %v", ErrConfig, c.URL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%w: URL %q: want http://host:port", ErrConfig, c.URL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = HealthPath
	}
	return u.String(), nil
}

// statusState maps a health status to its state.
func (c *Config) statusState(status string) State {
	if st, ok := c.StatusStates[status]; ok {
		return st
	}
	return DefaultStatusState(status)
}

func (c *Config) timeoutState() State {
	if c.TimeoutCritical {
		return Critical
	}
	return Unknown
}

// Problem is one reason a check is not OK.
type Problem struct {
	State State
	Text  string
}

// Measure is one measured value with its thresholds, as perfdata shows it
// (the Monitoring Plugins development guidelines).
type Measure struct {
	// Label is the perfdata label: response_time, connections...
	Label string
	// Value is meaningful only when Known; an unknown value is perfdata's
	// "U".
	Value float64
	Known bool
	// Unit is the perfdata unit of measurement: "", "ms", "s", "%" or "B".
	Unit              string
	Warning, Critical *Range
	Min, Max          *float64
	// State is the value judged against the thresholds; OK when unknown or
	// without thresholds.
	State State
	// Extra marks a measure that the Nagios output moves to the long-output
	// perfdata from -v 2 on.
	Extra bool
}

// Result is everything a check measured and its verdict. Formatters read
// it; it is not safe for concurrent mutation.
type Result struct {
	// State is the verdict, also the exit code.
	State State
	// Problems says what made State other than OK, in the order found.
	Problems []Problem
	// Start is when the check began; Duration how long it took in all.
	Start    time.Time
	Duration time.Duration
	// Timeout is the bound the check ran under; TimedOut is set when it
	// expired.
	Timeout  time.Duration
	TimedOut bool

	Health Health
	// Canary is nil when no WSURL was given.
	Canary *Canary
	// Measures are the values judged and reported, in a fixed order.
	Measures []Measure

	// StatusStates is the status-to-state mapping in force, defaults
	// included.
	StatusStates map[string]State
	// TimeoutState is the state an expired Timeout gives.
	TimeoutState State
	// Detailed is set when an admin token was used.
	Detailed bool
}

// Run checks the server cfg names: it reads the health endpoint, times it,
// runs the canary when cfg.WSURL is set, and judges the outcome. It blocks
// for at most cfg.Timeout (or until ctx ends). Every failure of the server
// or of the network is part of the Result with its state; the error is
// non-nil only for an invalid Config (wrapping ErrConfig), which is an
// UNKNOWN for the caller to report.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	hurl, err := cfg.healthURL()
	if err != nil {
		return nil, err
	}
	if cfg.WSURL != "" {
		u, err := url.Parse(cfg.WSURL)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return nil, fmt.Errorf("%w: WebSocket URL %q: want ws://host:port/path", ErrConfig, cfg.WSURL)
		}
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("%w: timeout %s is negative", ErrConfig, cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true}}
	}
	r := &Result{Start: time.Now(), Timeout: cfg.Timeout, Detailed: cfg.AdminToken != ""}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	r.Health = fetchHealth(ctx, client, hurl, cfg.AdminToken)
	if cfg.WSURL != "" {
		r.Canary = runCanary(ctx, cfg.WSURL, cfg.ClientToken)
	}
	r.Duration = time.Since(r.Start)
	r.evaluate(&cfg)
	return r, nil
}

// evaluate fills Measures, Problems and State from what was measured.
func (r *Result) evaluate(cfg *Config) {
	r.StatusStates = make(map[string]State, len(statuses))
	for _, s := range statuses {
		r.StatusStates[s] = cfg.statusState(s)
	}
	for s, st := range cfg.StatusStates {
		r.StatusStates[s] = st
	}
	r.TimeoutState = cfg.timeoutState()
	r.Problems, r.State = nil, OK
	problem := func(st State, format string, a ...any) {
		r.Problems = append(r.Problems, Problem{State: st, Text: fmt.Sprintf(format, a...)})
		r.State = Worst(r.State, st)
	}

	h := &r.Health
	switch {
	case h.TimedOut:
		r.TimedOut = true
		problem(r.TimeoutState, "no health answer within the %s timeout from %s", r.Timeout, h.URL)
	case h.Err != nil:
		var ae *AdminError
		var se *StatusError
		switch {
		case errors.As(h.Err, &ae):
			problem(Unknown, "%v", ae)
		case errors.As(h.Err, &se):
			problem(Critical, "%s: %v", h.URL, se)
		default:
			problem(Critical, "cannot reach %s: %s", h.URL, rootCause(h.Err))
		}
	default:
		st := cfg.statusState(h.Body.Status)
		if st != OK {
			problem(st, "%s", r.statusText())
		}
	}

	r.Measures = r.measures(cfg)
	for _, m := range r.Measures {
		if m.Known && m.State != OK {
			var rng *Range
			if m.State == Critical {
				rng = m.Critical
			} else {
				rng = m.Warning
			}
			problem(m.State, "%s %s%s %s", m.Label, formatNumber(m.Value), m.Unit, rng.violation(m.Value))
		}
	}

	if c := r.Canary; c != nil && !c.OK {
		switch {
		case c.TimedOut:
			r.TimedOut = true
			problem(r.TimeoutState, "canary: no %s reply within the %s timeout", c.FailedStep(), r.Timeout)
		case r.canaryRefusalExpected():
			// A node in maintenance or draining refuses new clients with
			// 503: that is the status already judged, not a second fault.
		default:
			problem(Critical, "canary %s failed: %s", c.FailedStep(), rootCause(c.Err()))
		}
	}
}

// stateOf is the state status maps to in this result.
func (r *Result) stateOf(status string) State {
	if st, ok := r.StatusStates[status]; ok {
		return st
	}
	return DefaultStatusState(status)
}

// canaryRefusalExpected tells whether the canary was refused with 503 by a
// node whose health says it takes no new clients.
func (r *Result) canaryRefusalExpected() bool {
	c, b := r.Canary, r.Health.Body
	return c != nil && c.HTTPStatus == http.StatusServiceUnavailable && b != nil &&
		(b.Status == StatusMaintenance || b.Status == StatusDraining)
}

// statusText describes the health status: "maintenance: upgrade",
// "unhealthy (memory_over_limit)".
func (r *Result) statusText() string {
	b := r.Health.Body
	s := b.Status
	if d := r.Health.Detail; d != nil && b.Status == StatusMaintenance && d.Maintenance.Reason != "" {
		s += ": " + d.Maintenance.Reason
	} else if len(b.Reasons) > 0 && !(len(b.Reasons) == 1 && b.Reasons[0] == b.Status) {
		s += " (" + strings.Join(b.Reasons, ", ") + ")"
	}
	return s
}

// rootCause is the useful part of err for a status line: a network
// error without the request and addresses around it ("connect: connection
// refused", "lookup nosuch.example: no such host").
func rootCause(err error) string {
	if err == nil {
		return ""
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// measures lists the values the check reports, in perfdata order.
func (r *Result) measures(cfg *Config) []Measure {
	zero, hundred := 0.0, 100.0
	var ms []Measure
	add := func(label string, v float64, known bool, unit string, t Thresholds, extra bool) {
		m := Measure{Label: label, Value: v, Known: known, Unit: unit, Warning: t.Warning, Critical: t.Critical, Min: &zero, Extra: extra}
		if unit == "%" {
			m.Max = &hundred
		}
		if known {
			m.State = t.State(v)
		}
		ms = append(ms, m)
	}
	h := &r.Health
	b := h.Body
	answered := h.Err == nil && !h.TimedOut
	add("response_time", durMs(h.ResponseTime), answered, "ms", cfg.ResponseTime, false)
	var p HealthPerformance
	var c HealthConnections
	if b != nil {
		p, c = b.Details.Performance, b.Details.Connections
	}
	add("connections", float64(c.Total), b != nil, "", cfg.Connections, false)
	add("error_rate", p.ErrorRate*100, b != nil, "%", cfg.ErrorRate, false)
	add("p99_latency", p.P99ResponseTime, b != nil, "ms", cfg.P99, false)
	none := Thresholds{}
	add("authenticated", float64(c.Authenticated), b != nil, "", none, true)
	add("anonymous", float64(c.Anonymous), b != nil, "", none, true)
	add("avg_latency", p.AvgResponseTime, b != nil, "ms", none, true)
	add("p95_latency", p.P95ResponseTime, b != nil, "ms", none, true)
	add("messages_per_minute", p.MessagesPerMinute, b != nil, "", none, true)
	var up, srv float64
	if b != nil {
		up, srv = float64(b.Uptime)/1000, b.ResponseTime
	}
	add("uptime", up, b != nil, "s", none, true)
	add("server_time", srv, b != nil, "ms", none, true)
	if d := h.Detail; d != nil {
		add("rss", float64(d.Process.RSSBytes), d.Process.Available, "B", none, true)
		add("goroutines", float64(d.Process.Goroutines), true, "", none, true)
	}
	if cn := r.Canary; cn != nil {
		for _, name := range steps {
			s, ran := cn.step(name)
			add("canary_"+name, durMs(s.Duration), ran && s.Err == nil, "ms", none, true)
		}
		add("canary_total", durMs(cn.Total()), cn.OK, "ms", none, true)
	}
	return ms
}

// durMs is d in milliseconds.
func durMs(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}
