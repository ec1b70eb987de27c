package breaker

import "fmt"

// State is a breaker state. Its text form ("closed", "open", "half_open")
// is what health bodies, metrics labels and logs show.
type State uint8

const (
	Closed   State = iota // calls go through; outcomes are counted
	Open                  // calls are rejected until the open period ends
	HalfOpen              // a bounded number of probe calls go through
)

// States lists every state, in the order of their values: metrics export
// one series per state.
var States = [...]State{Closed, Open, HalfOpen}

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half_open"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// MarshalText encodes the state as its name.
func (s State) MarshalText() ([]byte, error) {
	if s > HalfOpen {
		return nil, fmt.Errorf("breaker: invalid state %d", uint8(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText decodes a state name.
func (s *State) UnmarshalText(b []byte) error {
	for _, st := range States {
		if string(b) == st.String() {
			*s = st
			return nil
		}
	}
	return fmt.Errorf("breaker: unknown state %q; want closed, open or half_open", b)
}

// Reason says why a transition happened.
type Reason string

const (
	ReasonFailureRatio        Reason = "failure_ratio"        // closed -> open: the window's ratio reached FailureRatio
	ReasonConsecutiveFailures Reason = "consecutive_failures" // closed -> open: ConsecutiveFailures in a row
	ReasonProbeFailed         Reason = "probe_failed"         // half_open -> open
	ReasonOpenElapsed         Reason = "open_elapsed"         // open -> half_open: the open period is over
	ReasonProbesSucceeded     Reason = "probes_succeeded"     // half_open -> closed
	ReasonReset               Reason = "reset"                // any -> closed, by Reset
)
