package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// ReportSchema names the version of the JSON report; it changes only when a
// field is removed or changes meaning.
const ReportSchema = "sockmon.load/v1"

// Report is the result of a run, as printed by `sockmon load` and, with
// --json, written as JSON. Times are in milliseconds unless the field name
// says otherwise.
type Report struct {
	Schema      string    `json:"schema"`
	StartedAt   time.Time `json:"started_at"`
	Target      string    `json:"target"`
	Mode        Mode      `json:"mode"`
	Interrupted bool      `json:"interrupted"`
	Settings    Settings  `json:"settings"`
	// RampSeconds is how long dialling took; DurationSeconds is the
	// measured phase as it ran (shorter than asked when interrupted).
	RampSeconds     float64        `json:"ramp_seconds"`
	DurationSeconds float64        `json:"duration_seconds"`
	Connections     ConnReport     `json:"connections"`
	Messages        MessageReport  `json:"messages"`
	Latency         LatencyReport  `json:"latency_ms"`
	Publish         *PublishReport `json:"publish,omitempty"`
	Errors          ErrorReport    `json:"errors"`
	Client          ClientReport   `json:"client"`
	Server          *ServerReport  `json:"server,omitempty"`
	SLOs            []SLOResult    `json:"slos"`
	// Warnings say in words what the figures alone do not: that the server
	// is rate-limiting this client, that most connections were refused.
	Warnings []string `json:"warnings"`

	corrected   *hdrhistogram.Histogram
	uncorrected *hdrhistogram.Histogram
}

// Settings echoes the configuration the run used.
type Settings struct {
	Conns           int     `json:"conns"`
	Ramp            float64 `json:"ramp_per_second"`
	Rate            float64 `json:"rate_per_second"`
	ClosedLoop      bool    `json:"closed_loop"`
	DurationSeconds float64 `json:"duration_seconds"`
	Size            int     `json:"size_bytes"`
	TimeoutSeconds  float64 `json:"timeout_seconds"`
	Sources         int     `json:"sources"`
}

// ConnReport describes connection setup. Dropped counts connections the
// server or network closed during the run.
type ConnReport struct {
	Attempted   int64       `json:"attempted"`
	Established int64       `json:"established"`
	HeldAtEnd   int         `json:"held_at_end"`
	Dropped     int64       `json:"dropped"`
	ConnectMS   Percentiles `json:"connect_ms"`
}

// MessageReport counts messages. RequestedRate is 0 in a closed loop, and
// RateRatio (achieved / requested) is then absent. Backlog counts sends the
// open-model schedule asked for that never went out because their connection
// was still waiting for a reply when the run ended.
type MessageReport struct {
	Sent          int64    `json:"sent"`
	Received      int64    `json:"received"`
	RequestedRate float64  `json:"requested_rate"`
	AchievedRate  float64  `json:"achieved_rate"`
	ReceivedRate  float64  `json:"received_rate"`
	RateRatio     *float64 `json:"rate_ratio,omitempty"`
	Backlog       int64    `json:"backlog"`
	PingsAnswered int64    `json:"pings_answered"`
}

// LatencyReport holds the latency distributions. Corrected is measured from
// each message's intended send time (coordinated omission corrected),
// Uncorrected from its actual send time. ScheduleLag is actual minus
// intended send time: the generator's own delay plus, in the open model,
// the wait for the previous reply on the same connection (a late reply
// holds back the next send; Corrected charges that wait to the server).
type LatencyReport struct {
	Corrected   Percentiles `json:"corrected"`
	Uncorrected Percentiles `json:"uncorrected"`
	ScheduleLag Percentiles `json:"schedule_lag"`
}

// PublishReport is the publish mode's view: every publish is expected at
// every member of the room (publishers included).
type PublishReport struct {
	Room                string      `json:"room"`
	Members             int64       `json:"members"`
	Publishers          int         `json:"publishers"`
	Publishes           int64       `json:"publishes"`
	Acks                int64       `json:"acks"`
	Deliveries          int64       `json:"deliveries"`
	ExpectedDeliveries  int64       `json:"expected_deliveries"`
	DeliveriesPerSecond float64     `json:"deliveries_per_second"`
	FanoutMS            Percentiles `json:"fanout_ms"`
}

// ErrorReport counts errors by class (see the ErrClass constants). Ratio is
// Total over operations: connection attempts plus messages sent.
type ErrorReport struct {
	Total   int64            `json:"total"`
	Ratio   float64          `json:"ratio"`
	ByClass map[string]int64 `json:"by_class"`
}

// ClientReport is the generator's own cost over the measured phase.
// Utilization is CPU time over wall time over GOMAXPROCS (1 = every core
// busy); above about 0.8 the generator may be the bottleneck.
type ClientReport struct {
	CPUSeconds      float64 `json:"cpu_seconds"`
	CPUPerMessageUS float64 `json:"cpu_per_message_us"`
	Utilization     float64 `json:"utilization"`
	GOMAXPROCS      int     `json:"gomaxprocs"`
}

type reportInputs struct {
	started     time.Time
	interrupted bool
	ramp        time.Duration
	measured    time.Duration
	cpu         time.Duration
	held        int
	scrapes     scrapeSet
}

func (r *run) report(in reportInputs) *Report {
	c := &r.cfg
	secs := in.measured.Seconds()
	rep := &Report{
		Schema:      ReportSchema,
		StartedAt:   in.started.UTC(),
		Target:      c.URL,
		Mode:        c.Mode,
		Interrupted: in.interrupted,
		Settings: Settings{
			Conns: c.Conns, Ramp: c.Ramp, Rate: c.Rate, ClosedLoop: r.closedLoop,
			DurationSeconds: c.Duration.Seconds(), Size: c.Size,
			TimeoutSeconds: c.Timeout.Seconds(), Sources: len(c.Sources),
		},
		RampSeconds:     in.ramp.Seconds(),
		DurationSeconds: secs,
		Connections: ConnReport{
			Attempted:   r.stats.attempts.Load(),
			Established: r.stats.established.Load(),
			HeldAtEnd:   in.held,
			Dropped:     r.stats.dropped.Load(),
			ConnectMS:   summarize(r.connect.merged()),
		},
		SLOs: []SLOResult{},
	}
	sent, received := r.stats.sent.Load(), r.stats.received.Load()
	m := &rep.Messages
	m.Sent, m.Received, m.Backlog, m.PingsAnswered = sent, received, r.backlog(), r.stats.pings.Load()
	if c.Mode != ModeConnectOnly {
		m.RequestedRate = c.Rate
		if secs > 0 {
			m.AchievedRate = float64(sent) / secs
			m.ReceivedRate = float64(received) / secs
		}
		if c.Rate > 0 {
			ratio := m.AchievedRate / c.Rate
			m.RateRatio = &ratio
		}
	}
	rep.corrected = r.corrected.merged()
	rep.uncorrected = r.uncorrected.merged()
	rep.Latency = LatencyReport{
		Corrected:   summarize(rep.corrected),
		Uncorrected: summarize(rep.uncorrected),
		ScheduleLag: summarize(r.lag.merged()),
	}
	replies := received
	if c.Mode == ModePublish {
		members := r.pubMembers.Load()
		p := &PublishReport{
			Room: c.Room, Members: members, Publishers: len(r.publishers),
			Publishes: sent, Acks: r.stats.acks.Load(), Deliveries: r.stats.deliveries.Load(),
			ExpectedDeliveries: sent * members, FanoutMS: summarize(r.fanout.merged()),
		}
		if secs > 0 {
			p.DeliveriesPerSecond = float64(p.Deliveries) / secs
		}
		rep.Publish = p
		replies = p.Deliveries
	}
	byClass := r.stats.errorsByClass()
	total := r.stats.errTotal.Load()
	rep.Errors = ErrorReport{Total: total, ByClass: byClass}
	if ops := rep.Connections.Attempted + sent; ops > 0 {
		rep.Errors.Ratio = float64(total) / float64(ops)
	}
	procs := runtime.GOMAXPROCS(0)
	rep.Client = ClientReport{CPUSeconds: in.cpu.Seconds(), GOMAXPROCS: procs}
	if replies > 0 {
		rep.Client.CPUPerMessageUS = float64(in.cpu.Microseconds()) / float64(replies)
	}
	if secs > 0 {
		rep.Client.Utilization = in.cpu.Seconds() / secs / float64(procs)
	}
	if c.MetricsURL != "" {
		rep.Server = in.scrapes.report(c.MetricsURL)
	}
	rep.Warnings = append([]string{}, rep.policyWarnings()...)
	return rep
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	out := *rep
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(&out)
}

// WriteText writes the report for a person to read.
func (rep *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	status := "complete"
	if rep.Interrupted {
		status = "INTERRUPTED (report covers what ran)"
	}
	p("sockmon load: %s, mode %s, %s\n", rep.Target, rep.Mode, status)
	s := rep.Settings
	load := "closed loop"
	if !s.ClosedLoop {
		load = fmt.Sprintf("open model at %g msg/s", s.Rate)
	}
	if rep.Mode == ModeConnectOnly {
		load = "idle hold"
	}
	p("  %d conns, %s, %d-byte payload, %.1fs measured after a %.1fs ramp\n",
		s.Conns, load, s.Size, rep.DurationSeconds, rep.RampSeconds)
	c := rep.Connections
	p("connections: %d attempted, %d established, %d held at end, %d dropped\n",
		c.Attempted, c.Established, c.HeldAtEnd, c.Dropped)
	p("%-15s%s\n", "  time (ms)", pctHeader())
	p("%-15s%s\n", "  connect", pctLine(c.ConnectMS))
	if rep.Mode != ModeConnectOnly {
		m := rep.Messages
		p("messages: %d sent, %d received; achieved %.0f msg/s", m.Sent, m.Received, m.AchievedRate)
		if m.RateRatio != nil {
			p(" of %.0f requested (%.1f%%)", m.RequestedRate, *m.RateRatio*100)
		}
		if m.Backlog > 0 {
			p(", %d never sent (connection still waiting for a reply)", m.Backlog)
		}
		p("\n")
		p("%-15s%s\n", "latency (ms)", pctHeader())
		p("%-15s%s\n", "  corrected", pctLine(rep.Latency.Corrected))
		p("%-15s%s\n", "  uncorrected", pctLine(rep.Latency.Uncorrected))
		p("%-15s%s\n", "  send lag", pctLine(rep.Latency.ScheduleLag))
	} else if rep.Messages.PingsAnswered > 0 {
		p("server pings answered: %d\n", rep.Messages.PingsAnswered)
	}
	if pb := rep.Publish; pb != nil {
		p("publish: room %q, %d members, %d publishers, %d publishes, %d/%d deliveries, %.0f deliveries/s\n",
			pb.Room, pb.Members, pb.Publishers, pb.Publishes, pb.Deliveries, pb.ExpectedDeliveries, pb.DeliveriesPerSecond)
		p("%-15s%s\n", "  fan-out", pctLine(pb.FanoutMS))
	}
	e := rep.Errors
	p("errors: %d (%.3f%% of %s)", e.Total, e.Ratio*100, "connection attempts + messages sent")
	for _, k := range sortedKeys(e.ByClass) {
		p(", %s=%d", k, e.ByClass[k])
	}
	p("\n")
	cl := rep.Client
	p("client: %.2f CPU-s, %.1f µs CPU per reply, %.0f%% of %d cores\n",
		cl.CPUSeconds, cl.CPUPerMessageUS, cl.Utilization*100, cl.GOMAXPROCS)
	if cl.Utilization > 0.8 {
		p("  warning: the load generator used most of the machine; it may be the bottleneck\n")
	}
	if sv := rep.Server; sv != nil {
		sv.writeText(p)
	}
	for _, w := range rep.Warnings {
		p("warning: %s\n", w)
	}
	for _, r := range rep.SLOs {
		mark := "ok  "
		if !r.OK {
			mark = "FAIL"
		}
		p("slo %s %-18s observed %s\n", mark, r.Expr, r.Detail)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func pctHeader() string {
	return fmt.Sprintf("%9s %9s %9s %9s %9s %9s %9s", "p50", "p90", "p99", "p99.9", "max", "mean", "count")
}

func pctLine(q Percentiles) string {
	if q.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("%9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %9d", q.P50, q.P90, q.P99, q.P999, q.Max, q.Mean, q.Count)
}
