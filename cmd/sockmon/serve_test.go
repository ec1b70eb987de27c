package main

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// buildSockmon compiles the binary once per test run.
var buildSockmon = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "sockmon-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "sockmon")
	out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", errors.New(string(out))
	}
	return bin, nil
})

// startServe runs `sockmon serve` with args on a free port and returns the
// process and the WebSocket address it logged.
func startServe(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd, addr, _ := startServeEnv(t, nil, args...)
	return cmd, addr
}

// startServeEnv is startServe with extra environment variables; it also
// returns the control address.
func startServeEnv(t *testing.T, env []string, args ...string) (*exec.Cmd, string, string) {
	t.Helper()
	cmd, ws, ctl, _ := startServeLogs(t, env, args...)
	return cmd, ws, ctl
}

// SIGTERM drains: every client gets 1001 with a reason before the process
// exits, and it exits 0.
func TestServeDrainsOnSIGTERM(t *testing.T) {
	cmd, addr := startServe(t, "--echo-path", "/echo", "--drain-delay", "200ms", "--shutdown-timeout", "10s")
	const n = 30
	codes := make(chan int, n)
	for i := 0; i < n; i++ {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		go func() {
			defer c.Close()
			for {
				_, _, err := c.ReadMessage()
				var ce *websocket.CloseError
				if errors.As(err, &ce) && strings.Contains(ce.Text, "shutting down") {
					codes <- ce.Code
					return
				}
				if err != nil {
					codes <- 0
					return
				}
			}
		}()
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		select {
		case code := <-codes:
			if code != websocket.CloseGoingAway {
				t.Fatalf("client %d: close %d, want 1001 with a reason", i, code)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("only %d of %d clients saw the close", i, n)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sockmon serve after SIGTERM: %v, want exit 0", err)
	}
}

func TestServeHelpListsEveryLimitFlag(t *testing.T) {
	var out strings.Builder
	fs, _ := newServeFlagSet()
	serveUsage(&out, fs, func(string) string { return "" })
	for _, name := range []string{"addr", "echo-path", "max-conns", "max-message-size", "handshake-timeout", "idle-timeout",
		"ping-interval", "write-queue-bytes", "drain-delay", "shutdown-timeout"} {
		if !strings.Contains(out.String(), "--"+name+" (default ") || !strings.Contains(out.String(), envName(name)) {
			t.Errorf("serve --help does not list --%s with its default and $%s", name, envName(name))
		}
	}
}

func TestEnvironmentSetsFlags(t *testing.T) {
	fs, f := newServeFlagSet()
	env := map[string]string{"SOCKMON_MAX_CONNS": "123", "SOCKMON_ADDR": ":9999", "SOCKMON_IDLE_TIMEOUT": "1m"}
	if err := parseWithEnv(fs, []string{"--addr", ":7777"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if f.cfg.MaxConns != 123 || f.cfg.IdleTimeout != time.Minute {
		t.Fatalf("env not applied: max-conns %d idle %s", f.cfg.MaxConns, f.cfg.IdleTimeout)
	}
	if f.cfg.Addr != ":7777" {
		t.Fatalf("command line should win over the environment: addr %q", f.cfg.Addr)
	}
	fs, _ = newServeFlagSet()
	err := parseWithEnv(fs, nil, func(k string) string {
		if k == "SOCKMON_MAX_CONNS" {
			return "many"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "SOCKMON_MAX_CONNS") {
		t.Fatalf("bad env value: %v, want an error naming SOCKMON_MAX_CONNS", err)
	}
}

func TestTopLevelHelpListsServeFlags(t *testing.T) {
	var out strings.Builder
	if rc := run([]string{"--help"}, &out, io.Discard); rc != 0 {
		t.Fatalf("sockmon --help exited %d", rc)
	}
	for _, want := range []string{"serve", "load", "token", "--max-conns (default 10000, $SOCKMON_MAX_CONNS)", "--ping-interval (default 25s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("sockmon --help does not show %q", want)
		}
	}
}

// Ctrl-C on an idle server (the default 5 s drain delay, no client
// connected) exits at once, and exits 0.
func TestServeExitsAtOnceOnSIGINTWithNoClient(t *testing.T) {
	cmd, _ := startServe(t) // --drain-delay at its default, 5s
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sockmon serve after SIGINT: %v, want exit 0", err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("sockmon serve took %s to exit with no client connected, want well under the 5s drain delay", took)
	}
}

// A second sockmon serve on the same --data-dir says that another process
// holds the store, and where, instead of "timeout".
func TestServeSecondNodeOnTheSameDataDir(t *testing.T) {
	dir := t.TempDir()
	startServe(t, "--data-dir", dir)
	_, stderr, code := runBinary(t, nil, "serve", "--addr", "127.0.0.1:0", "--control-addr", "127.0.0.1:0", "--data-dir", dir)
	if code == 0 || !strings.Contains(stderr, filepath.Join(dir, "control.db")) || !strings.Contains(stderr, "held by another process") {
		t.Fatalf("second serve on %s: exit %d, stderr %q; want an error naming the store and the other process", dir, code, stderr)
	}
}

// lockedBuffer collects a process's output; safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// serveProc is a running `sockmon serve` started by startServeProc.
type serveProc struct {
	cmd            *exec.Cmd
	ws, control    string
	stdout, stderr *lockedBuffer
	done           chan struct{} // closed when the process has exited
}

// cleanEnv is the test's environment without any SOCKMON_* variable (a
// secret set on the test machine must not leak into the process), plus
// env.
func cleanEnv(env ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOCKMON_") {
			out = append(out, kv)
		}
	}
	return append(out, env...)
}

// startServeProc runs `sockmon serve` on free loopback ports with dataDir,
// the environment env (see cleanEnv) and more flags; it returns once the
// process logged its addresses on stderr. The process is killed when the
// test ends.
func startServeProc(t *testing.T, env []string, dataDir string, args ...string) *serveProc {
	t.Helper()
	bin, err := buildSockmon()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	p := &serveProc{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--control-addr", "127.0.0.1:0", "--data-dir", dataDir}, args...)...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("sockmon serve stderr:\n%s\nstdout:\n%s", p.stderr.String(), p.stdout.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for p.ws == "" {
		for _, line := range strings.Split(p.stderr.String(), "\n") {
			var rec struct {
				Msg, Addr   string
				ControlAddr string `json:"control_addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "sockmon serving" {
				p.ws, p.control = rec.Addr, rec.ControlAddr
			}
		}
		select {
		case <-p.done:
			t.Fatalf("sockmon serve exited: %v\n%s", p.cmd.ProcessState, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("sockmon serve did not log its addresses")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p
}
