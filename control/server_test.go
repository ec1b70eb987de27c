package control

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/protocol"
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
