package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// Behind a real HAProxy in TCP mode with send-proxy-v2, sockmon sees each
// client's own address: a client flooding from 127.0.0.2 is banned, a
// client on 127.0.0.3 still connects, and get_connections lists .2 and .3
// with HAProxy as their peer. Without the PROXY header every client would
// have HAProxy's address, and the ban would hit them all.
func TestBehindHAProxyWithProxyProtocol(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("haproxy is not installed (CI=true): run make test-deps")
		}
		t.Skip("haproxy is not installed; make test-deps installs it")
	}
	const adminSecret = "admin-secret-admin-secret-admin-secret"
	_, wsAddr, ctlAddr := startServeEnv(t, []string{"SOCKMON_ADMIN_SECRET=" + adminSecret}, "--drain-delay", "0",
		"--proxy-protocol", "on", "--trusted-proxies", "127.0.0.1", "--message-rate", "5", "--message-burst", "5", "--ban-after", "3")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	conf := "global\n  maxconn 1000\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n" +
		"frontend ws\n  bind " + front + "\n  default_backend sockmon\n" +
		"backend sockmon\n  server node1 " + wsAddr + " send-proxy-v2\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	hp := exec.Command(haproxy, "-f", cfg, "-db")
	var hpOut bytes.Buffer
	hp.Stdout, hp.Stderr = &hpOut, &hpOut
	if err := hp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hp.Process.Kill(); _ = hp.Wait() })
	wstest.WaitFor(t, "haproxy to listen", func() bool {
		c, err := net.Dial("tcp", front)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	dialFrom := func(src string) (*websocket.Conn, int) {
		t.Helper()
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, NetDial: func(network, addr string) (net.Conn, error) {
			return (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).Dial(network, addr)
		}}
		c, resp, err := d.Dial("ws://"+front+"/ws", nil)
		if err != nil {
			if resp == nil {
				t.Fatalf("dial from %s: %v (haproxy: %s)", src, err, hpOut.String())
			}
			return nil, resp.StatusCode
		}
		t.Cleanup(func() { c.Close() })
		return c, 101
	}
	idle2, _ := dialFrom("127.0.0.2")
	_ = idle2
	dialFrom("127.0.0.3")
	flooder, _ := dialFrom("127.0.0.2")
	for i := 0; i < 20; i++ {
		_ = flooder.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`))
	}
	_ = flooder.SetReadDeadline(time.Now().Add(5 * time.Second))
	var closeErr *websocket.CloseError
	for {
		if _, _, err := flooder.ReadMessage(); err != nil {
			if ce, ok := err.(*websocket.CloseError); ok {
				closeErr = ce
			}
			break
		}
	}
	if closeErr == nil || closeErr.Code != 1008 || !strings.Contains(closeErr.Text, "banned") {
		t.Fatalf("the flooding client: %v, want close 1008 banned", closeErr)
	}
	if _, status := dialFrom("127.0.0.2"); status != http.StatusTooManyRequests {
		t.Fatalf("127.0.0.2 again: %d, want 429", status)
	}
	if _, status := dialFrom("127.0.0.3"); status != 101 {
		t.Fatalf("127.0.0.3: %d, want 101: the ban hit another client of the same balancer", status)
	}

	var tok strings.Builder
	t.Setenv("SOCKMON_ADMIN_SECRET", adminSecret)
	if rc := tokenCommand([]string{"--admin", "--sub", "ops", "--ttl", "5m"}, &tok, io.Discard); rc != 0 {
		t.Fatalf("sockmon token exited %d", rc)
	}
	req, _ := http.NewRequest("POST", "http://"+ctlAddr+"/api/admin/socket", strings.NewReader(`{"action":"get_connections","data":{}}`))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok.String()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Data struct {
			Connections []struct{ RemoteAddress, PeerAddress string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range page.Data.Connections {
		seen[c.RemoteAddress] = true
		if !strings.HasPrefix(c.PeerAddress, "127.0.0.1:") {
			t.Errorf("peer %q, want HAProxy's 127.0.0.1", c.PeerAddress)
		}
	}
	if !seen["127.0.0.2"] || !seen["127.0.0.3"] || seen["127.0.0.1"] {
		t.Fatalf("client addresses %v, want 127.0.0.2 and 127.0.0.3, never HAProxy's", seen)
	}
}
