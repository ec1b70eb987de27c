package alerts

import (
	"sync/atomic"

	"github.com/sockmon/sockmon/metrics"
)

// sockmon_alerts{level,state}: how many enabled rules' alerts are in each
// state at each level (the alert's current level, raised by escalations).
// Summed over state it is the number of enabled rules per level. Every
// combination is registered at zero. (The notification counter,
// sockmon_alert_notifications_total{channel,result}, is registered per
// channel in notify.go.)

type promSeries struct {
	v [4][4]atomic.Int64 // level rank, state index
}

func newPromSeries(m *metrics.Metrics) (*promSeries, error) {
	p := &promSeries{}
	for li, l := range Levels() {
		for si, s := range States() {
			err := m.RegisterGauge("sockmon_alerts", `level="`+string(l)+`",state="`+string(s)+`"`,
				"Alerts of the enabled rules by level and state (inactive, pending, firing, resolved).",
				func() float64 { return float64(p.v[li][si].Load()) })
			if err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// set recounts from the states. e.mu held.
func (p *promSeries) set(states map[string]*alertState) {
	var n [4][4]int64
	for _, st := range states {
		li, si := st.level.rank(), stateIndex(st.state)
		if li >= 0 && si >= 0 {
			n[li][si]++
		}
	}
	for li := range n {
		for si := range n[li] {
			p.v[li][si].Store(n[li][si])
		}
	}
}

func stateIndex(s State) int {
	for i, x := range States() {
		if x == s {
			return i
		}
	}
	return -1
}
