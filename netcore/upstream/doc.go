// Package upstream calls named upstream HTTP services for the client
// protocol's rpc envelope, each behind its own circuit breaker
// (netcore/breaker) and bounded worker pool, with fasthttp's client and
// pooled connections.
//
//	{"type":"rpc","id":5,"service":"ai","data":X}  ->  POST X to the "ai" upstream
//	{"type":"rpc_result","id":5,"data":Y}          <-  its JSON reply (or the fallback, with "fallback":true)
//
// # Configuration
//
// A Spec per upstream, from --upstream NAME=URL (ParseFlag: the short
// form, every other field at its default) and from --upstreams-file
// (LoadFile: YAML or JSON, unknown keys are errors, every error names the
// file, line and field; see file.go for the format). Defaults: Timeout
// 10 s, MaxConcurrent 32, MaxQueued 128, Retries 0, breaker as in
// netcore/breaker (window 10 s, 20 calls, ratio 0.5, 5 in a row, open 5 s
// doubling to 60 s with jitter, 1 probe). Set.Reload validates a whole set
// (every problem at once, as a *ConfigError) and swaps it in atomically;
// on error the running set is untouched, so a bad file at SIGHUP keeps the
// old upstreams: the caller logs the error and carries on. Header values
// may read ${ENV_VARS}; their values are never logged, shown or put in an
// error, and no URL appears in snapshots or in messages to clients.
//
// # Calls
//
// Set.Call never blocks: it copies data, asks the breaker and queues the
// call; a worker POSTs it (Content-Type application/json, X-Sockmon-User-Id,
// X-Sockmon-Socket-Id and the configured headers) and calls done with the
// Result. done runs exactly once: on a worker, or, when the answer is known
// at once (not_found, breaker open, queue full, shutting down), on the
// caller's goroutine before Call returns. Result.Data is valid only while
// done runs. Every call is answered within its Timeout plus scheduling:
// the deadline covers the queue, the connection, retries and the reply.
//
// Errors (Error.Code is the protocol's code):
//
//	unavailable   breaker open (RetryAfter = time to the next probe), queue full, connection refused/reset,
//	              5xx, 429 (RetryAfter from its Retry-After), shutting down
//	timeout       no answer within Timeout
//	bad_request   the upstream answered 4xx, or a 2xx body that is not JSON
//	not_found     no upstream of that name
//	too_large     the reply is over Options.MaxReplyBytes (never read past it: an endless body or a 1 GB
//	              Content-Length costs at most the limit)
//
// With a fallback configured, every error but not_found and a 4xx
// bad_request becomes Result{Data: fallback, Fallback: true, Cause: err}.
//
// The breaker counts timeouts, connection errors and 5xx (and a status
// that is neither 2xx nor 4xx) as failures; 2xx, 4xx, non-JSON and
// too-large replies as successes (the upstream answered). Retries happen
// only when the request provably never left: the dial or the write failed.
//
// # Metrics (Options.Metrics)
//
//	sockmon_upstream_requests_total{upstream,result}        one per call; result: ok, timeout, connection_error,
//	                                                        server_error, client_error, invalid_reply, too_large,
//	                                                        breaker_open, queue_full
//	sockmon_upstream_request_duration_seconds{upstream}     histogram, first attempt to end of the reply
//	sockmon_circuit_breaker_state{breaker,state}            0/1 for closed, open, half_open
//
// Series are registered at zero when a name first appears in a Reload and
// stay after it is removed (state series then read 0). Calls to unknown
// services are not counted here (their names come from clients), nor calls
// refused because the Set is shutting down.
//
// # Wiring into the protocol (netcore)
//
// The engine keeps an interface, so that netcore does not need this
// package's types beyond the call's:
//
//	type RPC interface {
//		Call(meta upstream.CallMeta, service string, data []byte, done func(upstream.Result))
//	}
//
// In the rpc case of the protocol handler:
//
//  1. Check "service" is present (as today) and apply the per-connection
//     limit on calls in flight: that limit is the protocol's (an atomic
//     counter on the Conn, a flag, its own error code named in the
//     README); this package bounds calls per upstream, not per client.
//  2. Copy the envelope id: it points into the read buffer, and done runs
//     later. data is copied by Call.
//  3. Call(CallMeta{UserID: c.UserID() (empty when anonymous), SocketID:
//     c.ID()}, service, data, done). done writes through the connection's
//     concurrent-safe write path (it may run on a worker or on the reader
//     goroutine), releases the in-flight slot, and does nothing else: if
//     the client went away the write just fails. Reply with
//     {"type":"rpc_result","id":ID,"data":r.Data} (plus "fallback":true when
//     r.Fallback), or {"type":"error","id":ID,"code":r.Err.Code,
//     "message":r.Err.Message} with "retryAfterMs" (RetryAfter rounded up
//     to ms) when r.Err.RetryAfter > 0 — today replyError adds it for
//     rate_limited only. "timeout" is a new code: add it to the protocol's
//     codes, to metrics.ErrorCode and to the README.
//  4. Set Options.MaxReplyBytes to --max-message-size (the envelope adds
//     about 40 bytes plus the id).
//
// The handler returns at once, so sockmon_message_duration_seconds
// {kind="rpc"} measures the dispatch; the upstream's time is in
// sockmon_upstream_request_duration_seconds.
//
// # Wiring into control
//
//   - Health: for each Status of Set.Snapshot(), circuitBreakers[name] =
//     {"status": st.Breaker.State.String(), "failures": st.Breaker.Failures}.
//     When st.Down() (open or half_open: not known to be serving), the node
//     is degraded (still 200: it serves WebSockets), or unhealthy (503)
//     when st.Critical. The detailed health and admin GET can show the
//     whole Status (Breaker marshals lastErrorClass, openedAt,
//     nextAttemptAt, level, counts; no URL, no header).
//   - reset_circuit_breaker {service}: a missing field stays 422; then
//     Set.Reset(service), "*" for all; an *UnknownServiceError is 404, its
//     message lists the known names. It goes through the audit log like
//     every admin action.
//   - Set.OnBreakerChange: one log line per transition, and the event for
//     the alerts engine (breaker_open). It must not block.
//   - Startup and SIGHUP: specs from the --upstream flags plus LoadFile of
//     --upstreams-file (a name in both is an error), then Reload; on error
//     log it and keep the old set. Shutdown: after the engine has drained
//     (no more rpc), Set.Shutdown(ctx).
package upstream
