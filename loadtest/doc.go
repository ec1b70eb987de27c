// Package loadtest is the load generator behind `sockmon load`.
//
// It drives any RFC 6455 server (and sockmon's JSON protocol) from its own
// process: connections are dialled at a bounded ramp over a set of source
// addresses, read by a few epoll loops of its own (poller.go) with no
// goroutine per connection and no hand-off per frame, and driven either in a
// closed loop (each connection sends again when its reply arrives) or in an
// open model at a constant total rate, whose schedule the same loops fire.
// A connection held idle (connect-only) costs a session and a wire of one
// cache line each: no buffer (reads go to its loop's buffer) and no message
// state, so the generator holds tens of thousands in a few MiB of heap
// (TestConnectOnlyFootprint keeps it so).
//
// The open model corrects coordinated omission the way wrk2 does: every
// message has an intended send time on the constant-rate schedule, a
// connection keeps at most one message in flight, and the latency recorded in
// the corrected histogram is measured from the intended time. A stalled server
// therefore shows in the corrected percentiles even though the sender had to
// wait; the uncorrected histogram (measured from the actual send) is reported
// beside it so the difference is visible.
//
// A server's limits meet a load run from one machine long before its
// capacity does: when the server rate-limits the run (429 at the upgrade,
// rate_limited replies, closes with 1008), the progress output and the
// report say so in words, and a run whose connections were mostly refused or
// closed by policy exits with ExitRefused (policy.go).
//
// Run is the entry point: it is bounded by Config.Conns and Config.Duration,
// stops early when its context is cancelled, and always returns the Report of
// what ran.
package loadtest
