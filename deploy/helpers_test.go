package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// binDir holds the sockmon binary the tests build; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sockmon-deploy-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// buildSockmon compiles cmd/sockmon once per test run (without -race: these
// tests exercise the deployment files, not sockmon's concurrency).
var buildSockmon = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(binDir, "sockmon")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/sockmon/sockmon/cmd/sockmon").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/sockmon: %v\n%s", err, out)
	}
	return bin, nil
})

func sockmonBin(t *testing.T) string {
	t.Helper()
	bin, err := buildSockmon()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// requireTool finds a command the test drives. Under CI=true a missing tool
// fails the test (make test-deps installs it from Debian); elsewhere the
// test is skipped with the reason.
func requireTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (CI=true): make test-deps installs the Debian package %s", name, debianPackage)
		}
		t.Skipf("%s is not installed; make test-deps (or apt-get install %s) installs it", name, debianPackage)
	}
	return path
}

// run runs a command and fails the test with its output when it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// freeAddr returns a loopback address with a port nothing listens on, for
// a server the test cannot hand a listener to.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// waitFor polls cond until it holds or 30 seconds have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// syncBuffer collects a process's output for the failure message.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDaemon starts a long-running process in a process group of its own
// (nginx forks workers). When the test ends it sends stop to the group,
// SIGKILL if the group has not exited 10 s later, and shows the output if
// the test failed.
func startDaemon(t *testing.T, cmd *exec.Cmd, stop syscall.Signal) *syncBuffer {
	t.Helper()
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	pgid := cmd.Process.Pid
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, stop)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
		}
		// Workers outlive a master killed with SIGKILL.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), logs.String())
		}
	})
	return logs
}

// node is a running `sockmon serve`.
type node struct {
	ws      string // WebSocket address, host:port
	control string // control address, host:port
	agent   string // agent-check address, host:port, with --agent-addr
	logs    *syncBuffer
	cmd     *exec.Cmd
}

// startSockmon runs `sockmon serve` on free loopback ports with a temporary
// data directory; env adds environment variables, args more flags. It
// returns once the process logged its addresses.
func startSockmon(t *testing.T, env []string, args ...string) *node {
	t.Helper()
	bin := sockmonBin(t)
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--control-addr", "127.0.0.1:0",
		"--data-dir", t.TempDir()}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	// SIGKILL: SIGTERM would drain for --drain-delay first.
	logs := startDaemon(t, cmd, syscall.SIGKILL)
	n := &node{logs: logs, cmd: cmd}
	waitFor(t, "sockmon serve to log its addresses", func() bool {
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			var rec struct {
				Msg, Addr   string
				ControlAddr string `json:"control_addr"`
				AgentAddr   string `json:"agent_addr"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "sockmon serving" {
				n.ws, n.control, n.agent = rec.Addr, rec.ControlAddr, rec.AgentAddr
				return true
			}
		}
		return false
	})
	waitFor(t, "sockmon to be ready", func() bool {
		resp, err := http.Get("http://" + n.control + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return n
}

// metricFamilies scrapes /metrics of a control address and returns the
// families by name, parsed with Prometheus' own text parser.
func metricFamilies(t *testing.T, control string) map[string]string {
	t.Helper()
	resp, err := http.Get("http://" + control + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := make(map[string]string, len(fams))
	for name, f := range fams {
		out[name] = strings.ToLower(f.GetType().String())
	}
	return out
}

var helpFlagRE = regexp.MustCompile(`(?m)^  --([a-z0-9-]+) \(default (.*), \$(SOCKMON_[A-Z0-9_]+)\)$`)

// serveFlag is one flag of `sockmon serve --help`.
type serveFlag struct {
	Default string
	Env     string
}

// serveFlags returns the flags of `sockmon serve` with their defaults, as the
// binary prints them: the single source of the defaults the deployment files
// must agree with.
var serveFlagsOnce = sync.OnceValues(func() (map[string]serveFlag, error) {
	bin, err := buildSockmon()
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "serve", "--help")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return nil, err
		}
	}
	flags := map[string]serveFlag{}
	for _, m := range helpFlagRE.FindAllStringSubmatch(out.String(), -1) {
		flags[m[1]] = serveFlag{Default: m[2], Env: m[3]}
	}
	if len(flags) < 10 {
		return nil, fmt.Errorf("sockmon serve --help lists %d flags; its format changed?\n%s", len(flags), out.String())
	}
	return flags, nil
})

func serveFlags(t *testing.T) map[string]serveFlag {
	t.Helper()
	f, err := serveFlagsOnce()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// serveDuration is the default of a duration flag of `sockmon serve`.
func serveDuration(t *testing.T, name string) time.Duration {
	t.Helper()
	f, ok := serveFlags(t)[name]
	if !ok {
		t.Fatalf("sockmon serve has no --%s", name)
	}
	d, err := time.ParseDuration(f.Default)
	if err != nil {
		t.Fatalf("--%s default %q: %v", name, f.Default, err)
	}
	return d
}

// servePort is the port of the default of an address flag (":8081" -> "8081").
func servePort(t *testing.T, name string) string {
	t.Helper()
	f, ok := serveFlags(t)[name]
	if !ok {
		t.Fatalf("sockmon serve has no --%s", name)
	}
	_, port, err := net.SplitHostPort(f.Default)
	if err != nil {
		t.Fatalf("--%s default %q: %v", name, f.Default, err)
	}
	return port
}

// readFile reads a file of deploy/ (the test's working directory).
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// substitute replaces each old string of pairs with its new one, and fails
// the test when one is not in s: the deployment file changed and the test's
// substitution must follow.
func substitute(t *testing.T, file, s string, pairs ...string) string {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("%s no longer contains %q, which the test replaces with %q", file, pairs[i], pairs[i+1])
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	return s
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
