package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sockmon/sockmon/netcore/breaker"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// slack is how late a done may come after its timeout: scheduling on a
// shared 2-core machine under -race, not work.
const slack = 500 * time.Millisecond

func TestCallOK(t *testing.T) {
	const secret = "k-3c7e1"
	srv := newServer(t, "ok")
	s, _ := newTestSet(t, Options{LookupEnv: env{"AI_API_KEY": secret}.lookup})
	mustReload(t, s, Spec{Name: "ai", URL: srv.URL + "/rpc", Headers: map[string]string{
		"Authorization": "Bearer ${AI_API_KEY}",
		"X-Team":        "ops",
	}})

	r := <-callAsync(t, s, CallMeta{UserID: "user-7", SocketID: "sock-42"}, "ai", `{"q":"hi"}`)
	wantOK(t, r)
	if r.data != `{"echo":{"q":"hi"}}` || r.sync {
		t.Fatalf("answer %q (sync %v)", r.data, r.sync)
	}
	h, body := srv.lastRequest()
	for k, want := range map[string]string{
		"X-Sockmon-User-Id":   "user-7",
		"X-Sockmon-Socket-Id": "sock-42",
		"Authorization":       "Bearer " + secret,
		"X-Team":              "ops",
		"Content-Type":        "application/json",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if string(body) != `{"q":"hi"}` {
		t.Errorf("body = %q", body)
	}

	// Anonymous callers send no user id; no data sends null.
	r = <-callAsync(t, s, CallMeta{SocketID: "sock-43"}, "ai", "")
	wantOK(t, r)
	h, body = srv.lastRequest()
	if _, ok := h["X-Sockmon-User-Id"]; ok || string(body) != "null" {
		t.Errorf("anonymous call: user header %v, body %q", h.Values("X-Sockmon-User-Id"), body)
	}

	// The secret is nowhere in what health or the client can see.
	snap, _ := json.Marshal(s.Snapshot())
	if strings.Contains(string(snap), secret) || strings.Contains(string(snap), srv.URL) || strings.Contains(string(snap), "127.0.0.1") {
		t.Errorf("snapshot shows the URL or a header: %s", snap)
	}
}

func TestCallUnknownService(t *testing.T) {
	s, _ := newTestSet(t, Options{})
	r := call(t, s, "nope", `1`)
	wantErr(t, r, CodeNotFound)
	if !r.sync || !strings.Contains(r.Err.Message, `"nope"`) {
		t.Errorf("answer %+v (sync %v)", r.Err, r.sync)
	}
	long := strings.Repeat("x", 10_000)
	if r := call(t, s, long, `1`); len(r.Err.Message) > 200 {
		t.Errorf("a 10 kB service name gave a %d-byte message", len(r.Err.Message))
	}
}

// TestBreakerOpensAndRecovers: an upstream failing with 500 opens the
// breaker at the 5th call; while open, callers get unavailable with a
// retry-after at once and the upstream sees nothing; after the open period
// a probe to the recovered upstream closes it.
func TestBreakerOpensAndRecovers(t *testing.T) {
	srv := newServer(t, "500")
	s, clk := newTestSet(t, Options{})
	var (
		mu     sync.Mutex
		events []breaker.Event
	)
	s.OnBreakerChange(func(e breaker.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})
	mustReload(t, s, Spec{Name: "ai", URL: srv.URL})

	for i := 1; i <= 5; i++ {
		r := call(t, s, "ai", `1`)
		wantErr(t, r, CodeUnavailable)
		if !strings.Contains(r.Err.Message, "HTTP 500") || r.Err.RetryAfter != 0 {
			t.Fatalf("call %d: %+v", i, r.Err)
		}
	}
	st := s.Snapshot()[0]
	if st.Breaker.State != breaker.Open || st.Breaker.LastErrorClass != "http_5xx" || st.Breaker.Failures != 5 || !st.Down() {
		t.Fatalf("after 5 failures: %+v", st.Breaker)
	}
	clk.Advance(2 * time.Second)
	for range 10 {
		r := call(t, s, "ai", `1`)
		wantErr(t, r, CodeUnavailable)
		if !r.sync || r.Err.RetryAfter != 3*time.Second || !strings.Contains(r.Err.Message, "retry in 3s") {
			t.Fatalf("while open: %+v (sync %v)", r.Err, r.sync)
		}
	}
	if n := srv.hits.Load(); n != 5 {
		t.Fatalf("the upstream saw %d calls, want 5: an open breaker let calls through", n)
	}

	srv.setMode("ok")
	clk.Advance(3 * time.Second)
	wantOK(t, call(t, s, "ai", `1`)) // the probe
	if st := s.Snapshot()[0]; st.Breaker.State != breaker.Closed || st.Down() {
		t.Fatalf("after a good probe: %v", st.Breaker.State)
	}
	mu.Lock()
	defer mu.Unlock()
	var got []string
	for _, e := range events {
		if e.Name != "ai" {
			t.Errorf("event for %q", e.Name)
		}
		got = append(got, e.From.String()+">"+e.To.String())
	}
	if strings.Join(got, " ") != "closed>open open>half_open half_open>closed" {
		t.Errorf("transitions = %v", got)
	}
}

// TestTimeout: an upstream that hangs answers timeout within the timeout
// plus a small bound, and timeouts trip the breaker.
func TestTimeout(t *testing.T) {
	srv := newServer(t, "hang")
	s, _ := newTestSet(t, Options{})
	const timeout = 200 * time.Millisecond
	mustReload(t, s, Spec{Name: "ai", URL: srv.URL, Timeout: timeout, Breaker: breaker.Config{ConsecutiveFailures: 3}})
	var chans []<-chan reply
	for range 3 {
		chans = append(chans, callAsync(t, s, CallMeta{SocketID: "s"}, "ai", `1`))
	}
	for i, ch := range chans {
		r := <-ch
		wantErr(t, r, CodeTimeout)
		if r.elapsed < timeout || r.elapsed > timeout+slack {
			t.Errorf("call %d answered after %v, want about %v", i, r.elapsed, timeout)
		}
		if !strings.Contains(r.Err.Message, "within 200ms") {
			t.Errorf("message %q", r.Err.Message)
		}
	}
	st := s.Snapshot()[0].Breaker
	if st.State != breaker.Open || st.LastErrorClass != "timeout" {
		t.Errorf("after 3 timeouts: %+v", st)
	}
}

// TestSlowAndQueue: a slow upstream with one worker and a queue of two
// takes three calls; the fourth is refused at once; the queued ones finish
// in turn; a call that waits out its timeout in the queue gets timeout.
func TestSlowAndQueue(t *testing.T) {
	srv := newServer(t, "slow")
	srv.delay.Store(int64(time.Hour)) // until released
	s, _ := newTestSet(t, Options{})
	mustReload(t, s, Spec{Name: "ai", URL: srv.URL, MaxConcurrent: 1, MaxQueued: 2, Timeout: 5 * time.Second})

	var chans []<-chan reply
	for range 3 {
		chans = append(chans, callAsync(t, s, CallMeta{SocketID: "s"}, "ai", `1`))
	}
	wstest.WaitFor(t, "one call in flight and two queued", func() bool {
		st := s.Snapshot()[0]
		return st.InFlight == 1 && st.Queued == 2
	})
	start := time.Now()
	r := call(t, s, "ai", `1`)
	wantErr(t, r, CodeUnavailable)
	if !r.sync || time.Since(start) > 100*time.Millisecond || !strings.Contains(r.Err.Message, "busy") {
		t.Fatalf("queue full: %+v after %v (sync %v)", r.Err, time.Since(start), r.sync)
	}
	srv.delay.Store(int64(10 * time.Millisecond))
	srv.unblock()
	for i, ch := range chans {
		wantOK(t, <-ch)
		_ = i
	}
	if st := s.Snapshot()[0].Breaker; st.State != breaker.Closed || st.Counts.Failures != 0 {
		t.Errorf("a full queue counted against the upstream: %+v", st)
	}

	// Timeout in the queue: one worker stuck on a hanging call, the
	// queued call's timeout runs out while it waits.
	srv2 := newServer(t, "hang")
	mustReload(t, s, Spec{Name: "ai", URL: srv2.URL, MaxConcurrent: 1, MaxQueued: 1, Timeout: 300 * time.Millisecond})
	first := callAsync(t, s, CallMeta{SocketID: "s"}, "ai", `1`)
	wstest.WaitFor(t, "the first call in flight", func() bool { return s.Snapshot()[0].InFlight == 1 })
	second := callAsync(t, s, CallMeta{SocketID: "s"}, "ai", `1`)
	for _, ch := range []<-chan reply{first, second} {
		r := <-ch
		wantErr(t, r, CodeTimeout)
		if r.elapsed > 300*time.Millisecond+slack {
			t.Errorf("answered after %v", r.elapsed)
		}
	}
}

// TestConnectionReset: an upstream that resets the connection after
// reading the request fails the call as unreachable, is not retried (the
// request was written), and counts as a connection failure.
func TestConnectionReset(t *testing.T) {
	srv := newServer(t, "reset")
	s, _ := newTestSet(t, Options{})
	mustReload(t, s, Spec{Name: "ai", URL: srv.URL, Retries: 3})
	r := call(t, s, "ai", `1`)
	wantErr(t, r, CodeUnavailable)
	if !strings.Contains(r.Err.Message, "unreachable") || strings.Contains(r.Err.Message, "127.0.0.1") {
		t.Errorf("message %q", r.Err.Message)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Errorf("the upstream got the request %d times; a written request must not be retried", n)
	}
	if st := s.Snapshot()[0].Breaker; st.LastErrorClass != "connection" || st.ConsecutiveFailures != 1 {
		t.Errorf("breaker = %+v", st)
	}
	srv.setMode("ok")
	wantOK(t, call(t, s, "ai", `1`))
}

// TestRetries: refused connections are retried up to Retries times.
func TestRetries(t *testing.T) {
	srv := newServer(t, "ok")
	var dials, refuse atomic.Int32
	dial := func(addr string, timeout time.Duration) (net.Conn, error) {
		dials.Add(1)
		if refuse.Add(-1) >= 0 {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
		}
		return (&net.Dialer{Timeout: timeout}).Dial("tcp", addr)
	}
	s, _ := newTestSet(t, Options{Dial: dial})
	for i, tt := range []struct {
		retries, refusals int
		ok                bool
	}{
		{0, 1, false},
		{2, 2, true},
		{2, 3, false},
	} {
		// A new Timeout makes a new upstream: no pooled connection.
		mustReload(t, s, Spec{Name: "ai", URL: srv.URL, Retries: tt.retries, Timeout: time.Duration(i+1) * time.Second})
		dials.Store(0)
		refuse.Store(int32(tt.refusals))
		r := call(t, s, "ai", `1`)
		if tt.ok {
			wantOK(t, r)
		} else {
			wantErr(t, r, CodeUnavailable)
		}
		if want := min(tt.refusals, tt.retries) + 1; int(dials.Load()) != want {
			t.Errorf("retries %d, %d refusals: %d dials, want %d", tt.retries, tt.refusals, dials.Load(), want)
		}
		s.Reset("ai")
	}

	// A real closed port: every attempt is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	refuse.Store(0)
	dials.Store(0)
	mustReload(t, s, Spec{Name: "ai", URL: "http://" + addr + "/rpc", Retries: 2})
	r := call(t, s, "ai", `1`)
	wantErr(t, r, CodeUnavailable)
	if dials.Load() != 3 || strings.Contains(r.Err.Message, addr) {
		t.Errorf("closed port: %d dials, message %q", dials.Load(), r.Err.Message)
	}
}

// TestFallback: with a fallback, failures become the fallback (at once
// while the breaker is open); the caller's own errors do not.
func TestFallback(t *testing.T) {
	srv := newServer(t, "500")
	s, _ := newTestSet(t, Options{})
	mustReload(t, s, Spec{Name: "ai", URL: srv.URL, Fallback: json.RawMessage(`{"text": "later"}`), Timeout: 200 * time.Millisecond})
	const fb = `{"text":"later"}`
	wantFallback := func(what string, r reply, cause string) {
		t.Helper()
		if r.Err != nil || !r.Fallback || r.data != fb || r.Cause == nil || r.Cause.Code != cause {
			t.Fatalf("%s: %+v (data %q), want the fallback for %s", what, r.Result, r.data, cause)
		}
	}
	wantFallback("500", call(t, s, "ai", `1`), CodeUnavailable)
	srv.setMode("bad-json")
	wantFallback("not JSON", call(t, s, "ai", `1`), CodeBadRequest)
	srv.setMode("hang")
	wantFallback("timeout", call(t, s, "ai", `1`), CodeTimeout)
	srv.setMode("404")
	wantErr(t, call(t, s, "ai", `1`), CodeBadRequest) // the request was bad: no fallback
	wantErr(t, call(t, s, "nope", `1`), CodeNotFound)

	srv.setMode("500")
	for range 5 {
		call(t, s, "ai", `1`)
	}
	r := call(t, s, "ai", `1`)
	wantFallback("open", r, CodeUnavailable)
	if !r.sync || r.Cause.RetryAfter <= 0 {
		t.Errorf("open breaker: sync %v, cause %+v", r.sync, r.Cause)
	}
}

func TestReplyClasses(t *testing.T) {
	srv := newServer(t, "404")
	s, _ := newTestSet(t, Options{})
	mustReload(t, s, Spec{Name: "ai", URL: srv.URL})
	for range 30 { // 4xx never trips the breaker
		r := call(t, s, "ai", `1`)
		wantErr(t, r, CodeBadRequest)
		if !strings.Contains(r.Err.Message, "HTTP 404") {
			t.Fatalf("message %q", r.Err.Message)
		}
	}
	if st := s.Snapshot()[0].Breaker; st.State != breaker.Closed || st.Counts.Failures != 0 {
		t.Errorf("30 answers of 404: %+v", st)
	}
	srv.setMode("bad-json")
	wantErr(t, call(t, s, "ai", `1`), CodeBadRequest)
	srv.setMode("empty")
	if r := call(t, s, "ai", `1`); r.Err != nil || r.data != "null" {
		t.Errorf("204: %+v %q", r.Err, r.data)
	}
	srv.setMode("429")
	r := call(t, s, "ai", `1`)
	wantErr(t, r, CodeUnavailable)
	if r.Err.RetryAfter != 7*time.Second {
		t.Errorf("429: retry after %v, want 7s", r.Err.RetryAfter)
	}
	if st := s.Snapshot()[0].Breaker; st.Counts.Failures != 0 {
		t.Errorf("client errors counted as failures: %+v", st.Counts)
	}
}

// TestReplyBounded: endless bodies, a 1 GB Content-Length and a reply just
// over the limit fail with too_large, and reading them costs about the
// limit, not what the upstream offers.
func TestReplyBounded(t *testing.T) {
	const limit = 64 << 10
	endless := func(header string) func(net.Conn) {
		return func(c net.Conn) {
			c.Write([]byte(header))
			for {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}
	}
	chunked := func(c net.Conn) {
		c.Write([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"))
		line := []byte(fmt.Sprintf("%x\r\n", len(chunk)))
		for {
			if _, err := c.Write(line); err != nil {
				return
			}
			if _, err := c.Write(chunk); err != nil {
				return
			}
			if _, err := c.Write([]byte("\r\n")); err != nil {
				return
			}
		}
	}
	tests := []struct {
		name    string
		respond func(net.Conn)
	}{
		{"endless body until close", endless("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")},
		{"endless chunked body", chunked},
		{"1 GB Content-Length", endless("HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")},
		{"one byte over", func(c net.Conn) {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", limit+1)
			c.Write(append([]byte(`"`), make([]byte, limit)...))
		}},
	}
	s, _ := newTestSet(t, Options{MaxReplyBytes: limit})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := rawServer(t, tt.respond)
			mustReload(t, s, Spec{Name: "ai", URL: url, Timeout: 5 * time.Second})
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			r := call(t, s, "ai", `1`)
			runtime.ReadMemStats(&after)
			wantErr(t, r, CodeTooLarge)
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 16*limit {
				t.Errorf("allocated %d bytes for a reply capped at %d", grew, limit)
			}
		})
	}
	// Exactly the limit is fine.
	url := rawServer(t, func(c net.Conn) {
		body := `"` + strings.Repeat("y", limit-2) + `"`
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	})
	mustReload(t, s, Spec{Name: "ai", URL: url})
	if r := call(t, s, "ai", `1`); r.Err != nil || len(r.data) != limit {
		t.Errorf("reply of exactly the limit: %+v, %d bytes", r.Err, len(r.data))
	}
}

// TestShutdown: queued calls are answered at once, calls in flight
// finish, later calls are refused, and no goroutine is left (the test
// cleanup checks that).
func TestShutdown(t *testing.T) {
	srv := newServer(t, "hang")
	s, _ := newTestSet(t, Options{})
	mustReload(t, s, Spec{Name: "ai", URL: srv.URL, MaxConcurrent: 2, MaxQueued: 4, Timeout: 10 * time.Second})
	var chans []<-chan reply
	for range 5 {
		chans = append(chans, callAsync(t, s, CallMeta{SocketID: "s"}, "ai", `1`))
	}
	wstest.WaitFor(t, "two calls in flight", func() bool { return s.Snapshot()[0].InFlight == 2 })

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	var queued, inflight []reply
	for i := 0; i < 3; i++ { // the three queued calls, at once
		select {
		case r := <-chans[2+i]:
			queued = append(queued, r)
		case <-time.After(5 * time.Second):
			t.Fatal("a queued call was not answered at shutdown")
		}
	}
	for _, r := range queued {
		wantErr(t, r, CodeUnavailable)
		if !strings.Contains(r.Err.Message, "shutting down") {
			t.Errorf("queued call: %q", r.Err.Message)
		}
	}
	r := call(t, s, "ai", `1`)
	wantErr(t, r, CodeUnavailable)
	if !r.sync {
		t.Error("a call after Shutdown was not answered at once")
	}
	if err := s.Reload([]Spec{{Name: "ai", URL: srv.URL}}); !errors.Is(err, ErrShutdown) {
		t.Errorf("Reload after Shutdown = %v", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with calls in flight", err)
	default:
	}
	srv.unblock()
	for _, ch := range chans[:2] {
		inflight = append(inflight, <-ch)
	}
	for _, r := range inflight {
		wantOK(t, r)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}

	// A Shutdown whose context ends first says so.
	srv2 := newServer(t, "hang")
	s2, _ := newTestSet(t, Options{})
	mustReload(t, s2, Spec{Name: "ai", URL: srv2.URL, Timeout: 300 * time.Millisecond})
	pending := callAsync(t, s2, CallMeta{SocketID: "s"}, "ai", `1`)
	wstest.WaitFor(t, "a call in flight", func() bool { return s2.Snapshot()[0].InFlight == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := s2.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a short context = %v", err)
	}
	wantErr(t, <-pending, CodeTimeout)
}

// TestConcurrentCalls hammers a Set with calls, reloads, resets and
// snapshots (-race); every call is answered exactly once.
func TestConcurrentCalls(t *testing.T) {
	srv := newServer(t, "ok")
	bad := newServer(t, "500")
	s, _ := newTestSet(t, Options{})
	specs := []Spec{{Name: "ai", URL: srv.URL, MaxConcurrent: 4, MaxQueued: 8}, {Name: "db", URL: bad.URL, MaxConcurrent: 2, MaxQueued: 2}}
	mustReload(t, s, specs...)
	var answered atomic.Int64
	var wg sync.WaitGroup
	const callers, each = 8, 100
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine sync.WaitGroup
			for i := range each {
				mine.Add(1)
				svc := []string{"ai", "db", "nope"}[(c+i)%3]
				s.Call(CallMeta{SocketID: "s"}, svc, []byte(`1`), func(r Result) {
					answered.Add(1)
					mine.Done()
				})
			}
			mine.Wait()
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 20 {
			specs[0].Timeout = time.Duration(1+i%2) * time.Second // a change: the upstream is replaced
			if err := s.Reload(specs); err != nil {
				t.Error(err)
			}
			s.Reset("*")
			_ = s.Snapshot()
			_ = s.Names()
		}
	}()
	wg.Wait()
	if n := answered.Load(); n != callers*each {
		t.Errorf("%d answers to %d calls", n, callers*each)
	}
}

func TestHeaderValue(t *testing.T) {
	for in, want := range map[string]string{
		"user-1":         "user-1",
		"100%":           "100%",
		"a\r\nX-Evil: 1": "a%0D%0AX-Evil: 1",
		"50%\x00":        "50%25%00",
		"tab\tis fine":   "tab\tis fine",
		"ünïcödé":        "ünïcödé",
		"del\x7fcontrol": "del%7Fcontrol",
	} {
		if got := headerValue(in); got != want {
			t.Errorf("headerValue(%q) = %q, want %q", in, got, want)
		}
	}
}
