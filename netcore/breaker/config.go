package breaker

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Config configures a Breaker. The zero value of every field means its
// default (see the Default constants); Validate reports every problem at
// once. A Breaker keeps a copy: changing a Config after New has no effect.
type Config struct {
	// Window is the span of the rolling window over which the failure ratio
	// is computed. Default 10 s.
	Window time.Duration

	// Buckets is the number of slices the window is cut into: calls leave
	// the window one slice at a time, so the window holds between
	// (Buckets-1)/Buckets and all of Window. Default 10 (1 s slices with the
	// default window). At most 1000; a slice is at least 1 ms.
	Buckets int

	// MinCalls is how many calls the window must hold before FailureRatio
	// can trip the breaker, so that two failures out of three calls at
	// night do not. Default 20.
	MinCalls int

	// FailureRatio trips the breaker when failures/calls over the window
	// reach it (with at least MinCalls calls), in (0, 1]. Default 0.5.
	FailureRatio float64

	// ConsecutiveFailures trips the breaker after that many failures in a
	// row, whatever the window holds: an upstream that has just died fails
	// fast without waiting for MinCalls. Default 5.
	ConsecutiveFailures int

	// OpenBase is how long the first trip keeps the breaker open before a
	// probe is let through. Each re-trip (a failed probe, or a trip soon
	// after closing) doubles it, up to OpenMax; SuccessStreak successes in a
	// row bring it back to OpenBase. Default 5 s; OpenMax default 60 s (or
	// OpenBase, if that is longer).
	OpenBase time.Duration
	OpenMax  time.Duration

	// Jitter shortens each open period by a random fraction in [0, Jitter),
	// so that breakers that tripped together do not all probe at the same
	// instant. In [0, 1); default 0.2: an open period of d lasts between
	// 0.8·d and d, and never more than OpenMax. (A zero Jitter means the
	// default; a test that wants no jitter injects a Rand returning 0.)
	Jitter float64

	// HalfOpenProbes is how many calls half-open lets through, and how many
	// of them must succeed for the breaker to close; one failed probe opens
	// it again. Calls beyond it are rejected while the probes run.
	// Default 1.
	HalfOpenProbes int

	// SuccessStreak is the number of successes in a row after which the
	// next trip opens for OpenBase again. Default 10.
	SuccessStreak int

	// Now is the clock; nil means time.Now. Rand returns a number in
	// [0, 1) for the jitter and must be safe for concurrent use; nil means
	// math/rand/v2.Float64. Tests inject both.
	Now  func() time.Time
	Rand func() float64
}

// Defaults of the Config fields.
const (
	DefaultWindow              = 10 * time.Second
	DefaultBuckets             = 10
	DefaultMinCalls            = 20
	DefaultFailureRatio        = 0.5
	DefaultConsecutiveFailures = 5
	DefaultOpenBase            = 5 * time.Second
	DefaultOpenMax             = 60 * time.Second
	DefaultJitter              = 0.2
	DefaultHalfOpenProbes      = 1
	DefaultSuccessStreak       = 10
)

const (
	maxBuckets   = 1000
	minBucket    = time.Millisecond
	maxWindow    = time.Hour
	maxOpen      = 24 * time.Hour
	maxCountKnob = 1_000_000
)

// Problem is one invalid Config field. Field is the Go field name;
// callers that read the config from a file map it to their own key (the
// file keys of netcore/upstream are the field names in lowerCamelCase).
type Problem struct {
	Field   string
	Message string
}

// ConfigError lists every invalid field of a Config. Validate and New
// return it; use errors.As to get the list.
type ConfigError struct {
	Problems []Problem
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("breaker: ")
		b.WriteString(p.Field)
		b.WriteString(": ")
		b.WriteString(p.Message)
	}
	return b.String()
}

// Validate reports every invalid field of c at once (a *ConfigError), or
// nil.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults validates c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	var ps []Problem
	bad := func(field, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case c.Window == 0:
		c.Window = DefaultWindow
	case c.Window < 0 || c.Window > maxWindow:
		bad("Window", "%v: want between 1ms and %v", c.Window, maxWindow)
	}
	switch {
	case c.Buckets == 0:
		c.Buckets = DefaultBuckets
	case c.Buckets < 0 || c.Buckets > maxBuckets:
		bad("Buckets", "%d: want between 1 and %d", c.Buckets, maxBuckets)
	}
	if c.Window > 0 && c.Buckets > 0 && c.Window/time.Duration(c.Buckets) < minBucket {
		bad("Buckets", "%d: a slice of the %v window would be under %v", c.Buckets, c.Window, minBucket)
	}
	count := func(field string, v *int, def int) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0 || *v > maxCountKnob:
			bad(field, "%d: want between 1 and %d", *v, maxCountKnob)
		}
	}
	count("MinCalls", &c.MinCalls, DefaultMinCalls)
	count("ConsecutiveFailures", &c.ConsecutiveFailures, DefaultConsecutiveFailures)
	count("HalfOpenProbes", &c.HalfOpenProbes, DefaultHalfOpenProbes)
	count("SuccessStreak", &c.SuccessStreak, DefaultSuccessStreak)
	switch {
	case c.FailureRatio == 0:
		c.FailureRatio = DefaultFailureRatio
	case !(c.FailureRatio > 0 && c.FailureRatio <= 1): // also catches NaN
		bad("FailureRatio", "%v: want a ratio in (0, 1]", c.FailureRatio)
	}
	switch {
	case c.OpenBase == 0:
		c.OpenBase = DefaultOpenBase
	case c.OpenBase < minBucket || c.OpenBase > maxOpen:
		bad("OpenBase", "%v: want between %v and %v", c.OpenBase, minBucket, maxOpen)
	}
	switch {
	case c.OpenMax == 0:
		c.OpenMax = max(DefaultOpenMax, c.OpenBase)
	case c.OpenMax < 0 || c.OpenMax > maxOpen:
		bad("OpenMax", "%v: want between OpenBase and %v", c.OpenMax, maxOpen)
	case c.OpenMax < c.OpenBase:
		bad("OpenMax", "%v: below OpenBase %v", c.OpenMax, c.OpenBase)
	}
	switch {
	case c.Jitter == 0:
		c.Jitter = DefaultJitter
	case !(c.Jitter > 0 && c.Jitter < 1):
		bad("Jitter", "%v: want a fraction in [0, 1)", c.Jitter)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if len(ps) > 0 {
		return c, &ConfigError{Problems: ps}
	}
	return c, nil
}
