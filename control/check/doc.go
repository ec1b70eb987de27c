// Package check is the library behind `sockmon check`: it reads a sockmon
// node's health endpoint, times it, optionally runs a WebSocket canary,
// judges the outcome against thresholds, and writes it as text, JSON,
// Nagios plugin output or Prometheus text exposition.
//
// # What a check does
//
// Run reads GET /api/health/socket on the control side (or, given an admin
// token, the detailed POST /api/health/socket) and times the request from
// the client's side. With a WebSocket URL it then runs the canary: connect
// (the upgrade), send {"type":"echo","id":1,"data":...} and wait for the
// echo, send {"type":"ping","id":2} and wait for the pong, send close 1000
// and wait for the server's close reply, timing each step. Both run one
// after the other under one timeout (Config.Timeout). Run holds no state
// between calls and starts no goroutine that outlives it; Results are
// plain values.
//
// # The verdict (the Monitoring Plugins development guidelines)
//
// The state is the worst (CRITICAL > WARNING > UNKNOWN > OK) of:
//
//   - the health status: healthy OK; degraded, maintenance and draining
//     WARNING; unhealthy CRITICAL; each configurable (Config.StatusStates);
//   - the thresholds (Nagios ranges, Range) on the response time, the
//     connections, the error rate (percent) and the p99 latency;
//   - a server that cannot be reached (connection refused, name lookup
//     failed) or answers something other than a health body: CRITICAL;
//   - an admin token the server refuses: UNKNOWN (the check is
//     misconfigured, the node may be fine);
//   - the timeout expiring: UNKNOWN, or CRITICAL with
//     Config.TimeoutCritical;
//   - a canary step failing: CRITICAL, except a 503 refusal of the
//     upgrade by a node whose health says maintenance or draining, which
//     is the status already judged.
//
// # Output
//
// WriteNagios, WritePrometheus, WriteJSON and WriteText write a Result;
// none of them prints a token.
package check
