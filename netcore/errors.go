package netcore

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore/wsproto"
)

// Close codes sockmon sends (the README's close-code table says which mean
// "reconnect"). Codes 1005, 1006 and 1015 are never sent: RFC 6455 reserves
// them for reporting a missing status, an abnormal closure and a TLS failure.
const (
	CloseNormal                       = ws.StatusNormalClosure           // 1000
	CloseGoingAway                    = ws.StatusGoingAway               // 1001: node shutting down
	CloseProtocolError                = ws.StatusProtocolError           // 1002
	CloseUnsupported                  = ws.StatusUnsupportedData         // 1003
	CloseInvalidPayload               = ws.StatusInvalidFramePayloadData // 1007: bad UTF-8
	ClosePolicy                       = ws.StatusPolicyViolation         // 1008: abuse, ban, slow consumer
	CloseTooBig                       = ws.StatusMessageTooBig           // 1009
	CloseInternal                     = ws.StatusInternalServerError     // 1011
	CloseServiceRestart ws.StatusCode = 1012                             // maintenance drain: reconnect later
	CloseTryAgainLater  ws.StatusCode = 1013                             // overloaded
	CloseAdmin          ws.StatusCode = 4000                             // disconnected by an admin
)

// CloseError is a protocol or policy failure that ends a connection with a
// close frame carrying Code. Reason is sent in the close frame (at most 123
// bytes of valid UTF-8).
type CloseError struct {
	Code   ws.StatusCode
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("netcore: close %d: %s", e.Code, e.Reason)
}

// closeErr builds a *CloseError.
func closeErr(code ws.StatusCode, reason string) *CloseError {
	return &CloseError{Code: code, Reason: reason}
}

// HandshakeError refuses an upgrade with an HTTP status before any WebSocket
// frame is exchanged. Header lines in Header are added to the response
// (for example Sec-WebSocket-Version on 426, Retry-After on 429 and 503).
type HandshakeError struct {
	Status int
	Reason string
	Header [][2]string
	// RejectReason is the label counted in
	// sockmon_connections_rejected_total.
	RejectReason metrics.RejectReason
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("netcore: handshake refused with %d %s: %s", e.Status, http.StatusText(e.Status), e.Reason)
}

// badHandshake is the refusal of a request that is not a valid upgrade.
func badHandshake(e *wsproto.RequestError) *HandshakeError {
	return &HandshakeError{Status: e.Status, Reason: e.Reason, Header: e.Header, RejectReason: metrics.RejectHandshake}
}

// Sentinel errors.
var (
	// ErrServerClosed is returned by Serve after Shutdown.
	ErrServerClosed = errors.New("netcore: server closed")
	// ErrConnClosed is returned by writes on a connection that is closing.
	ErrConnClosed = errors.New("netcore: connection closed")
	// ErrSlowConsumer is the reason a connection whose outbound queue passed
	// Config.WriteQueueBytes was closed.
	ErrSlowConsumer = errors.New("netcore: outbound queue over its cap (slow consumer)")
	// ErrMessageTooLarge is returned by writes of a message over MaxMessageSize.
	ErrMessageTooLarge = errors.New("netcore: message larger than the configured maximum")
)

// RetryAfterSeconds is the value of a Retry-After header for a client that
// may try again after d: whole seconds, rounded up, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}

// RetryAfter is the Retry-After header line of a refusal that a client may
// retry after d, for HandshakeError.Header.
func RetryAfter(d time.Duration) [][2]string {
	return [][2]string{{"Retry-After", strconv.Itoa(RetryAfterSeconds(d))}}
}

// How long a refused client is told to wait: a drain or a full server
// clears within seconds; maintenance takes longer.
const (
	drainRetry       = 5 * time.Second
	maintenanceRetry = 30 * time.Second
	shedRetry        = 30 * time.Second
)
