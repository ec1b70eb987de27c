package control

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/protocol"
)

// profiledServer is a control server with EnableProfiling called before
// Serve, as `sockmon serve --pprof` does; it stops when the test ends. Its
// fixture is enough for do.
func profiledServer(t *testing.T) (*fixture, *syncBuffer) {
	t.Helper()
	eng, proto := newEngine(t, netcore.Config{Logger: slog.New(slog.DiscardHandler), DrainDelay: -1}, protocol.Config{JWTSecret: []byte(testClientSecret)})
	logs := &syncBuffer{}
	ctl, err := New(Config{DataDir: t.TempDir(), Engine: eng, Protocol: proto, AdminSecret: []byte(testAdminSecret),
		ClientSecret: []byte(testClientSecret), Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.EnableProfiling(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ctl.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ctl.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-done
	})
	return &fixture{t: t, base: "http://" + ln.Addr().String(), ctl: ctl}, logs
}

// Without EnableProfiling (no --pprof), /debug/pprof answers 404, even to
// an ADMIN token.
func TestPprofOffByDefault(t *testing.T) {
	f := newFixture(t)
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1", "/debug/pprof"} {
		if r := f.do("GET", p, f.token(), nil); r.status != 404 {
			t.Errorf("%s without profiling: %d %s", p, r.status, r.body)
		}
	}
}

// With profiling on: the admin API's refusals (401 without or with a bad
// token, the client secret's tokens included; 403 for a VIEWER), and an
// ADMIN token gets every profile, a heap profile that `go tool pprof`
// parses.
func TestPprofAdminOnly(t *testing.T) {
	f, logs := profiledServer(t)
	viewer, err := RoleToken([]byte(testAdminSecret), "auditor", ViewerRole, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/goroutine?debug=2", "/debug/pprof/cmdline"} {
		r := f.do("GET", p, "", nil)
		if ok, _, code, _, _ := r.envelope(t); r.status != 401 || ok || code != CodeUnauthorized || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s without a token: %d %s", p, r.status, r.body)
		}
		if r := f.do("GET", p, clientToken(t, "mallory"), nil); r.status != 401 {
			t.Errorf("%s with a client token: %d %s", p, r.status, r.body)
		}
		r = f.do("GET", p, viewer, nil)
		if ok, _, code, _, _ := r.envelope(t); r.status != 403 || ok || code != CodeForbidden || !strings.Contains(string(r.body), "ADMIN") {
			t.Errorf("%s as VIEWER: %d %s", p, r.status, r.body)
		}
	}
	if !strings.Contains(logs.String(), `"path":"/debug/pprof/heap"`) {
		t.Errorf("no refusal log line for /debug/pprof/heap:\n%s", logs)
	}

	admin := f.token()
	if r := f.do("POST", "/debug/pprof/symbol", admin, []byte("0x1")); r.status != 405 {
		t.Errorf("POST: %d", r.status)
	}
	if r := f.do("GET", "/debug/pprof", admin, nil); r.status != 200 || !strings.Contains(string(r.body), "heap") {
		t.Errorf("/debug/pprof (redirected to the index): %d %s", r.status, r.body)
	}
	index := f.do("GET", "/debug/pprof/", admin, nil)
	for _, name := range []string{"allocs", "block", "goroutine", "heap", "mutex", "threadcreate", "cmdline", "profile", "symbol", "trace"} {
		if !strings.Contains(string(index.body), name) {
			t.Errorf("the index does not list %s: %s", name, index.body)
		}
	}
	for _, p := range []string{"allocs", "block", "mutex", "threadcreate", "goroutine"} {
		if r := f.do("GET", "/debug/pprof/"+p, admin, nil); r.status != 200 || !bytes.HasPrefix(r.body, []byte{0x1f, 0x8b}) {
			t.Errorf("%s: %d, %d bytes not gzip", p, r.status, len(r.body))
		}
	}
	if r := f.do("GET", "/debug/pprof/goroutine?debug=1", admin, nil); r.status != 200 || !strings.Contains(string(r.body), "goroutine profile:") ||
		!strings.Contains(string(r.body), "handlePprof") {
		t.Errorf("goroutine text profile: %d %.300s", r.status, r.body)
	}
	if r := f.do("GET", "/debug/pprof/cmdline", admin, nil); r.status != 200 || !strings.Contains(string(r.body), filepath.Base(os.Args[0])) {
		t.Errorf("cmdline: %d %s", r.status, r.body)
	}
	if r := f.do("GET", "/debug/pprof/symbol", admin, nil); r.status != 200 || !strings.Contains(string(r.body), "num_symbols") {
		t.Errorf("symbol: %d %s", r.status, r.body)
	}
	if r := f.do("GET", "/debug/pprof/profile?seconds=1", admin, nil); r.status != 200 || !bytes.HasPrefix(r.body, []byte{0x1f, 0x8b}) {
		t.Errorf("CPU profile: %d, %d bytes", r.status, len(r.body))
	}
	if r := f.do("GET", "/debug/pprof/trace?seconds=0.2", admin, nil); r.status != 200 || !bytes.HasPrefix(r.body, []byte("go 1.")) {
		t.Errorf("trace: %d %.20q", r.status, r.body)
	}
	if r := f.do("GET", "/debug/pprof/nope", admin, nil); r.status != 404 {
		t.Errorf("an unknown profile: %d", r.status)
	}

	heap := f.do("GET", "/debug/pprof/heap", admin, nil)
	if heap.status != 200 || !bytes.HasPrefix(heap.body, []byte{0x1f, 0x8b}) {
		t.Fatalf("heap: %d, %d bytes", heap.status, len(heap.body))
	}
	checkHeapProfile(t, heap.body)
}

// checkHeapProfile parses a heap profile with `go tool pprof -raw`, the
// tool an operator uses.
func checkHeapProfile(t *testing.T, profile []byte) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "heap.pprof")
	if err := os.WriteFile(file, profile, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "tool", "pprof", "-raw", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "inuse_space/bytes") || !strings.Contains(string(out), "Locations") {
		t.Fatalf("go tool pprof -raw: %v\n%.2000s", err, out)
	}
}
