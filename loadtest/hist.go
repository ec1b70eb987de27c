package loadtest

import (
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram geometry: microseconds from 1µs to 10 minutes, 3 significant
// digits (about 200 KiB per histogram).
const (
	histLowest  = 1
	histHighest = int64(10 * time.Minute / time.Microsecond)
	histDigits  = 3
	histShards  = 8
)

// latencyHist is an HDR histogram of durations in microseconds, split in
// shards so that recorders on different goroutines rarely wait for one
// another. A run pays only for the distributions its mode measures (a
// connect-only hold records connect times alone): the others' shards are
// allocated on their first value. Safe for concurrent use.
type latencyHist struct {
	shards [histShards]histShard
}

type histShard struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram // nil until the shard's first value
	_  [48]byte                // keep shards on separate cache lines
}

// newLatencyHist returns an empty histogram. measured says the run records
// into it: its shards are allocated now, so no recorder of the measured
// phase waits for an allocation; otherwise each is allocated on its first
// value, if any.
func newLatencyHist(measured bool) *latencyHist {
	l := &latencyHist{}
	if measured {
		for i := range l.shards {
			l.shards[i].h = hdrhistogram.New(histLowest, histHighest, histDigits)
		}
	}
	return l
}

// record adds d to the shard chosen by key (any integer, such as a session
// id). Values outside the histogram's range are clamped into it.
func (l *latencyHist) record(key int, d time.Duration) {
	v := int64(d / time.Microsecond)
	if v < 0 {
		v = 0
	} else if v > histHighest {
		v = histHighest
	}
	s := &l.shards[uint(key)%histShards]
	s.mu.Lock()
	if s.h == nil {
		s.h = hdrhistogram.New(histLowest, histHighest, histDigits)
	}
	_ = s.h.RecordValue(v)
	s.mu.Unlock()
}

// merged returns a new histogram holding every shard's values.
func (l *latencyHist) merged() *hdrhistogram.Histogram {
	out := hdrhistogram.New(histLowest, histHighest, histDigits)
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		if s.h != nil {
			out.Merge(s.h)
		}
		s.mu.Unlock()
	}
	return out
}

// quantile returns the value at quantile q (0-100) of every shard's values
// in microseconds, 0 when none was recorded. It merges only when there is
// something to merge, so a progress line of a run that measures no latency
// (a connect-only hold) allocates no histogram.
func (l *latencyHist) quantile(q float64) int64 {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		some := s.h != nil
		s.mu.Unlock()
		if some {
			return l.merged().ValueAtQuantile(q)
		}
	}
	return 0
}

// Percentiles summarises one latency distribution in milliseconds.
type Percentiles struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

func summarize(h *hdrhistogram.Histogram) Percentiles {
	if h == nil || h.TotalCount() == 0 {
		return Percentiles{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Percentiles{
		Count: h.TotalCount(),
		Min:   ms(h.Min()),
		Mean:  h.Mean() / 1000,
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}
