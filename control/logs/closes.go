package logs

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore"
)

// DefaultCloseLogRate is how many close lines a second CloseLog writes by
// default (and its burst).
const DefaultCloseLogRate = 20

// CloseLog writes a line for each closed connection (the seed's
// client_disconnect): at info when the server closed it for a cause an
// operator or a limit set (infoCloseCodes), at debug for the rest. Lines
// over the rate are not written but counted; the connection_stats line
// reports the count. Register OnDisconnect with netcore's OnDisconnect.
type CloseLog struct {
	log        *slog.Logger
	bucket     *tokenBucket // nil: no limit
	suppressed atomic.Uint64
}

// NewCloseLog returns a CloseLog writing to log at most rate lines a
// second, in bursts of rate. rate 0 means DefaultCloseLogRate; a negative
// rate means no limit.
func NewCloseLog(log *slog.Logger, rate int) *CloseLog {
	if rate == 0 {
		rate = DefaultCloseLogRate
	}
	c := &CloseLog{log: log}
	if rate > 0 {
		c.bucket = newTokenBucket(float64(rate), float64(rate), time.Now())
	}
	return c
}

// infoCloseCodes are the close codes that get an info line when the server
// sent them: protocol errors and invalid UTF-8 (1002, 1003, 1007), policy
// (1008: abuse, bans, slow consumers), a message too big (1009), an
// internal error (1011), a maintenance drain (1012), overload (1013), and an
// operator's disconnect (4000). Idle timeouts (1000) and the shutdown drain
// (1001, with its own lines) stay at debug, as does every close the client
// started.
var infoCloseCodes = map[ws.StatusCode]bool{
	netcore.CloseProtocolError: true, netcore.CloseUnsupported: true, netcore.CloseInvalidPayload: true,
	netcore.ClosePolicy: true, netcore.CloseTooBig: true, netcore.CloseInternal: true,
	netcore.CloseServiceRestart: true, netcore.CloseTryAgainLater: true, netcore.CloseAdmin: true,
}

// Level is the level of the line for ev.
func (c *CloseLog) Level(ev *netcore.DisconnectEvent) slog.Level {
	if ev.Initiator == netcore.InitiatorServer && infoCloseCodes[ev.Code] {
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// OnDisconnect writes ev's line, if its level is on and the rate allows.
// It runs on the goroutine that closed the socket: it takes one short
// mutex and writes one line, never more than the rate allows.
func (c *CloseLog) OnDisconnect(ev netcore.DisconnectEvent) {
	level := c.Level(&ev)
	ctx := context.Background()
	if !c.log.Enabled(ctx, level) {
		return
	}
	now := time.Now()
	if c.bucket != nil && !c.bucket.take(now) {
		c.suppressed.Add(1)
		return
	}
	in := &ev.Info
	addr := in.RemoteAddr
	if in.ClientIP.IsValid() {
		addr = in.ClientIP.String()
	}
	c.log.LogAttrs(ctx, level, "connection closed",
		slog.Uint64("socket", in.ID),
		slog.String("user", in.UserID),
		slog.Bool("authenticated", in.Authenticated),
		slog.String("address", addr),
		slog.Float64("durationMs", float64(now.Sub(in.ConnectedAt).Microseconds())/1000),
		slog.Uint64("messagesIn", in.MessagesIn),
		slog.Uint64("messagesOut", in.MessagesOut),
		slog.Int("code", int(ev.Code)),
		slog.String("reason", ev.Reason),
		slog.String("initiator", string(ev.Initiator)),
	)
}

// TakeSuppressed returns the number of lines not written since the last
// call, and starts counting again.
func (c *CloseLog) TakeSuppressed() uint64 { return c.suppressed.Swap(0) }

// tokenBucket allows rate events a second in bursts of burst.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate, burst float64, now time.Time) *tokenBucket {
	return &tokenBucket{rate: rate, burst: burst, tokens: burst, last: now}
}

// take reports whether an event at now is allowed, and counts it if so.
func (b *tokenBucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
