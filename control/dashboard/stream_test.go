package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockmon/sockmon/control"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// openStream opens GET /dashboard/events with cookie and returns the
// response (the caller closes its body).
func (f *fixture) openStream(cookie string) *http.Response {
	f.t.Helper()
	req, _ := http.NewRequest("GET", f.base+"/dashboard/events", nil)
	req.Header.Set("Cookie", cookie)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp
}

// nextEvent reads the next event's name and data.
func nextEvent(t *testing.T, r *bufio.Reader) (string, string) {
	t.Helper()
	var name, data string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && name != "":
			return name, data
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// The stream sends the status every interval, with the security headers
// and no caching; it needs a session; a logout ends it.
func TestEventsStream(t *testing.T) {
	f := newFixture(t)
	if r := f.do("GET", "/dashboard/events", nil); r.status != 401 {
		t.Fatalf("stream without a session: %d", r.status)
	}
	c, csrf := f.session(control.ViewerRole)
	resp := f.openStream(c)
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" || resp.Header.Get("Cache-Control") != "no-store" ||
		resp.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("stream: %d %v", resp.StatusCode, resp.Header)
	}
	br := bufio.NewReader(resp.Body)
	wstest.Dial(t, f.wsAddr, "/ws") // closed when the test ends
	start := time.Now()
	var ev Event
	for i := 0; ; i++ {
		name, data := nextEvent(t, br)
		if name != "status" {
			t.Fatalf("event %q", name)
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil || ev.Status == nil {
			t.Fatalf("event data %q: %v", data, err)
		}
		if ev.Status.Connections.Total == 1 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("the stream never showed the client")
		}
	}
	// The viewer signs out: its stream says so and ends.
	r := f.do("POST", "/dashboard/logout", strings.NewReader("csrf="+csrf), "Cookie: "+c, "Content-Type: application/x-www-form-urlencoded")
	if r.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.status)
	}
	for {
		name, _ := nextEvent(t, br)
		if name == "signedout" {
			break
		}
	}
	wstest.WaitFor(t, "the stream closed", func() bool { return f.dash.Streams() == 0 })
}

// At most MaxClients streams; the next one gets 503 with Retry-After, and
// a slot comes back when a stream closes.
func TestEventsMaxClients(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxClients = 2 })
	c, _ := f.session(control.AdminRole)
	a, b := f.openStream(c), f.openStream(c)
	defer b.Body.Close()
	wstest.WaitFor(t, "two streams", func() bool { return f.dash.Streams() == 2 })
	r := f.do("GET", "/dashboard/events", nil, "Cookie: "+c)
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("third stream: %d %v", r.status, r.header)
	}
	a.Body.Close()
	wstest.WaitFor(t, "a slot freed", func() bool { return f.dash.Streams() == 1 })
	d := f.openStream(c)
	defer d.Body.Close()
	if d.StatusCode != 200 {
		t.Fatalf("stream after a slot freed: %d", d.StatusCode)
	}
}

// A reader that stops reading is dropped once a write blocks for
// WriteTimeout: nothing is buffered for it beyond the socket's buffers.
func TestEventsStalledReaderDropped(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Interval = MinInterval; o.WriteTimeout = 200 * time.Millisecond })
	c, _ := f.session(control.AdminRole)
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(f.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /dashboard/events HTTP/1.1\r\nHost: x\r\nCookie: " + c + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	wstest.WaitFor(t, "the stream opened", func() bool { return f.dash.Streams() == 1 })
	deadline := time.Now().Add(30 * time.Second)
	for f.dash.Streams() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a stalled reader was not dropped in 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(f.logs.String(), "its reader stalled") {
		t.Fatal("the drop is not logged")
	}
}

// Shutdown closes every stream and waits for its goroutines.
func TestShutdownClosesStreams(t *testing.T) {
	f := newFixture(t)
	c, _ := f.session(control.AdminRole)
	base := runtime.NumGoroutine()
	var bodies []*http.Response
	for range 3 {
		bodies = append(bodies, f.openStream(c))
	}
	wstest.WaitFor(t, "three streams", func() bool { return f.dash.Streams() == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.dash.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, b := range bodies {
		if _, err := bufio.NewReader(b.Body).ReadString(0); err == nil {
			t.Fatal("a stream is still open after Shutdown")
		}
		b.Body.Close()
	}
	if f.dash.Streams() != 0 {
		t.Fatalf("%d streams after Shutdown", f.dash.Streams())
	}
	if r := f.do("GET", "/dashboard/events", nil, "Cookie: "+c); r.status != 503 && r.status != 200 {
		t.Fatalf("stream after Shutdown: %d", r.status)
	}
	wstest.WaitFor(t, "goroutines back", func() bool { return runtime.NumGoroutine() <= base+2 })
}
