package metrics

import "time"

// Snapshot is a copy of the current values, the rolling windows and the
// process statistics, for the control side (health, dashboard, alerts). It
// owns all its memory. Latencies are in milliseconds, as in the JSON
// contract; rates are per second.
type Snapshot struct {
	Time        time.Time        `json:"timestamp"`
	UptimeMs    int64            `json:"uptimeMs"`
	Ready       bool             `json:"ready"`
	Maintenance bool             `json:"maintenance"`
	Connections ConnectionCounts `json:"connections"`
	Totals      Totals           `json:"totals"`

	// Windows holds the last 1, 5 and 15 minutes and the time since start,
	// indexed by Window1m, Window5m, Window15m and WindowSinceStart.
	Windows [NumWindows]Window `json:"windows"`

	// Kinds is the latency of each message kind since start, in Kind order.
	Kinds []KindLatency `json:"kinds"`
	// Handshake is the WebSocket upgrade latency since start.
	Handshake Latency `json:"handshake"`

	Process ProcessStats `json:"process"`
}

// ConnectionCounts is the number of open connections.
type ConnectionCounts struct {
	Total         int64 `json:"total"`
	Authenticated int64 `json:"authenticated"`
	Anonymous     int64 `json:"anonymous"`
}

// Totals are counts since start.
type Totals struct {
	ConnectionsAccepted uint64 `json:"connectionsAccepted"`
	ConnectionsRejected uint64 `json:"connectionsRejected"`
	// RejectedByReason splits ConnectionsRejected by the reason label of
	// sockmon_connections_rejected_total; every reason is present.
	RejectedByReason map[string]uint64 `json:"rejectedByReason"`
	Disconnections   uint64            `json:"disconnections"`
	MessagesReceived uint64            `json:"messagesReceived"`
	MessagesSent     uint64            `json:"messagesSent"`
	BytesReceived    uint64            `json:"bytesReceived"`
	BytesSent        uint64            `json:"bytesSent"`
	MessagesDropped  uint64            `json:"messagesDropped"`
	MessageErrors    uint64            `json:"messageErrors"`
	ErrorsByCode     map[string]uint64 `json:"errorsByCode"`
	RateLimited      uint64            `json:"rateLimited"`
}

// Window is the traffic and latency of one rolling window.
type Window struct {
	Name    string  `json:"name"`   // "1m", "5m", "15m" or "start"
	SpanMs  int64   `json:"spanMs"` // time actually covered
	Latency Latency `json:"latency"`

	MessagesReceivedPerSec float64 `json:"messagesReceivedPerSec"`
	MessagesSentPerSec     float64 `json:"messagesSentPerSec"`
	BytesReceivedPerSec    float64 `json:"bytesReceivedPerSec"`
	BytesSentPerSec        float64 `json:"bytesSentPerSec"`
	ErrorsPerSec           float64 `json:"errorsPerSec"`
	ErrorRate              float64 `json:"errorRate"` // error replies per message received
}

// KindLatency is the latency of one message kind.
type KindLatency struct {
	Kind    string  `json:"kind"`
	Latency Latency `json:"latency"`
}

// Snapshot collects the shards and returns the current state. It takes the
// readers' lock for well under a millisecond and never blocks a writer.
func (m *Metrics) Snapshot() Snapshot {
	auth, anon := m.Connections()
	s := Snapshot{
		Ready:       m.ready.Load(),
		Maintenance: m.maintenance.Load(),
		Connections: ConnectionCounts{Total: auth + anon, Authenticated: auth, Anonymous: anon},
		Kinds:       make([]KindLatency, numKinds),
	}
	for _, c := range m.accepted {
		s.Totals.ConnectionsAccepted += c.Get()
	}
	s.Totals.RejectedByReason = make(map[string]uint64, numRejectReasons)
	for r, c := range m.rejected {
		n := c.Get()
		s.Totals.ConnectionsRejected += n
		s.Totals.RejectedByReason[RejectReason(r).String()] = n
	}
	for _, byInit := range m.disconnects {
		for _, c := range byInit {
			s.Totals.Disconnections += c.Get()
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.collectLocked(now)
	s.Time = now
	up := now.Sub(m.start)
	s.UptimeMs = up.Milliseconds()
	s.Process = m.procLast

	t := &m.col.prevTally // everything up to this collect
	s.Totals.MessagesReceived = t.received
	s.Totals.MessagesSent = t.sent
	s.Totals.BytesReceived = t.bytesReceived
	s.Totals.BytesSent = t.bytesSent
	s.Totals.MessagesDropped = t.dropped
	s.Totals.MessageErrors = t.errorsTotal()
	s.Totals.ErrorsByCode = make(map[string]uint64, numErrorCodes)
	for c, v := range t.errors {
		s.Totals.ErrorsByCode[ErrorCode(c).String()] = v
	}
	for _, v := range t.rateLimited {
		s.Totals.RateLimited += v
	}

	for i, w := range m.windows {
		s.Windows[i] = m.window(windowNames[i], w.span(now), &w.sum)
	}
	m.scratch.reset()
	for k := range numKinds {
		m.scratch.add(&m.col.total[k])
		s.Kinds[k] = KindLatency{Kind: k.String(), Latency: m.q.latency(&m.col.total[k])}
	}
	since := slice{tally: *t}
	since.msgs = m.scratch
	s.Windows[WindowSinceStart] = m.window(windowNames[WindowSinceStart], up, &since)
	s.Handshake = m.q.latency(&m.col.total[recHandshake])
	return s
}

// window summarises what d holds over span.
func (m *Metrics) window(name string, span time.Duration, d *slice) Window {
	w := Window{Name: name, SpanMs: span.Milliseconds(), Latency: m.q.latency(&d.msgs)}
	if sec := span.Seconds(); sec > 0 {
		w.MessagesReceivedPerSec = float64(d.tally.received) / sec
		w.MessagesSentPerSec = float64(d.tally.sent) / sec
		w.BytesReceivedPerSec = float64(d.tally.bytesReceived) / sec
		w.BytesSentPerSec = float64(d.tally.bytesSent) / sec
		w.ErrorsPerSec = float64(d.tally.errorsTotal()) / sec
	}
	if d.tally.received > 0 {
		w.ErrorRate = float64(d.tally.errorsTotal()) / float64(d.tally.received)
	}
	return w
}
