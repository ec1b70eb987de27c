package metrics

import (
	"time"
)

// History keeps one Point per sampling interval at falling resolution in
// fixed-size rings: the sampling interval (5 s by default) for the last hour,
// one minute for the last 24 hours and fifteen minutes for the last 7 days.
// Memory is allocated once in New and never grows (2832 points of 192
// bytes, about 530 KiB). A coarse
// point is built from everything that happened during its period, not from
// the finer points: its latency quantiles come from the merged HDR counts of
// the period, so they are as exact as the fine ones.

// Point is the state of the server over one history interval. Rates are per
// second over the interval, latencies are in milliseconds over the messages
// handled in the interval, gauges are averaged over the interval.
type Point struct {
	Time time.Time `json:"timestamp"` // end of the interval

	Connections   float64 `json:"connections"`
	Authenticated float64 `json:"authenticated"`
	Anonymous     float64 `json:"anonymous"`

	MessagesReceivedPerSec float64 `json:"messagesReceivedPerSec"`
	MessagesSentPerSec     float64 `json:"messagesSentPerSec"`
	BytesReceivedPerSec    float64 `json:"bytesReceivedPerSec"`
	BytesSentPerSec        float64 `json:"bytesSentPerSec"`
	ErrorRate              float64 `json:"errorRate"` // error replies per message received

	AvgMs float64 `json:"avgMs"`
	P50Ms float64 `json:"p50Ms"`
	P95Ms float64 `json:"p95Ms"`
	P99Ms float64 `json:"p99Ms"`
	MaxMs float64 `json:"maxMs"`

	HeapBytes  float64 `json:"heapBytes"`
	RSSBytes   float64 `json:"rssBytes"`
	CPUPercent float64 `json:"cpuPercent"` // of all cores, 0..100
	Goroutines float64 `json:"goroutines"`
	GCPauseMs  float64 `json:"gcPauseMs"` // total GC pause during the interval
	Load1      float64 `json:"load1"`
	Load5      float64 `json:"load5"`
	Load15     float64 `json:"load15"`
}

// HistoryResult is the answer to a History query.
type HistoryResult struct {
	From       time.Time     `json:"from"`
	To         time.Time     `json:"to"`
	Resolution time.Duration `json:"-"`
	// ResolutionMs is Resolution in milliseconds, for the JSON contract.
	ResolutionMs int64   `json:"resolutionMs"`
	Points       []Point `json:"points"`
}

// gauges is the instantaneous state taken at each sample.
type gauges struct {
	conns, auth, anon float64
	heap, rss         float64
	cpuPercent        float64
	goroutines        float64
	gcPauseMs         float64 // pause during the sample's interval
	load              [3]float64
}

func (g *gauges) add(o *gauges) {
	g.conns += o.conns
	g.auth += o.auth
	g.anon += o.anon
	g.heap += o.heap
	g.rss += o.rss
	g.cpuPercent += o.cpuPercent
	g.goroutines += o.goroutines
	g.gcPauseMs += o.gcPauseMs
	for i := range g.load {
		g.load[i] += o.load[i]
	}
}

// tier is one resolution of the history: a ring of points and, for the
// coarse tiers, the period being accumulated.
type tier struct {
	res    time.Duration
	points []Point // ring, len == capacity
	head   int     // next write
	n      int     // points held
	total  int     // points ever written

	// accumulation of the open period (coarse tiers only)
	open    bool
	period  int64
	acc     slice
	accDur  time.Duration
	gsum    gauges
	samples int
}

func (t *tier) push(p Point) {
	t.points[t.head] = p
	t.head = (t.head + 1) % len(t.points)
	if t.n < len(t.points) {
		t.n++
	}
	t.total++
}

// at returns the i-th oldest point held.
func (t *tier) at(i int) *Point {
	return &t.points[(t.head-t.n+i+len(t.points))%len(t.points)]
}

// complete reports whether the tier still holds every point it ever got.
func (t *tier) complete() bool { return t.total == t.n }

type history struct {
	tiers []*tier
}

// historyTiers lists the resolutions and spans kept beyond the first tier.
var historyTiers = []struct{ res, span time.Duration }{
	{time.Minute, 24 * time.Hour},
	{15 * time.Minute, 7 * 24 * time.Hour},
}

func newHistory(interval time.Duration) *history {
	h := &history{}
	h.tiers = append(h.tiers, &tier{res: interval, points: make([]Point, int(time.Hour/interval))})
	for _, t := range historyTiers {
		if t.res > interval {
			h.tiers = append(h.tiers, &tier{res: t.res, points: make([]Point, int(t.span/t.res))})
		}
	}
	return h
}

// add records one sample: what happened during the dur up to now.
func (h *history) add(now time.Time, dur time.Duration, d *slice, g *gauges, q *quantiler) {
	h.tiers[0].push(makePoint(now, dur, d, g, 1, q))
	for _, t := range h.tiers[1:] {
		// The sample covers (now-dur, now]: it belongs to the period that
		// holds the instant just before now.
		period := (now.UnixNano() - 1) / int64(t.res)
		if t.open && period != t.period {
			end := time.Unix(0, (t.period+1)*int64(t.res))
			t.push(makePoint(end, t.accDur, &t.acc, &t.gsum, t.samples, q))
			t.acc.reset()
			t.accDur, t.gsum, t.samples = 0, gauges{}, 0
		}
		t.open, t.period = true, period
		t.acc.add(d)
		t.accDur += dur
		t.gsum.add(g)
		t.samples++
	}
}

// makePoint builds a point from what happened during dur (d) and the sum of
// samples gauge readings (g).
func makePoint(end time.Time, dur time.Duration, d *slice, g *gauges, samples int, q *quantiler) Point {
	p := Point{Time: end}
	if samples > 0 {
		n := float64(samples)
		p.Connections = g.conns / n
		p.Authenticated = g.auth / n
		p.Anonymous = g.anon / n
		p.HeapBytes = g.heap / n
		p.RSSBytes = g.rss / n
		p.CPUPercent = g.cpuPercent / n
		p.Goroutines = g.goroutines / n
		p.Load1, p.Load5, p.Load15 = g.load[0]/n, g.load[1]/n, g.load[2]/n
	}
	p.GCPauseMs = g.gcPauseMs
	if s := dur.Seconds(); s > 0 {
		p.MessagesReceivedPerSec = float64(d.tally.received) / s
		p.MessagesSentPerSec = float64(d.tally.sent) / s
		p.BytesReceivedPerSec = float64(d.tally.bytesReceived) / s
		p.BytesSentPerSec = float64(d.tally.bytesSent) / s
	}
	if d.tally.received > 0 {
		p.ErrorRate = float64(d.tally.errorsTotal()) / float64(d.tally.received)
	}
	l := q.latency(&d.msgs)
	p.AvgMs, p.P50Ms, p.P95Ms, p.P99Ms, p.MaxMs = l.AvgMs, l.P50Ms, l.P95Ms, l.P99Ms, l.MaxMs
	return p
}

// query returns the points between from and to (inclusive) of the finest
// tier at least as coarse as resolution that still reaches back to from (or
// of the coarsest tier when none does). When resolution is coarser than that
// tier, consecutive points are regrouped into periods of resolution aligned to
// Unix time: rates, gauges and the average latency are averaged, GC pauses
// added, and the quantiles and the maximum take the largest value of the
// group (an upper bound: quantiles of separate intervals cannot be merged
// exactly).
func (h *history) query(from, to time.Time, resolution time.Duration) HistoryResult {
	t := h.tiers[len(h.tiers)-1]
	for _, c := range h.tiers {
		if c.res < resolution {
			continue
		}
		if from.IsZero() || c.complete() || (c.n > 0 && !c.at(0).Time.After(from)) {
			t = c
			break
		}
	}
	res := HistoryResult{From: from, To: to, Resolution: t.res, Points: []Point{}}
	for i := range t.n {
		p := t.at(i)
		if p.Time.Before(from) || p.Time.After(to) {
			continue
		}
		res.Points = append(res.Points, *p)
	}
	if resolution > t.res {
		res.Points = regroup(res.Points, resolution)
		res.Resolution = resolution
	}
	res.ResolutionMs = res.Resolution.Milliseconds()
	return res
}

// regroup merges points into periods of res, in place.
func regroup(ps []Point, res time.Duration) []Point {
	out := ps[:0]
	var (
		acc    Point
		n      float64
		period int64
	)
	flush := func() {
		if n == 0 {
			return
		}
		avg := func(v *float64) { *v /= n }
		for _, v := range []*float64{&acc.Connections, &acc.Authenticated, &acc.Anonymous,
			&acc.MessagesReceivedPerSec, &acc.MessagesSentPerSec, &acc.BytesReceivedPerSec, &acc.BytesSentPerSec,
			&acc.ErrorRate, &acc.AvgMs, &acc.HeapBytes, &acc.RSSBytes, &acc.CPUPercent, &acc.Goroutines,
			&acc.Load1, &acc.Load5, &acc.Load15} {
			avg(v)
		}
		acc.Time = time.Unix(0, (period+1)*int64(res))
		out = append(out, acc)
		acc, n = Point{}, 0
	}
	for _, p := range ps {
		// A point stamped at the end of its interval belongs to the period
		// that contains the instant just before it.
		pp := (p.Time.UnixNano() - 1) / int64(res)
		if n > 0 && pp != period {
			flush()
		}
		period = pp
		n++
		acc.Connections += p.Connections
		acc.Authenticated += p.Authenticated
		acc.Anonymous += p.Anonymous
		acc.MessagesReceivedPerSec += p.MessagesReceivedPerSec
		acc.MessagesSentPerSec += p.MessagesSentPerSec
		acc.BytesReceivedPerSec += p.BytesReceivedPerSec
		acc.BytesSentPerSec += p.BytesSentPerSec
		acc.ErrorRate += p.ErrorRate
		acc.AvgMs += p.AvgMs
		acc.HeapBytes += p.HeapBytes
		acc.RSSBytes += p.RSSBytes
		acc.CPUPercent += p.CPUPercent
		acc.Goroutines += p.Goroutines
		acc.Load1 += p.Load1
		acc.Load5 += p.Load5
		acc.Load15 += p.Load15
		acc.GCPauseMs += p.GCPauseMs
		acc.P50Ms = max(acc.P50Ms, p.P50Ms)
		acc.P95Ms = max(acc.P95Ms, p.P95Ms)
		acc.P99Ms = max(acc.P99Ms, p.P99Ms)
		acc.MaxMs = max(acc.MaxMs, p.MaxMs)
	}
	flush()
	return out
}
