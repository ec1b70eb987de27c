package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// The whole binary with upstreams: rpc calls reach a real upstream; a
// failing upstream opens its breaker, which health shows (degraded, or
// unhealthy for a critical upstream); reset_circuit_breaker closes it and
// is in the command history; SIGHUP re-reads the upstreams file and a bad
// file keeps the previous upstreams.
func TestServeWithUpstreams(t *testing.T) {
	const adminSecret = "admin-secret-admin-secret-admin-secret"
	var failing atomic.Bool
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		_, _ = w.Write([]byte(`{"answer":42}`))
	}))
	t.Cleanup(up.Close)
	file := filepath.Join(t.TempDir(), "upstreams.yaml")
	writeFile := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeFile("upstreams:\n  db:\n    url: " + up.URL + "\n    critical: true\n    breaker:\n      consecutiveFailures: 2\n      openBase: 1m\n      openMax: 1m\n")
	cmd, wsAddr, ctlAddr := startServeEnv(t, []string{"SOCKMON_ADMIN_SECRET=" + adminSecret},
		"--drain-delay", "0", "--upstream", "ai="+up.URL+"/rpc", "--upstreams-file", file)
	var tok strings.Builder
	t.Setenv("SOCKMON_ADMIN_SECRET", adminSecret)
	if rc := tokenCommand([]string{"--admin", "--sub", "ops", "--ttl", "5m"}, &tok, io.Discard); rc != 0 {
		t.Fatalf("sockmon token exited %d", rc)
	}
	admin := func(body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+ctlAddr+"/api/admin/socket", bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok.String()))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	type health struct {
		Status  string
		Reasons []string
		Details struct {
			CircuitBreakers map[string]struct {
				Status   string
				Failures int
			}
		}
	}
	getHealth := func() (int, health) {
		t.Helper()
		resp, err := http.Get("http://" + ctlAddr + "/api/health/socket")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h health
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, h
	}
	wstest.WaitFor(t, "a healthy node", func() bool { code, h := getHealth(); return code == 200 && h.Status == "healthy" })

	c, _, err := websocket.DefaultDialer.Dial("ws://"+wsAddr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	call := func(service string) map[string]any {
		t.Helper()
		_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"rpc","id":1,"service":"`+service+`","data":{}}`))
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, p, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.Unmarshal(p, &m)
		return m
	}
	if m := call("ai"); m["type"] != "rpc_result" {
		t.Fatalf("rpc through sockmon serve: %v", m)
	}

	// The critical upstream fails twice: its breaker opens and the node is
	// unhealthy (503), its body shows the breaker and nothing sensitive.
	failing.Store(true)
	call("db")
	call("db")
	if m := call("db"); m["code"] != "unavailable" || m["retryAfterMs"] == nil {
		t.Fatalf("open breaker: %v", m)
	}
	code, h := getHealth()
	if code != 503 || h.Status != "unhealthy" || h.Details.CircuitBreakers["db"].Status != "open" ||
		h.Details.CircuitBreakers["ai"].Status != "closed" || !strings.Contains(strings.Join(h.Reasons, ","), "critical_upstream_unavailable") {
		t.Fatalf("health with an open critical breaker: %d %+v", code, h)
	}
	if _, body := getRaw(t, "http://"+ctlAddr+"/api/health/socket"); strings.Contains(body, up.URL) || strings.Contains(body, "127.0.0.1") {
		t.Fatalf("the public health body shows an upstream's address: %s", body)
	}
	_, metricsText := getRaw(t, "http://"+ctlAddr+"/metrics")
	for _, want := range []string{
		`sockmon_circuit_breaker_state{breaker="db",state="open"} 1`,
		`sockmon_circuit_breaker_state{breaker="db",state="closed"} 0`,
		`sockmon_circuit_breaker_state{breaker="ai",state="closed"} 1`,
		`sockmon_upstream_requests_total{upstream="db",result="breaker_open"} 1`,
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	if code, body := admin(`{"action":"reset_circuit_breaker","data":{"service":"nope"}}`); code != 404 || !strings.Contains(body, "ai, db") {
		t.Fatalf("reset of an unknown service: %d %s", code, body)
	}
	if code, body := admin(`{"action":"reset_circuit_breaker","data":{}}`); code != 422 {
		t.Fatalf("reset without a service: %d %s", code, body)
	}
	failing.Store(false)
	if code, body := admin(`{"action":"reset_circuit_breaker","data":{"service":"db"}}`); code != 200 || !strings.Contains(body, `"state":"closed"`) {
		t.Fatalf("reset: %d %s", code, body)
	}
	if code, h := getHealth(); code != 200 || h.Details.CircuitBreakers["db"].Status != "closed" {
		t.Fatalf("health after the reset: %d %+v", code, h)
	}
	if m := call("db"); m["type"] != "rpc_result" {
		t.Fatalf("rpc after the reset: %v", m)
	}
	if _, body := admin(`{"action":"get_command_history","data":{"limit":5}}`); !strings.Contains(body, `"action":"reset_circuit_breaker"`) {
		t.Fatalf("the reset is not in the command history: %s", body)
	}

	// SIGHUP: a new file is read; a bad one keeps the previous upstreams
	// and the process keeps serving.
	writeFile("upstreams:\n  search:\n    url: " + up.URL + "\n")
	_ = cmd.Process.Signal(syscall.SIGHUP)
	wstest.WaitFor(t, "the reloaded upstreams", func() bool {
		_, h := getHealth()
		_, ok := h.Details.CircuitBreakers["search"]
		return ok && len(h.Details.CircuitBreakers) == 2
	})
	writeFile("upstreams:\n  search:\n    url: [not a url\n")
	_ = cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(200 * time.Millisecond) // nothing to poll for: the state must not change
	if code, h := getHealth(); code != 200 || len(h.Details.CircuitBreakers) != 2 {
		t.Fatalf("after a bad file: %d %+v", code, h)
	}
	if m := call("search"); m["type"] != "rpc_result" {
		t.Fatalf("rpc after a bad reload: %v", m)
	}
}

func getRaw(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
