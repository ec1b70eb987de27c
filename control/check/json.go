package check

import (
	"encoding/json"
	"io"
	"time"
)

// The JSON format: one object per check, on one line. Its field names are
// a contract (README "Monitoring"); new fields may be added, none renamed.
// Times are milliseconds; a value that could not be measured is null.
//
//	state        "OK", "WARNING", "CRITICAL" or "UNKNOWN"
//	exitCode     0, 1, 2 or 3
//	summary      the status text, unabridged
//	problems     [{state, text}]: what made the state other than OK
//	checkedAt    when the check began (RFC 3339, UTC)
//	durationMs   the whole check
//	timeoutMs    the bound it ran under (-t); timedOut: whether it expired
//	health       {url, method, detailed, httpStatus, responseTimeMs,
//	             timedOut, error, body, detail}: body is the server's
//	             health body as sent (the README), detail the detailed view's
//	             extra (with an admin token): connections since start,
//	             process, maintenance, ready, draining, heartbeatAgeMs
//	canary       absent without --ws-url; {url, ok, failedStep, error,
//	             httpStatus, refusalExpected, closeCode, timedOut, totalMs,
//	             steps: [{name, durationMs, ok, error}]}
//	measures     [{label, value, unit, warning, critical, min, max, state}]:
//	             the perfdata of the Nagios format
type jsonReport struct {
	State      State         `json:"state"`
	ExitCode   int           `json:"exitCode"`
	Summary    string        `json:"summary"`
	Problems   []jsonProblem `json:"problems"`
	CheckedAt  time.Time     `json:"checkedAt"`
	DurationMs float64       `json:"durationMs"`
	TimeoutMs  float64       `json:"timeoutMs"`
	TimedOut   bool          `json:"timedOut"`
	Health     jsonHealth    `json:"health"`
	Canary     *jsonCanary   `json:"canary,omitempty"`
	Measures   []jsonMeasure `json:"measures"`
}

type jsonProblem struct {
	State State  `json:"state"`
	Text  string `json:"text"`
}

type jsonHealth struct {
	URL            string        `json:"url"`
	Method         string        `json:"method"`
	Detailed       bool          `json:"detailed"`
	HTTPStatus     int           `json:"httpStatus"`
	ResponseTimeMs *float64      `json:"responseTimeMs"`
	TimedOut       bool          `json:"timedOut"`
	Error          string        `json:"error,omitempty"`
	Body           *HealthBody   `json:"body"`
	Detail         *HealthDetail `json:"detail,omitempty"`
}

type jsonCanary struct {
	URL             string     `json:"url"`
	OK              bool       `json:"ok"`
	FailedStep      string     `json:"failedStep,omitempty"`
	Error           string     `json:"error,omitempty"`
	HTTPStatus      int        `json:"httpStatus,omitempty"`
	RefusalExpected bool       `json:"refusalExpected"`
	CloseCode       int        `json:"closeCode,omitempty"`
	TimedOut        bool       `json:"timedOut"`
	TotalMs         float64    `json:"totalMs"`
	Steps           []jsonStep `json:"steps"`
}

type jsonStep struct {
	Name       string  `json:"name"`
	DurationMs float64 `json:"durationMs"`
	OK         bool    `json:"ok"`
	Error      string  `json:"error,omitempty"`
}

type jsonMeasure struct {
	Label    string   `json:"label"`
	Value    *float64 `json:"value"`
	Unit     string   `json:"unit"`
	Warning  string   `json:"warning,omitempty"`
	Critical string   `json:"critical,omitempty"`
	Min      *float64 `json:"min,omitempty"`
	Max      *float64 `json:"max,omitempty"`
	State    State    `json:"state"`
}

// WriteJSON writes r as one JSON object and a newline; the fields are
// listed above.
func WriteJSON(w io.Writer, r *Result) error {
	h := &r.Health
	rep := jsonReport{
		State: r.State, ExitCode: int(r.State), Summary: r.Summary(0), Problems: []jsonProblem{},
		CheckedAt: r.Start.UTC().Truncate(time.Millisecond), DurationMs: durMs(r.Duration), TimeoutMs: durMs(r.Timeout),
		TimedOut: r.TimedOut,
		Health: jsonHealth{URL: h.URL, Method: h.Method, Detailed: r.Detailed, HTTPStatus: h.HTTPStatus,
			TimedOut: h.TimedOut, Body: h.Body, Detail: h.Detail},
		Measures: []jsonMeasure{},
	}
	for _, p := range r.Problems {
		rep.Problems = append(rep.Problems, jsonProblem(p))
	}
	if h.Err != nil {
		rep.Health.Error = h.Err.Error()
	}
	if h.HTTPStatus != 0 && h.Err == nil {
		ms := durMs(h.ResponseTime)
		rep.Health.ResponseTimeMs = &ms
	}
	if c := r.Canary; c != nil {
		jc := &jsonCanary{URL: c.URL, OK: c.OK, FailedStep: c.FailedStep(), HTTPStatus: c.HTTPStatus,
			RefusalExpected: r.canaryRefusalExpected(), CloseCode: c.CloseCode, TimedOut: c.TimedOut,
			TotalMs: durMs(c.Total()), Steps: []jsonStep{}}
		if err := c.Err(); err != nil {
			jc.Error = err.Error()
		}
		for _, s := range c.Steps {
			js := jsonStep{Name: s.Name, DurationMs: durMs(s.Duration), OK: s.Err == nil}
			if s.Err != nil {
				js.Error = s.Err.Error()
			}
			jc.Steps = append(jc.Steps, js)
		}
		rep.Canary = jc
	}
	for _, m := range r.Measures {
		jm := jsonMeasure{Label: m.Label, Unit: m.Unit, Min: m.Min, Max: m.Max, State: m.State}
		if m.Known {
			v := m.Value
			jm.Value = &v
		}
		if m.Warning != nil {
			jm.Warning = m.Warning.String()
		}
		if m.Critical != nil {
			jm.Critical = m.Critical.String()
		}
		rep.Measures = append(rep.Measures, jm)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
