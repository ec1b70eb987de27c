package check

import (
	"fmt"
	"strings"
)

// State is the outcome of a check in the Monitoring Plugins sense; its
// value is the plugin's exit code (the Monitoring Plugins development guidelines).
type State int

// The four states and their exit codes.
const (
	OK       State = 0
	Warning  State = 1
	Critical State = 2
	Unknown  State = 3
)

// String is the state as the status line shows it: OK, WARNING, CRITICAL
// or UNKNOWN.
func (s State) String() string {
	switch s {
	case OK:
		return "OK"
	case Warning:
		return "WARNING"
	case Critical:
		return "CRITICAL"
	case Unknown:
		return "UNKNOWN"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// MarshalText makes a State a JSON string ("OK"...).
func (s State) MarshalText() ([]byte, error) {
	return []byte(s.String()), nil
}

// ParseState reads ok, warning, critical or unknown in any case.
func ParseState(s string) (State, error) {
	for _, st := range []State{OK, Warning, Critical, Unknown} {
		if strings.EqualFold(s, st.String()) {
			return st, nil
		}
	}
	return Unknown, fmt.Errorf("check: state %q is not one of ok, warning, critical, unknown", s)
}

// severity orders states the way the Monitoring Plugins' max_state_alt
// does: CRITICAL over WARNING over UNKNOWN over OK.
func (s State) severity() int {
	switch s {
	case Critical:
		return 3
	case Warning:
		return 2
	case Unknown:
		return 1
	}
	return 0
}

// Worst is the more severe of a and b: CRITICAL > WARNING > UNKNOWN > OK.
func Worst(a, b State) State {
	if b.severity() > a.severity() {
		return b
	}
	return a
}

// Health statuses the control side reports (the README's control side).
const (
	StatusHealthy     = "healthy"
	StatusDegraded    = "degraded"
	StatusUnhealthy   = "unhealthy"
	StatusMaintenance = "maintenance"
	StatusDraining    = "draining"
)

// Statuses lists the health statuses in the order outputs show them.
var statuses = []string{StatusHealthy, StatusDegraded, StatusUnhealthy, StatusMaintenance, StatusDraining}

// DefaultStatusState is the state a health status maps to unless
// Config.StatusStates says otherwise: healthy OK; degraded, maintenance and
// draining WARNING; unhealthy CRITICAL; a status this package does not know
// UNKNOWN.
func DefaultStatusState(status string) State {
	switch status {
	case StatusHealthy:
		return OK
	case StatusDegraded, StatusMaintenance, StatusDraining:
		return Warning
	case StatusUnhealthy:
		return Critical
	}
	return Unknown
}
