package breaker

import (
	"errors"
	"strconv"
	"time"
)

// ErrOpen is what every rejection of Allow matches with errors.Is; use
// errors.As with *OpenError for the state and the retry-after.
var ErrOpen = errors.New("breaker: circuit open")

// OpenError is the error of Allow when the breaker refuses a call: it is
// open, or half-open with every probe slot taken.
type OpenError struct {
	Name  string // the breaker's name
	State State  // Open or HalfOpen

	// RetryAfter is how long until the breaker lets a probe through, when
	// it knows: the rest of the open period. Zero when half-open (the
	// probes are running and their end is the caller's timeout, which the
	// breaker does not know).
	RetryAfter time.Duration
}

func (e *OpenError) Error() string {
	msg := "breaker " + strconv.Quote(e.Name) + " is " + e.State.String()
	if e.RetryAfter > 0 {
		msg += "; next attempt in " + e.RetryAfter.Round(time.Millisecond).String()
	} else if e.State == HalfOpen {
		msg += "; probe calls are running"
	}
	return msg
}

// Is makes errors.Is(err, ErrOpen) true.
func (e *OpenError) Is(target error) bool { return target == ErrOpen }
