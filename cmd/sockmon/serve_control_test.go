package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The whole binary: sockmon serve starts the control side next to the
// WebSocket listener; a token minted by `sockmon token` drives the admin
// API, and maintenance mode reaches the WebSocket side.
func TestServeWithControl(t *testing.T) {
	const adminSecret = "admin-secret-admin-secret-admin-secret"
	_, wsAddr, ctlAddr := startServeEnv(t, []string{"SOCKMON_ADMIN_SECRET=" + adminSecret}, "--drain-delay", "0")
	get := func(path string) (int, string, http.Header) {
		t.Helper()
		resp, err := http.Get("http://" + ctlAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	// The address is logged as the listeners open; readiness follows once
	// the engine serves.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _, _ := get("/readyz")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz: %d after 10s", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, body, _ := get("/api/health/socket"); code != 200 || !strings.Contains(body, `"status":"healthy"`) {
		t.Fatalf("health: %d %s", code, body)
	}
	c, _, err := websocket.DefaultDialer.Dial("ws://"+wsAddr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`))
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	code, body, hdr := get("/metrics")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain; version=0.0.4") ||
		!strings.Contains(body, `sockmon_message_duration_seconds_count{kind="ping"} 1`) {
		t.Fatalf("/metrics: %d %q, ping not counted", code, hdr.Get("Content-Type"))
	}

	var tok strings.Builder
	t.Setenv("SOCKMON_ADMIN_SECRET", adminSecret)
	if rc := tokenCommand([]string{"--admin", "--sub", "ops", "--ttl", "5m"}, &tok, io.Discard); rc != 0 {
		t.Fatalf("sockmon token exited %d", rc)
	}
	req, _ := http.NewRequest("POST", "http://"+ctlAddr+"/api/admin/socket",
		bytes.NewReader([]byte(`{"action":"set_maintenance_mode","data":{"enabled":true,"reason":"upgrade"}}`)))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok.String()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var reply struct{ Success bool }
	_ = json.NewDecoder(resp.Body).Decode(&reply)
	resp.Body.Close()
	if resp.StatusCode != 200 || !reply.Success {
		t.Fatalf("set_maintenance_mode: %d %+v", resp.StatusCode, reply)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := c.ReadMessage(); err != nil || !strings.Contains(string(msg), `"event":"maintenance"`) {
		t.Fatalf("system message: %s %v", msg, err)
	}
	if code, _, _ := get("/api/health/socket"); code != 503 {
		t.Fatalf("health in maintenance: %d, want 503", code)
	}
	if _, resp, err := websocket.DefaultDialer.Dial("ws://"+wsAddr+"/ws", nil); err == nil || resp.StatusCode != 503 {
		t.Fatalf("upgrade in maintenance: %v", err)
	}
}
