package metrics

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
)

// Counters and histograms of other packages (upstream RPC, alert
// channels...), beside RegisterGauge. They live in the same Set as the
// built-in series and get the same HELP/TYPE annotations. They are meant
// for per-call events, not per-message ones: the message path records into
// the shards.

// Counter is a counter registered with RegisterCounter. Its methods are
// safe for concurrent use and do not allocate (one atomic add).
type Counter struct{ c *vm.Counter }

// Inc adds 1.
func (c *Counter) Inc() { c.c.Inc() }

// Add adds n, which must not be negative.
func (c *Counter) Add(n int) {
	if n > 0 {
		c.c.Add(n)
	}
}

// Get returns the value.
func (c *Counter) Get() uint64 { return c.c.Get() }

// Histogram is a Prometheus histogram registered with RegisterHistogram.
// Observe is safe for concurrent use and does not allocate; it takes a
// short mutex of this series, so it suits per-call events (an upstream
// request), not the message path.
type Histogram struct{ h *vm.PrometheusHistogram }

// Observe records v (in the family's base unit); negative values and NaN
// are dropped.
func (h *Histogram) Observe(v float64) { h.h.Update(v) }

// ObserveDuration records d in seconds.
func (h *Histogram) ObserveDuration(d time.Duration) { h.h.Update(d.Seconds()) }

// DefaultSecondsBuckets are the `le` bounds RegisterHistogram uses when
// given none: 5 ms to 60 s, for calls to other services.
var DefaultSecondsBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

var leLabelRE = regexp.MustCompile(`(^|,)\s*le\s*=`)

// RegisterCounter adds a counter series: name (sockmon_ prefix,
// snake_case, ending in _total, Prometheus's naming and exposition conventions) with labels in the
// text format (`upstream="ai",result="ok"`, or "" for none). Register each
// label combination once, at zero, before it is first incremented; every
// series of a family must have the same help. A series cannot be removed.
func (m *Metrics) RegisterCounter(name, labels, help string) (*Counter, error) {
	if !strings.HasSuffix(name, "_total") {
		return nil, fmt.Errorf("metrics: counter name %q: a counter must end in _total", name)
	}
	var c *Counter
	err := m.registerExternal("counter", typeCounter, name, labels, help, func(series string) {
		c = &Counter{c: m.expo.set.NewCounter(series)}
	})
	return c, err
}

// RegisterHistogram adds a histogram series: name (sockmon_ prefix,
// snake_case, in a base unit such as _seconds or _bytes, not ending in
// _total, _bucket, _count or _sum) with labels in the text format ("" for
// none; never `le`). buckets are the upper bounds, ascending and finite;
// nil means DefaultSecondsBuckets. Give every series of a family the same
// buckets, so that they can be summed. Register each label combination
// once; a series cannot be removed.
func (m *Metrics) RegisterHistogram(name, labels, help string, buckets []float64) (*Histogram, error) {
	for _, suf := range [...]string{"_total", "_bucket", "_count", "_sum"} {
		if strings.HasSuffix(name, suf) {
			return nil, fmt.Errorf("metrics: histogram name %q: a histogram must not end in %s", name, suf)
		}
	}
	if leLabelRE.MatchString(labels) {
		return nil, fmt.Errorf("metrics: histogram %q: label le is reserved for the buckets", name)
	}
	if buckets == nil {
		buckets = DefaultSecondsBuckets
	}
	if len(buckets) == 0 {
		return nil, fmt.Errorf("metrics: histogram %q: no buckets", name)
	}
	for i, b := range buckets {
		if math.IsNaN(b) || math.IsInf(b, 0) || i > 0 && b <= buckets[i-1] {
			return nil, fmt.Errorf("metrics: histogram %q: buckets %v: want finite bounds in ascending order", name, buckets)
		}
	}
	var h *Histogram
	err := m.registerExternal("histogram", typeHistogram, name, labels, help, func(series string) {
		h = &Histogram{h: m.expo.set.NewPrometheusHistogramExt(series, append([]float64(nil), buckets...))}
	})
	return h, err
}

// registerExternal validates a series of a counter or histogram family and
// creates it with add, under the exposition lock.
func (m *Metrics) registerExternal(what, typ, name, labels, help string, add func(series string)) error {
	if !gaugeNameRE.MatchString(name) {
		return fmt.Errorf("metrics: %s name %q: want sockmon_ followed by lower-case snake_case", what, name)
	}
	if help == "" {
		return fmt.Errorf("metrics: %s %q: help text is required", what, name)
	}
	series := name
	if labels != "" {
		series = name + "{" + labels + "}"
	}
	if err := vm.ValidateMetric(series); err != nil {
		return fmt.Errorf("metrics: %s %q: %w", what, series, err)
	}
	e := &m.expo
	e.mu.Lock()
	defer e.mu.Unlock()
	if old := e.meta[name]; old != nil && (!old.extra || old.typ != typ || old.help != help) {
		return fmt.Errorf("metrics: %s %q: family already registered as %s %q", what, name, old.typ, old.help)
	}
	for _, n := range e.set.ListMetricNames() {
		if n == series {
			return fmt.Errorf("metrics: %s %q: already registered", what, series)
		}
	}
	e.meta[name] = &family{name: name, typ: typ, help: help, extra: true}
	add(series)
	return nil
}
