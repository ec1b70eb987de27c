package upstream

import (
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sockmon/sockmon/netcore/breaker"
)

// CallMeta identifies the caller of an rpc; it goes to the upstream in the
// X-Sockmon-User-Id (omitted when empty: an anonymous connection) and
// X-Sockmon-Socket-Id headers. Control characters are percent-encoded.
type CallMeta struct {
	UserID   string
	SocketID string
}

// Result is the answer to one Call.
type Result struct {
	// Data is the upstream's JSON reply body (null for an empty 2xx body),
	// or the fallback when Fallback is set. It is valid only while done
	// runs and must not be modified: copy it (or write it to the client)
	// before returning.
	Data []byte

	// Fallback reports that Data is the upstream's configured fallback,
	// answered instead of the error in Cause.
	Fallback bool

	// Err is why the call failed, when it did and no fallback applied.
	Err *Error

	// Cause, with Fallback, is the error that the fallback replaced (for
	// logs and metrics; the client sees the fallback).
	Cause *Error
}

// job is one call waiting for or held by a worker.
type job struct {
	req      *fasthttp.Request // body set by Call; the rest by the worker
	meta     CallMeta
	done     func(Result)
	deadline time.Time
	ticket   breaker.Ticket
}

var jobPool = sync.Pool{New: func() any { return new(job) }}

func putJob(j *job) {
	fasthttp.ReleaseRequest(j.req)
	*j = job{}
	jobPool.Put(j)
}

// Call calls the upstream named service with data (a JSON value; empty
// means null) and answers with done, exactly once. It never blocks: it
// copies data, asks the breaker, and hands the call to the upstream's
// worker pool. done runs on a worker goroutine when the upstream answered
// or failed, and before Call returns, on the caller's goroutine, when the
// answer is known at once: no such service (not_found), breaker open or
// queue full or shutting down (unavailable, or the fallback). So done must
// be safe to run from either, and must not block for long: it holds up a
// worker of that upstream. A nil done panics.
//
// Errors and fallbacks: see Result and Error. With a fallback configured,
// every error but not_found and bad_request for an upstream 4xx (the
// request was bad, not the upstream) becomes the fallback.
func (s *Set) Call(meta CallMeta, service string, data []byte, done func(Result)) {
	if done == nil {
		panic("upstream: Call with a nil done")
	}
	deadlineBase := time.Now()
	for retry := false; ; retry = true {
		u := s.cur.Load().byName[service]
		if u == nil {
			done(Result{Err: &Error{Code: CodeNotFound, Message: "no upstream service " + quoteName(service) + " is configured"}})
			return
		}
		if s.closed.Load() {
			u.answer(done, u.shuttingDown(), true)
			return
		}
		tk, err := u.br.Allow()
		if err != nil {
			u.m.count(resultBreakerOpen)
			u.answer(done, u.openError(err), true)
			return
		}
		j := jobPool.Get().(*job)
		j.req = fasthttp.AcquireRequest()
		if len(data) == 0 {
			j.req.SetBodyString("null")
		} else {
			j.req.SetBody(data)
		}
		j.meta, j.done, j.ticket = meta, done, tk
		j.deadline = deadlineBase.Add(u.r.Timeout)
		queued, closed := u.enqueue(j)
		if queued {
			return
		}
		tk.Ignore()
		putJob(j)
		if closed && !retry {
			continue // a Reload replaced u: try its successor once
		}
		if closed {
			u.answer(done, u.shuttingDown(), true)
			return
		}
		u.m.count(resultQueueFull)
		u.answer(done, &Error{Code: CodeUnavailable, Message: "service " + quoteName(u.r.Name) + " is busy: " +
			strconv.Itoa(u.r.MaxConcurrent) + " calls running and " + strconv.Itoa(u.r.MaxQueued) + " waiting"}, true)
		return
	}
}

// enqueue hands j to the workers without blocking: it is accepted while
// fewer than MaxConcurrent+MaxQueued calls are queued or in flight, however
// quickly the workers pick calls up.
func (u *upstream) enqueue(j *job) (queued, closed bool) {
	u.mu.RLock()
	defer u.mu.RUnlock()
	if u.closed {
		return false, true
	}
	if u.accepted.Add(1) > int32(u.r.MaxConcurrent+u.r.MaxQueued) {
		u.accepted.Add(-1)
		return false, false
	}
	u.queue <- j // never blocks: accepted bounds what the channel holds
	return true, false
}

// answer calls done with e, or with the fallback when there is one and
// fallbackOK.
func (u *upstream) answer(done func(Result), e *Error, fallbackOK bool) {
	if fallbackOK && len(u.r.Fallback) > 0 {
		done(Result{Data: u.r.Fallback, Fallback: true, Cause: e})
		return
	}
	done(Result{Err: e})
}

func (u *upstream) shuttingDown() *Error {
	return &Error{Code: CodeUnavailable, Message: "service " + quoteName(u.r.Name) + " is unavailable: the server is shutting down"}
}

func (u *upstream) openError(err error) *Error {
	e := &Error{Code: CodeUnavailable}
	var oe *breaker.OpenError
	if errors.As(err, &oe) && oe.State == breaker.Open {
		e.RetryAfter = oe.RetryAfter
		e.Message = "service " + quoteName(u.r.Name) + " is unavailable (circuit breaker open); retry in " +
			oe.RetryAfter.Round(time.Millisecond).String()
	} else {
		e.Message = "service " + quoteName(u.r.Name) + " is unavailable (circuit breaker half_open: probe calls are running)"
	}
	return e
}

// run makes one call on a worker.
func (u *upstream) run(j *job) {
	defer u.accepted.Add(-1)
	defer putJob(j)
	if u.s.closed.Load() {
		j.ticket.Ignore()
		u.answer(j.done, u.shuttingDown(), true)
		return
	}
	if !time.Now().Before(j.deadline) { // waited its whole timeout in the queue
		j.ticket.Ignore()
		u.m.count(resultTimeout)
		u.answer(j.done, u.timeoutError(), true)
		return
	}
	u.inFlight.Add(1)
	defer u.inFlight.Add(-1)

	req := j.req
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(u.r.URL)
	req.Header.SetContentType("application/json")
	if j.meta.UserID != "" {
		req.Header.Set(HeaderUserID, headerValue(j.meta.UserID))
	}
	req.Header.Set(HeaderSocketID, headerValue(j.meta.SocketID))
	for _, h := range u.r.headers {
		req.Header.Set(h.name, h.value)
	}
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)

	start := time.Now()
	var err error
	for attempt := 0; ; attempt++ {
		err = u.client.DoDeadline(req, resp, j.deadline)
		if err == nil || attempt >= u.r.Retries || !neverSent(err) || !time.Now().Before(j.deadline) {
			break
		}
	}
	u.m.observe(time.Since(start).Seconds())
	u.finish(j, resp, err)
}

// finish classifies the outcome, tells the breaker and answers.
func (u *upstream) finish(j *job, resp *fasthttp.Response, err error) {
	name := quoteName(u.r.Name)
	tk := j.ticket
	if err != nil {
		switch {
		case errors.Is(err, fasthttp.ErrBodyTooLarge):
			tk.Success() // it answered; the answer is too big for the client
			u.m.count(resultTooLarge)
			u.answer(j.done, &Error{Code: CodeTooLarge, Message: "service " + name + " answered more than " + strconv.Itoa(u.s.opts.MaxReplyBytes) + " bytes"}, true)
		case errors.Is(err, fasthttp.ErrSmallReadBuffer):
			tk.Success()
			u.m.count(resultInvalidReply)
			u.answer(j.done, &Error{Code: CodeBadRequest, Message: "service " + name + " answered headers over " + strconv.Itoa(readBufferSize) + " bytes"}, true)
		case errors.Is(err, fasthttp.ErrNoFreeConns):
			tk.Ignore() // our pool, not the upstream
			u.m.count(resultQueueFull)
			u.answer(j.done, &Error{Code: CodeUnavailable, Message: "service " + name + " is busy"}, true)
		case isTimeout(err) || !time.Now().Before(j.deadline):
			tk.Failure("timeout")
			u.m.count(resultTimeout)
			u.answer(j.done, u.timeoutError(), true)
		default:
			tk.Failure("connection")
			u.m.count(resultConnectionError)
			u.answer(j.done, &Error{Code: CodeUnavailable, Message: "service " + name + " is unreachable"}, true)
		}
		return
	}
	status := resp.StatusCode()
	switch {
	case status >= 200 && status < 300:
		tk.Success()
		body := resp.Body()
		if len(body) == 0 {
			body = nullJSON
		} else if !json.Valid(body) {
			u.m.count(resultInvalidReply)
			u.answer(j.done, &Error{Code: CodeBadRequest, Message: "service " + name + " answered a body that is not JSON"}, true)
			return
		}
		u.m.count(resultOK)
		j.done(Result{Data: body})
	case status == fasthttp.StatusTooManyRequests:
		tk.Success() // alive, and pushing back
		u.m.count(resultClientError)
		e := &Error{Code: CodeUnavailable, Message: "service " + name + " is rate limiting (HTTP 429)"}
		if s, err := strconv.Atoi(string(resp.Header.Peek(fasthttp.HeaderRetryAfter))); err == nil && s > 0 {
			e.RetryAfter = time.Duration(min(s, 3600)) * time.Second
		}
		u.answer(j.done, e, true)
	case status >= 400 && status < 500:
		tk.Success() // the request was bad, not the upstream
		u.m.count(resultClientError)
		u.answer(j.done, &Error{Code: CodeBadRequest, Message: "service " + name + " refused the request (HTTP " + strconv.Itoa(status) + ")"}, false)
	case status >= 500 && status < 600:
		tk.Failure("http_5xx")
		u.m.count(resultServerError)
		u.answer(j.done, &Error{Code: CodeUnavailable, Message: "service " + name + " failed (HTTP " + strconv.Itoa(status) + ")"}, true)
	default:
		tk.Failure("http_status")
		u.m.count(resultServerError)
		u.answer(j.done, &Error{Code: CodeUnavailable, Message: "service " + name + " answered HTTP " + strconv.Itoa(status)}, true)
	}
}

var nullJSON = []byte("null")

func (u *upstream) timeoutError() *Error {
	return &Error{Code: CodeTimeout, Message: "service " + quoteName(u.r.Name) + " did not answer within " + u.r.Timeout.String()}
}

// neverSent reports whether err proves the request never reached the
// upstream: the dial failed, or writing the request did. Only those calls
// are retried.
func neverSent(err error) bool {
	var op *net.OpError
	if !errors.As(err, &op) || op.Timeout() {
		return false
	}
	return op.Op == "dial" || op.Op == "write"
}

func isTimeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// hostAddr is the HostClient address of a validated URL.
func hostAddr(raw string) (addr string, tls bool) {
	u, _ := url.Parse(raw)
	tls = u.Scheme == "https"
	return fasthttp.AddMissingPort(u.Host, tls), tls
}

// quoteName quotes a service name for a message, cut to 64 bytes: the
// name of an unknown service comes from the client.
func quoteName(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.Quote(s)
}

// headerValue percent-encodes the control characters of v (and '%' when
// there are any), so that an id can never split a header.
func headerValue(v string) string {
	if !hasCtl(v) {
		return v
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(v)+8)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c == 0x7f || c == '%' {
			b = append(b, '%', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return string(b)
}
