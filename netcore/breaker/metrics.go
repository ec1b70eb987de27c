package breaker

import (
	"fmt"

	"github.com/sockmon/sockmon/metrics"
)

// StateMetric is the gauge family of breaker states: one series per
// breaker and state, 1 for the current state and 0 for the others
// (Prometheus's naming and exposition conventions).
const StateMetric = "sockmon_circuit_breaker_state"

const stateHelp = "Circuit breaker state: 1 for the current state (closed, open or half_open) of each breaker, 0 for the others."

// RegisterMetrics adds the three series of StateMetric for the breaker
// named name to m. current returns the breaker that has that name now, or
// nil when there is none (every series then reads 0): a caller that
// replaces breakers on a configuration reload keeps its series, since a
// series cannot be removed. Register each name once; every user of
// breakers (upstreams, alert channels, the backplane) registers through
// this function so that the family has one help text.
func RegisterMetrics(m *metrics.Metrics, name string, current func() *Breaker) error {
	if current == nil {
		return fmt.Errorf("breaker: RegisterMetrics %q: nil current", name)
	}
	for _, st := range States {
		labels := `breaker="` + escapeLabel(name) + `",state="` + st.String() + `"`
		err := m.RegisterGauge(StateMetric, labels, stateHelp, func() float64 {
			if b := current(); b != nil && b.State() == st {
				return 1
			}
			return 0
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// escapeLabel escapes a label value for the text format.
func escapeLabel(v string) string {
	var out []byte
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\', '"':
			out = append(out, '\\', c)
		case '\n':
			out = append(out, '\\', 'n')
		default:
			out = append(out, c)
		}
	}
	return string(out)
}
