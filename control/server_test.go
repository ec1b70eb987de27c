package control

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/protocol"
	"github.com/sockmon/sockmon/netcore/wstest"
	"github.com/valyala/fasthttp"
)

// Every goroutine the control server starts is gone after Shutdown; Serve
// returns ErrServerClosed, and after Shutdown it refuses to start.
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	eng, proto := newEngine(t, netcore.Config{Logger: slog.New(slog.DiscardHandler), DrainDelay: -1}, protocol.Config{})
	base := goroutines()
	ctl, err := New(Config{DataDir: t.TempDir(), Engine: eng, Protocol: proto, AdminSecret: []byte(testAdminSecret), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ctl.Serve(ln) }()
	tr := &http.Transport{}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	tok, _ := AdminToken([]byte(testAdminSecret), "alice", time.Minute)
	for _, p := range []string{PathHealth, PathLivez, PathReadyz, PathMetrics, PathAdmin} {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+p, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// An emergency shutdown without a hook runs the engine's shutdown on a
	// goroutine the server owns.
	if _, err := ctl.Command(Actor{Sub: "alice"}, ActionExecuteCommand, []byte(`{"command":"emergency_shutdown","reason":"test","confirm":"EMERGENCY_SHUTDOWN"}`)); err != nil {
		t.Fatal(err)
	}
	tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := ctl.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Shutdown took %s", d)
	}
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	if err := ctl.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := ctl.Serve(ln2); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
	// fasthttp's worker-pool cleaner notices the stop within
	// MaxIdleWorkerDuration (1 s here); nothing else may remain.
	deadline := time.Now().Add(3 * time.Second)
	for goroutines() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", goroutines(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// goroutines counts the goroutines of the process except two process-wide
// pools that belong to no server: fasthttp's Date-header clock (started
// once, never stopped) and netcore's task runner workers (which exit after
// 10 s idle).
func goroutines() int {
	buf := make([]byte, 1<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if !strings.Contains(g, "fasthttp.updateServerDate") && !strings.Contains(g, "netcore.(*runner).worker") {
			n++
		}
	}
	return n
}

// Mount serves a handler under a prefix on the control port (how the
// dashboard is served), refuses overlaps with the control paths or another
// mount, and refuses to mount after Serve.
func TestMount(t *testing.T) {
	eng, proto := newEngine(t, netcore.Config{Logger: slog.New(slog.DiscardHandler), DrainDelay: -1}, protocol.Config{})
	ctl, err := New(Config{DataDir: t.TempDir(), Engine: eng, Protocol: proto, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("mounted " + string(ctx.Path())) }
	for _, bad := range []string{"", "/", "dashboard", "/dashboard/", "/api", "/api/health/socket/x", "/metrics"} {
		if err := ctl.Mount(bad, h); err == nil {
			t.Errorf("Mount(%q): no error", bad)
		}
	}
	if err := ctl.Mount("/dashboard", h); err != nil {
		t.Fatal(err)
	}
	if err := ctl.Mount("/dashboard/x", h); err == nil {
		t.Error("overlapping mount: no error")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ctl.Serve(ln) }()
	t.Cleanup(func() { _ = ctl.Shutdown(context.Background()) })
	for path, want := range map[string]string{"/dashboard": "mounted /dashboard", "/dashboard/static/app.js": "mounted /dashboard/static/app.js", "/dashboardx": ""} {
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want == "" {
			if resp.StatusCode != 404 {
				t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
			}
			continue
		}
		if string(b) != want || resp.StatusCode != 200 {
			t.Errorf("GET %s: %d %q, want %q", path, resp.StatusCode, b, want)
		}
	}
	wstest.WaitFor(t, "Serve", func() bool { ctl.mu.Lock(); defer ctl.mu.Unlock(); return ctl.serving > 0 })
	if err := ctl.Mount("/other", h); err == nil {
		t.Error("Mount after Serve: no error")
	}
}
