package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sockmon/sockmon/netcore/wstest"
)

// With 120 open files (ulimit -n 120), 150 idle TCP connections to the
// client port used to exhaust the descriptors within the handshake
// timeout: fasthttp's accept loop took EMFILE as permanent, serve exited
// 1 and every client dropped. Now the oldest idle handshakes are shed near
// the limit, the control side waits out EMFILE, and a health check and a
// new WebSocket client both get in while the idle connections stay open.
func TestIdleConnectionsCannotExhaustDescriptors(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to lower the open-file limit with")
	}
	bin, err := buildSockmon()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	p := &serveProc{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command("sh", "-c", `ulimit -n 120 && exec "$0" "$@"`, bin, "serve", "--addr", "127.0.0.1:0",
		"--control-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--handshake-timeout", "30s", "--drain-delay", "0")
	p.cmd.Env = cleanEnv()
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("sockmon serve stderr:\n%s", p.stderr.String())
		}
	})
	wstest.WaitFor(t, "sockmon serve to log its addresses", func() bool {
		for _, line := range strings.Split(p.stderr.String(), "\n") {
			var rec struct {
				Msg, Addr   string
				ControlAddr string `json:"control_addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "sockmon serving" {
				p.ws, p.control = rec.Addr, rec.ControlAddr
			}
		}
		return p.ws != ""
	})
	if !strings.Contains(p.stderr.String(), "open-file limit is below") {
		t.Error("no warning at start about the open-file limit")
	}

	// 150 idle connections over several source addresses (the per-address
	// cap would stop one address at 50).
	var idle []net.Conn
	for i := 0; i < 150; i++ {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%8))}, Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", p.ws)
		if err != nil {
			continue // the backlog may be full while the server sheds
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()

	client := http.Client{Timeout: 2 * time.Second}
	wstest.WaitFor(t, "a health check to be answered", func() bool {
		resp, err := client.Get("http://" + p.control + "/api/health/socket")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	wstest.WaitFor(t, "a WebSocket client to get in", func() bool {
		c, err := net.DialTimeout("tcp", p.ws, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
		buf := make([]byte, 12)
		n, _ := c.Read(buf)
		return err == nil && string(buf[:n]) == "HTTP/1.1 101"
	})
	select {
	case <-p.done:
		t.Fatalf("sockmon serve exited: %v", p.cmd.ProcessState)
	default:
	}
}
