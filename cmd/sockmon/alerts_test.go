package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/control/alerts"
	"github.com/sockmon/sockmon/netcore/wstest"
)

const e2eWebhookSecret = "e2e-webhook-secret-0123456789"

// signedHooks is a webhook receiver that keeps the payloads whose
// signature verifies, and counts those that do not.
type signedHooks struct {
	srv      *httptest.Server
	mu       sync.Mutex
	payloads []alerts.WebhookPayload
	badSig   int
}

func newSignedHooks(t *testing.T) *signedHooks {
	h := &signedHooks{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		var p alerts.WebhookPayload
		if !alerts.VerifySignature([]byte(e2eWebhookSecret), body, r.Header.Get(alerts.SignatureHeader)) || json.Unmarshal(body, &p) != nil {
			h.badSig++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h.payloads = append(h.payloads, p)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *signedHooks) statuses() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, p := range h.payloads {
		for _, a := range p.Alerts {
			out = append(out, a.Labels["alertname"]+":"+a.Status)
		}
	}
	return strings.Join(out, ",")
}

// logBuffer keeps a process's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) add(line string) {
	l.mu.Lock()
	l.b.WriteString(line + "\n")
	l.mu.Unlock()
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServeLogs starts `sockmon serve` on free ports with extra
// environment variables and returns the process, its WebSocket and control
// addresses and its log lines so far (kept while it runs).
func startServeLogs(t testing.TB, env []string, args ...string) (*exec.Cmd, string, string, *logBuffer) {
	t.Helper()
	bin, err := buildSockmon()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--control-addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	logs := &logBuffer{}
	type addrs struct{ ws, control string }
	addrc := make(chan addrs, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.add(sc.Text())
			var rec struct {
				Msg, Addr   string
				ControlAddr string `json:"control_addr"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "sockmon serving" {
				addrc <- addrs{rec.Addr, rec.ControlAddr}
			}
		}
	}()
	select {
	case a := <-addrc:
		return cmd, a.ws, a.control, logs
	case <-time.After(30 * time.Second):
		t.Fatal("sockmon serve did not log its address")
	}
	return nil, "", "", nil
}

// adminPost runs an admin action against a node and returns its data; a
// refused action fails the test.
func adminPost(t *testing.T, ctlAddr, token, action string, data any) json.RawMessage {
	t.Helper()
	status, env := adminCall(t, ctlAddr, token, action, data)
	if !env.Success {
		t.Fatalf("%s: %d %s: %s", action, status, env.Error.Code, env.Error.Message)
	}
	return env.Data
}

// End to end through `sockmon serve`: a rule of the alerts file,
// connections > 0 for 0, fires when a real WebSocket client connects and
// resolves when it leaves; the webhook receiver gets both with a valid
// signature. Then a bad rules file on SIGHUP keeps the rules in force, and
// a good one replaces them.
func TestServeAlertsEndToEnd(t *testing.T) {
	hooks := newSignedHooks(t)
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	write := func(s string) {
		if err := os.WriteFile(rules, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("rules:\n  - name: anyone_connected\n    metric: connections\n    operator: \">\"\n    threshold: 0\n    forMs: 0\n    level: warning\n")
	cmd, wsAddr, ctlAddr, logs := startServeLogs(t, []string{"SOCKMON_ADMIN_SECRET=" + checkTestAdminSecret, "SOCKMON_ALERT_WEBHOOK_SECRET=" + e2eWebhookSecret},
		"--alerts-file", rules, "--alert-interval", "50ms", "--alert-group-wait", "0", "--alert-webhook-url", hooks.srv.URL)
	token := adminToken(t)

	c, _, err := websocket.DefaultDialer.Dial("ws://"+wsAddr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	wstest.WaitFor(t, "the signed firing notification", func() bool { return hooks.statuses() == "anyone_connected:firing" })
	_ = c.Close()
	wstest.WaitFor(t, "the signed resolve", func() bool { return hooks.statuses() == "anyone_connected:firing,anyone_connected:resolved" })
	if hooks.badSig != 0 {
		t.Fatalf("%d notifications with a bad signature", hooks.badSig)
	}
	if strings.Contains(logs.String(), e2eWebhookSecret) {
		t.Fatal("the webhook secret is in the logs")
	}

	threshold := func() float64 {
		var d struct{ Alerts []alerts.RuleStatus }
		_ = json.Unmarshal(adminPost(t, ctlAddr, token, "get_alert_configs", nil), &d)
		for _, r := range d.Alerts {
			if r.Name == "anyone_connected" && r.Source == alerts.SourceFile {
				return r.Threshold
			}
		}
		return -1
	}
	write("rules:\n  - name: anyone_connected\n    metric: connections\n    threshold: 5\n    level: pager\n")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wstest.WaitFor(t, "the bad file refused", func() bool {
		return strings.Contains(logs.String(), `"msg":"reload step failed","step":"alerts file"`) &&
			strings.Contains(logs.String(), "the previous rules stay in force") &&
			strings.Contains(logs.String(), "rules.yaml:5: rules[0].level")
	})
	if got := threshold(); got != 0 {
		t.Fatalf("after a bad file the rule's threshold is %v, want 0 (kept)", got)
	}
	write("rules:\n  - name: anyone_connected\n    metric: connections\n    threshold: 7\n    level: info\n")
	_ = cmd.Process.Signal(syscall.SIGHUP)
	wstest.WaitFor(t, "the good file in force", func() bool { return threshold() == 7 })

	h := adminPost(t, ctlAddr, token, "get_alert_history", map[string]any{"name": "anyone_connected"})
	if !strings.Contains(string(h), `"kind":"firing"`) || !strings.Contains(string(h), `"kind":"resolved"`) {
		t.Fatalf("history %s", h)
	}
}

// A bad rules file stops the start, naming the line and the field.
func TestServeRefusesABadAlertsFile(t *testing.T) {
	bin, err := buildSockmon()
	if err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	_ = os.WriteFile(rules, []byte("rules:\n  - name: x\n    metric: connections\n    threshold: 1\n    level: pager\n"), 0o600)
	out, err := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--control-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--alerts-file", rules).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "rules.yaml:5: rules[0].level") {
		t.Fatalf("exit %v: %s", err, out)
	}
}

// sockmon alerts test --channel sends one signed test notification with
// serve's flags and environment.
func TestAlertsTestCommand(t *testing.T) {
	hooks := newSignedHooks(t)
	bin, err := buildSockmon()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "alerts", "test", "--channel", "webhook", "--alert-webhook-url", hooks.srv.URL)
	cmd.Env = append(os.Environ(), "SOCKMON_ALERT_WEBHOOK_SECRET="+e2eWebhookSecret)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "test notification sent on channel webhook") {
		t.Fatalf("%v: %s", err, out)
	}
	if got := hooks.statuses(); got != "sockmon_test:firing" {
		t.Fatalf("receiver got %q", got)
	}
	out, err := exec.Command(bin, "alerts", "test", "--channel", "slack").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), `"slack" is not configured`) {
		t.Fatalf("unconfigured channel: %v %s", err, out)
	}
}
