package control

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// The audit log: every admin POST, allowed or refused, becomes one
// AuditRecord, committed to the store before the reply is sent and written
// to the structured log. Records never hold a token or a secret: the data
// is redacted (audit_redact.go) and the Authorization header is never read into
// a record.
//
// A POST refused before a token verified (401, 403, 429, 503, a body too
// large) is anyone's to send, so it costs little and displaces nothing:
// its body is never parsed (the record keeps its size only), it goes to a
// small bucket of its own (Config.AuditRefusedEntries, the oldest going
// first) rather than among the operators' records, nothing is recorded or
// logged from an address once it is locked out, and its log line is
// rate-limited (Config.RefusalLogRate), the lines left out counted in the
// next one. One refusal is one line. We keep a record per refusal (rather
// than one per address and window) so that an operator sees each one at
// once, with its reason; the lockout bounds them to AuthFailures per
// address and window, and the bucket's size bounds them all.

// AuditRecord is one admin request and what became of it.
type AuditRecord struct {
	// Seq numbers records in commit order, from 1.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Actor is the verified token's sub claim; empty when the request was
	// refused before a token verified.
	Actor    string `json:"actor"`
	SourceIP string `json:"sourceIp"`
	// Action is the command ("set_maintenance_mode"...), "health_details"
	// for POST /api/health/socket, or what the body named when the request
	// was refused (empty if it named nothing).
	Action string `json:"action"`
	// Data is the request's data as its action's request type declares
	// it, everything else and every credential redacted, long strings
	// shortened (audit_redact.go).
	Data json.RawMessage `json:"data,omitempty"`
	// Result is "ok", "refused" (a 4xx or 503 answer) or "error" (a 5xx
	// failure while running the command).
	Result string `json:"result"`
	Status int    `json:"status"`
	// Code and Message are the error reply's, for refused and failed
	// requests.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// Reason is why a token was refused, as the log says it (the reply
	// says less): "expired", "signed with the client secret...".
	Reason string `json:"reason,omitempty"`
	// LockedOut marks the failure that locked its address out: later
	// refusals from it are neither recorded nor logged until the lockout
	// ends.
	LockedOut  bool    `json:"lockedOut,omitempty"`
	DurationMs float64 `json:"durationMs"`
	// Via is the node a cluster command came from, on the nodes that ran
	// it for another.
	Via string `json:"via,omitempty"`
	// Scope and Nodes are a cluster command's, on the node that took it:
	// each node's outcome (clusterops.go).
	Scope string        `json:"scope,omitempty"`
	Nodes []NodeOutcome `json:"nodes,omitempty"`
}

// Audit results.
const (
	ResultOK      = "ok"
	ResultRefused = "refused"
	ResultError   = "error"
)

// finish sets the outcome of rec from e (nil for success).
func (rec *AuditRecord) finish(e *Error, start time.Time) {
	rec.DurationMs = float64(time.Since(start).Microseconds()) / 1000
	if e == nil {
		rec.Result, rec.Status, rec.Code, rec.Message = ResultOK, 200, "", ""
		return
	}
	rec.Status, rec.Code, rec.Message = e.Status, e.Code, e.Message
	if e.Status >= 500 && e.Code != CodeAdminDisabled && e.Code != CodeUnavailable {
		rec.Result = ResultError
	} else {
		rec.Result = ResultRefused
	}
}

// record commits rec on its own (shared commits with concurrent records)
// and logs it. A store failure is logged; the caller decides what it means
// for the reply.
func (s *Server) record(rec *AuditRecord) error {
	err := s.store.appendAudit(rec)
	s.logAudit(rec, err)
	return err
}

// refuseUnauthenticated answers an admin request refused before a token
// verified: the record of a POST in the refused bucket (bodyBytes is all
// it keeps of the body; negative when unknown), one line in the log, both
// skipped when the address is locked out already, then the reply.
func (s *Server) refuseUnauthenticated(ctx *fasthttp.RequestCtx, path string, ip netip.Addr, r *refusal, bodyBytes int) {
	refusalHeaders(ctx, r)
	defer writeError(ctx, r.Error)
	if r.quiet {
		s.refusalLines.skip()
		return
	}
	var rec *AuditRecord
	var storeErr error
	if ctx.IsPost() {
		start := time.Now()
		rec = &AuditRecord{Time: start, Actor: clip(r.sub, maxRefusedActor), SourceIP: ip.String(),
			Reason: r.reason, LockedOut: r.lockedOut, Data: bodySize(bodyBytes)}
		if path == PathHealth {
			rec.Action = ActionHealthDetails
		}
		rec.finish(r.Error, start)
		storeErr = s.store.appendRefused(rec)
	}
	ok, unlogged := s.refusalLines.take(time.Now())
	if !ok {
		return
	}
	attrs := []slog.Attr{
		slog.String("sourceIp", ip.String()),
		slog.String("method", string(ctx.Method())),
		slog.String("path", path),
		slog.Int("status", r.Status),
		slog.String("code", r.Code),
		slog.String("reason", r.reason),
	}
	if r.sub != "" {
		attrs = append(attrs, slog.String("sub", clip(r.sub, maxRefusedActor)))
	}
	if r.lockedOut {
		attrs = append(attrs, slog.Bool("lockedOut", true), slog.Duration("lockout", s.cfg.AuthFailureWindow))
	}
	if rec != nil {
		attrs = append(attrs, slog.Uint64("refusedSeq", rec.Seq), slog.Any("data", rec.Data))
	}
	if unlogged > 0 {
		attrs = append(attrs, slog.Uint64("unlogged", unlogged))
	}
	level := slog.LevelWarn
	if storeErr != nil {
		level = slog.LevelError
		attrs = append(attrs, slog.String("storeError", storeErr.Error()))
	}
	s.log.LogAttrs(context.Background(), level, "admin authentication refused", attrs...)
}

// maxRefusedActor clips the sub a refused record names (a token that
// verified but lacks the admin claims): the record stays small.
const maxRefusedActor = 128

// bodySize is the data of a record that keeps only a body's size: n bytes,
// or, when n is negative (a chunked body over the limit), unknown.
func bodySize(n int) json.RawMessage {
	if n < 0 {
		return json.RawMessage(`{"bodyBytes":"unknown"}`)
	}
	return sizeOnly("bodyBytes", n)
}

// lineLimiter lets rate lines a second through, in bursts of rate, and
// counts the others (a negative rate lets every line through). Safe for
// concurrent use; its mutex is a leaf.
type lineLimiter struct {
	mu       sync.Mutex
	rate     float64
	tokens   float64
	last     time.Time
	unlogged uint64
}

func newLineLimiter(rate int, now time.Time) *lineLimiter {
	return &lineLimiter{rate: float64(rate), tokens: float64(rate), last: now}
}

// take reports whether a line may be written at now and, if so, how many
// were not since the last one that was.
func (l *lineLimiter) take(now time.Time) (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rate >= 0 {
		if d := now.Sub(l.last); d > 0 {
			l.tokens = min(l.rate, l.tokens+d.Seconds()*l.rate)
			l.last = now
		}
		if l.tokens < 1 {
			l.unlogged++
			return false, 0
		}
		l.tokens--
	}
	n := l.unlogged
	l.unlogged = 0
	return true, n
}

// skip counts a line not written.
func (l *lineLimiter) skip() {
	l.mu.Lock()
	l.unlogged++
	l.mu.Unlock()
}

// logAudit writes rec to the structured log.
func (s *Server) logAudit(rec *AuditRecord, storeErr error) {
	level := slog.LevelInfo
	if rec.Result != ResultOK {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.Uint64("seq", rec.Seq),
		slog.String("actor", rec.Actor),
		slog.String("sourceIp", rec.SourceIP),
		slog.String("action", rec.Action),
		slog.String("result", rec.Result),
		slog.Int("status", rec.Status),
		slog.Float64("durationMs", rec.DurationMs),
	}
	if len(rec.Data) > 0 {
		attrs = append(attrs, slog.Any("data", rec.Data))
	}
	if rec.Code != "" {
		attrs = append(attrs, slog.String("code", rec.Code), slog.String("message", rec.Message))
	}
	if rec.Reason != "" {
		attrs = append(attrs, slog.String("reason", rec.Reason))
	}
	if storeErr != nil {
		level = slog.LevelError
		attrs = append(attrs, slog.String("storeError", storeErr.Error()))
	}
	s.log.LogAttrs(context.Background(), level, "admin audit", attrs...)
}
