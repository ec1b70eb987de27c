package upstream

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockmon/sockmon/netcore/wstest"
)

// fakeClock drives the breakers' clock (call deadlines use real time).
type fakeClock = wstest.Clock

func newFakeClock() *fakeClock { return wstest.NewClock() }

// newTestSet returns a Set on a fake breaker clock without jitter, shut
// down (and checked for leaked goroutines) when the test ends.
func newTestSet(t *testing.T, o Options) (*Set, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	if o.Now == nil {
		o.Now = clk.Now
	}
	if o.Rand == nil {
		o.Rand = func() float64 { return 0 }
	}
	if o.LookupEnv == nil {
		o.LookupEnv = env{}.lookup
	}
	if o.IdleConnTimeout == 0 {
		o.IdleConnTimeout = 50 * time.Millisecond // so that fasthttp's cleaner exits soon after Shutdown
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	liveSets.Add(1)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if liveSets.Add(-1) == 0 { // the last Set of the test is down
			checkNoLeaks(t)
		}
	})
	return s, clk
}

// liveSets counts the test's Sets not yet shut down (tests do not run in
// parallel).
var liveSets atomic.Int32

func mustReload(t *testing.T, s *Set, specs ...Spec) {
	t.Helper()
	if err := s.Reload(specs); err != nil {
		t.Fatalf("Reload: %v", err)
	}
}

// reply is a Result copied out of done, with when it arrived.
type reply struct {
	Result
	data    string
	elapsed time.Duration
	sync    bool // done ran before Call returned
}

// call makes one call and waits for its answer.
func call(t *testing.T, s *Set, service, data string) reply {
	t.Helper()
	return <-callAsync(t, s, CallMeta{UserID: "u1", SocketID: "s1"}, service, data)
}

// callAsync starts a call; the channel yields its answer.
func callAsync(t *testing.T, s *Set, meta CallMeta, service, data string) <-chan reply {
	t.Helper()
	ch := make(chan reply, 1)
	var returned atomic.Bool
	var calls atomic.Int32
	start := time.Now()
	s.Call(meta, service, []byte(data), func(r Result) {
		if calls.Add(1) != 1 {
			t.Errorf("done called twice for %s", service)
			return
		}
		ch <- reply{Result: r, data: string(r.Data), elapsed: time.Since(start), sync: !returned.Load()}
	})
	returned.Store(true)
	out := make(chan reply, 1)
	go func() {
		select {
		case r := <-ch:
			out <- r
		case <-time.After(20 * time.Second):
			t.Errorf("no answer to a call to %s in 20s", service)
			close(out)
		}
	}()
	return out
}

func wantErr(t *testing.T, r reply, code string) {
	t.Helper()
	if r.Err == nil || r.Err.Code != code {
		t.Fatalf("answer = %+v (data %q), want error %s", r.Result, r.data, code)
	}
}

func wantOK(t *testing.T, r reply) {
	t.Helper()
	if r.Err != nil || r.Fallback {
		t.Fatalf("answer = err %v, fallback %v, want the upstream's reply", r.Err, r.Fallback)
	}
}

// checkNoLeaks waits for the goroutines of Sets and of fasthttp clients to
// be gone.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	var stuck []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		stuck = stuck[:0]
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "upstream.(*upstream).work") || strings.Contains(g, "fasthttp.(*HostClient).connsCleaner") {
				stuck = append(stuck, g)
			}
		}
		if len(stuck) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left after Shutdown:\n%s", len(stuck), strings.Join(stuck, "\n\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// server is a test upstream whose behaviour tests switch at run time.
type server struct {
	*httptest.Server
	mode    atomic.Value // string
	hits    atomic.Int32
	delay   atomic.Int64 // nanoseconds, for "slow"
	release chan struct{}
	relOnce sync.Once

	mu   sync.Mutex
	last http.Header // headers of the last request
	body []byte      // body of the last request
}

// newServer starts an upstream on 127.0.0.1:0 in mode:
//
//	ok     200 with {"echo":<the request body>}
//	500    500 with a JSON body
//	hang   no answer until the client gives up or the test ends
//	slow   ok after the delay
//	reset  reads the request, then resets the connection (SO_LINGER 0)
//	404    404; bad-json: 200 with a body that is not JSON; empty: 204
//	429    429 with Retry-After: 7
func newServer(t *testing.T, mode string) *server {
	t.Helper()
	srv := &server{release: make(chan struct{})}
	srv.mode.Store(mode)
	srv.Server = httptest.NewServer(http.HandlerFunc(srv.serve))
	t.Cleanup(func() {
		srv.unblock()
		srv.Close()
	})
	return srv
}

func (srv *server) unblock() { srv.relOnce.Do(func() { close(srv.release) }) }

func (srv *server) setMode(m string) { srv.mode.Store(m) }

func (srv *server) serve(w http.ResponseWriter, r *http.Request) {
	srv.hits.Add(1)
	body, _ := io.ReadAll(r.Body)
	srv.mu.Lock()
	srv.last, srv.body = r.Header.Clone(), body
	srv.mu.Unlock()
	switch srv.mode.Load().(string) {
	case "ok":
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(append([]byte(`{"echo":`), body...), '}'))
	case "500":
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(`{"error":"boom"}`))
	case "hang":
		select {
		case <-r.Context().Done():
		case <-srv.release:
		}
	case "slow":
		select {
		case <-time.After(time.Duration(srv.delay.Load())):
		case <-srv.release:
		}
		w.Write([]byte(`{"slow":true}`))
	case "reset":
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		}
	case "404":
		w.WriteHeader(http.StatusNotFound)
	case "bad-json":
		w.Write([]byte(`{"unterminated":`))
	case "empty":
		w.WriteHeader(http.StatusNoContent)
	case "429":
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
	}
}

func (srv *server) lastRequest() (http.Header, []byte) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.last, srv.body
}

// rawServer is a TCP upstream that reads one request's headers and then
// runs respond on the connection: for replies net/http would not send.
func rawServer(t *testing.T, respond func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				respond(c)
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/rpc"
}

// chunk is what the endless raw servers write, allocated once.
var chunk = bytes.Repeat([]byte("x"), 32<<10)
