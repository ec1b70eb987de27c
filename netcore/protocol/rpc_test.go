package protocol

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockmon/sockmon/netcore/breaker"
	"github.com/sockmon/sockmon/netcore/upstream"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// rpcServer starts the protocol with upstreams from specs, whose URLs are
// filled in by the caller.
func rpcServer(t *testing.T, maxInFlight int, specs ...upstream.Spec) (*node, string) {
	t.Helper()
	set, err := upstream.New(upstream.Options{MaxReplyBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Reload(specs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Shutdown(t.Context()) })
	return testServer(t, Config{RPC: set, MaxRPCInFlight: maxInFlight, ConnRate: -1})
}

func TestRPC(t *testing.T) {
	var lastUser, lastSocket atomic.Value
	var failing atomic.Bool
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		lastUser.Store(r.Header.Get("X-Sockmon-User-Id"))
		lastSocket.Store(r.Header.Get("X-Sockmon-Socket-Id"))
		switch {
		case r.URL.Path == "/hang":
			<-release
		case failing.Load():
			http.Error(w, "down", http.StatusInternalServerError)
		case r.URL.Path == "/text":
			_, _ = w.Write([]byte("not json"))
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"echoed":` + string(body) + `}`))
		}
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(release) }) // before up.Close, which waits for handlers
	fast := breaker.Config{ConsecutiveFailures: 2, OpenBase: time.Minute, OpenMax: time.Minute}
	srv, addr := rpcServer(t, 2,
		upstream.Spec{Name: "ai", URL: up.URL + "/rpc", Breaker: fast},
		upstream.Spec{Name: "cached", URL: up.URL + "/rpc", Breaker: fast, Fallback: json.RawMessage(`{"cached":true}`)},
		upstream.Spec{Name: "slow", URL: up.URL + "/hang", Timeout: 300 * time.Millisecond},
		upstream.Spec{Name: "text", URL: up.URL + "/text"},
	)
	c := dialWS(t, "ws://"+addr+"/ws", nil)

	if got := asJSON(c.roundTrip(`{"type":"rpc","id":5,"service":"ai","data":{"q":"hi"}}`)); got != `{"data":{"echoed":{"q":"hi"}},"id":5,"type":"rpc_result"}` {
		t.Fatalf("rpc result: %s", got)
	}
	if lastUser.Load() != "" || lastSocket.Load() != "1" {
		// Anonymous client, the server's first socket.
		t.Errorf("headers: user %q socket %q", lastUser.Load(), lastSocket.Load())
	}
	for msg, code := range map[string]string{
		`{"type":"rpc","id":"x","service":"nope","data":1}`: CodeNotFound,
		`{"type":"rpc","id":"x","data":1}`:                  CodeBadRequest,
		`{"type":"rpc","id":"x","service":"text","data":1}`: CodeBadRequest,
		`{"type":"rpc","id":"x","service":"slow","data":1}`: CodeTimeout,
	} {
		if m := c.roundTrip(msg); m["type"] != "error" || m["code"] != code || m["id"] != "x" {
			t.Errorf("%s: %v, want error %s with the id", msg, m, code)
		}
	}

	// A failing upstream: two 500s trip the breaker; then clients get
	// unavailable with retryAfterMs at once, or the fallback.
	failing.Store(true)
	for i := 0; i < 2; i++ {
		if m := c.roundTrip(`{"type":"rpc","id":1,"service":"ai","data":1}`); m["code"] != CodeUnavailable {
			t.Fatalf("500 %d: %v", i, m)
		}
	}
	start := time.Now()
	m := c.roundTrip(`{"type":"rpc","id":2,"service":"ai","data":1}`)
	if m["code"] != CodeUnavailable || m["retryAfterMs"] == nil || m["retryAfterMs"].(float64) < 1000 {
		t.Fatalf("open breaker: %v, want unavailable with retryAfterMs", m)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("an open breaker took %v to answer", d)
	}
	for i := 0; i < 3; i++ {
		m := c.roundTrip(`{"type":"rpc","id":3,"service":"cached","data":1}`)
		if asJSON(m) != `{"data":{"cached":true},"fallback":true,"id":3,"type":"rpc_result"}` {
			t.Fatalf("fallback %d: %s", i, asJSON(m))
		}
	}

	// At most two calls in flight per connection.
	for i := 0; i < 3; i++ {
		c.Send(`{"type":"rpc","id":9,"service":"slow","data":1}`)
	}
	if m := c.recv(); m["code"] != CodeTooManyRequests {
		t.Fatalf("third call in flight: %v, want too_many_requests", m)
	}
	for i := 0; i < 2; i++ {
		if m := c.recv(); m["code"] != CodeTimeout {
			t.Fatalf("slow call %d: %v", i, m)
		}
	}
	// The connection still serves, and the counts are in the metrics.
	if m := c.roundTrip(`{"type":"ping"}`); m["type"] != "pong" {
		t.Fatalf("after the calls: %v", m)
	}
	byCode := srv.Metrics().Snapshot().Totals.ErrorsByCode
	if byCode["timeout"] != 3 || byCode["too_many_requests"] != 1 || byCode["unavailable"] != 3 {
		t.Errorf("errors by code: %v", byCode)
	}
}

// A client that leaves while its call is in flight costs nothing more than
// the call: the answer is dropped, the node keeps serving.
func TestRPCClientLeavesMidCall(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		_, _ = w.Write([]byte(`1`))
	}))
	t.Cleanup(up.Close)
	srv, addr := rpcServer(t, 4, upstream.Spec{Name: "ai", URL: up.URL})
	c := dialWS(t, "ws://"+addr+"/ws", nil)
	c.Send(`{"type":"rpc","service":"ai","data":1}`)
	<-arrived
	c.c.Close()
	wstest.WaitFor(t, "the client to be gone", func() bool { return srv.Stats().Open == 0 })
	close(release)
	d := dialWS(t, "ws://"+addr+"/ws", nil)
	if m := d.roundTrip(`{"type":"rpc","id":1,"service":"ai","data":1}`); m["type"] != "rpc_result" {
		t.Fatalf("next client: %v", m)
	}
}

// Without upstreams, every rpc is not_found.
func TestRPCWithoutUpstreams(t *testing.T) {
	_, addr := testServer(t, Config{})
	c := dialWS(t, "ws://"+addr+"/ws", nil)
	if m := c.roundTrip(`{"type":"rpc","id":1,"service":"ai","data":1}`); m["code"] != CodeNotFound {
		t.Fatalf("%v", m)
	}
}
