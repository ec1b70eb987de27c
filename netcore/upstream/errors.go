package upstream

import (
	"strconv"
	"strings"
	"time"
)

// Error codes of Error, the strings of the client protocol's error replies
// (the README's protocol; timeout is new with upstream RPC).
const (
	CodeUnavailable = "unavailable" // breaker open, queue full, connection failed, 5xx, shutting down
	CodeTimeout     = "timeout"     // no answer within the upstream's Timeout
	CodeBadRequest  = "bad_request" // the upstream answered 4xx, or a body that is not JSON
	CodeNotFound    = "not_found"   // no upstream of that name
	CodeTooLarge    = "too_large"   // the reply is over Options.MaxReplyBytes
)

// Error is why a call failed, for the client's error reply. Message is
// safe to send to the client: it names the service, never its URL, its
// headers or the network error.
type Error struct {
	Code    string
	Message string
	// RetryAfter, when positive, is when the client may try again: the
	// time until the breaker's next probe, or an upstream 429's
	// Retry-After. The protocol sends it as retryAfterMs.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// UnknownServiceError is Reset's error for a name that is not configured.
type UnknownServiceError struct {
	Name  string
	Known []string // sorted; empty when no upstream is configured
}

func (e *UnknownServiceError) Error() string {
	if len(e.Known) == 0 {
		return "upstream: no service " + strconv.Quote(e.Name) + ": no upstream services are configured"
	}
	return "upstream: no service " + strconv.Quote(e.Name) + "; known: " + strings.Join(e.Known, ", ")
}
