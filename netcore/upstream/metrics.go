package upstream

import (
	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore/breaker"
)

// Metric families (Prometheus's naming and exposition conventions), beside breaker.StateMetric.
const (
	RequestsMetric = "sockmon_upstream_requests_total"
	DurationMetric = "sockmon_upstream_request_duration_seconds"

	requestsHelp = "Calls to upstream services, by upstream and result (ok, timeout, connection_error, server_error, client_error, invalid_reply, too_large, breaker_open, queue_full)."
	durationHelp = "Time upstream services took to answer, from the first attempt to the end of the reply, by upstream."
)

// result is the result label of RequestsMetric: one per call (not per
// attempt), so that sum(rate()) over result is the call rate.
type result uint8

const (
	resultOK              result = iota // 2xx with a JSON body
	resultTimeout                       // no answer within Timeout (including time in the queue)
	resultConnectionError               // refused, reset, closed before the reply
	resultServerError                   // 5xx, or a status that is neither 2xx nor 4xx
	resultClientError                   // 4xx
	resultInvalidReply                  // 2xx whose body is not JSON
	resultTooLarge                      // reply over MaxReplyBytes
	resultBreakerOpen                   // refused by the breaker
	resultQueueFull                     // refused: MaxQueued calls already waiting
	numResults
)

var resultNames = [numResults]string{
	"ok", "timeout", "connection_error", "server_error", "client_error",
	"invalid_reply", "too_large", "breaker_open", "queue_full",
}

func (r result) String() string { return resultNames[r] }

// upMetrics are the series of one upstream name; they outlive reloads (a
// series cannot be removed). The zero value, for a Set without Metrics,
// records nothing.
type upMetrics struct {
	results  [numResults]*metrics.Counter
	duration *metrics.Histogram
}

func (m *upMetrics) count(r result) {
	if c := m.results[r]; c != nil {
		c.Inc()
	}
}

func (m *upMetrics) observe(d float64) {
	if m.duration != nil {
		m.duration.Observe(d)
	}
}

// metricsFor returns the series of name, registering them (and the
// breaker state gauges) the first time. s.mu is held.
func (s *Set) metricsFor(name string) (*upMetrics, error) {
	if um := s.series[name]; um != nil {
		return um, nil
	}
	um := &upMetrics{}
	if m := s.opts.Metrics; m != nil {
		label := `upstream="` + name + `"` // names are [A-Za-z0-9_.-]: nothing to escape
		for r := range numResults {
			c, err := m.RegisterCounter(RequestsMetric, label+`,result="`+r.String()+`"`, requestsHelp)
			if err != nil {
				return nil, err
			}
			um.results[r] = c
		}
		h, err := m.RegisterHistogram(DurationMetric, label, durationHelp, metrics.DefaultSecondsBuckets)
		if err != nil {
			return nil, err
		}
		um.duration = h
		err = breaker.RegisterMetrics(m, name, func() *breaker.Breaker {
			if u := s.cur.Load().byName[name]; u != nil {
				return u.br
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	s.series[name] = um
	return um, nil
}
