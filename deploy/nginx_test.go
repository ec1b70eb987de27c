package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// nginx reads deploy/nginx/sockmon.conf inside the http block of a wrapper
// nginx.conf in a temporary prefix (pid file, logs and temporary files
// there), as Debian's nginx.conf includes conf.d/*.conf.
func nginxWrapper(t *testing.T, include string) (prefix, conf string) {
	t.Helper()
	prefix = t.TempDir()
	// nginx started as root runs its workers as nobody: they must reach
	// the temporary directories.
	if err := os.Chmod(prefix, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(prefix, "tmp")
	if err := os.Mkdir(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	conf = filepath.Join(prefix, "nginx.conf")
	writeFile(t, conf, fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 256; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[3]s;
}
`, prefix, tmp, include))
	return prefix, conf
}

// nginx -t accepts deploy/nginx/sockmon.conf as shipped.
func TestNginxConfigTest(t *testing.T) {
	nginx := requireTool(t, "nginx", "nginx")
	shipped, err := filepath.Abs("nginx/sockmon.conf")
	if err != nil {
		t.Fatal(err)
	}
	prefix, conf := nginxWrapper(t, shipped)
	out := run(t, nginx, "-t", "-p", prefix, "-c", conf, "-e", filepath.Join(prefix, "error.log"))
	if !strings.Contains(out, "test is successful") {
		t.Fatalf("nginx -t:\n%s", out)
	}

	// nginx proxies a WebSocket only with HTTP/1.1 and the hop-by-hop
	// Upgrade and Connection headers passed on explicitly; the map sends
	// "Connection: close" to requests without Upgrade.
	src := readFile(t, "nginx/sockmon.conf")
	for _, s := range []string{
		"map $http_upgrade $connection_upgrade {\n    default upgrade;\n    ''      close;\n}",
		"proxy_http_version 1.1;",
		"proxy_set_header Upgrade $http_upgrade;",
		"proxy_set_header Connection $connection_upgrade;",
		"proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
	} {
		if !strings.Contains(src, s) {
			t.Errorf("nginx/sockmon.conf lacks %q", s)
		}
	}
	// nginx must not time out an idle WebSocket between two server pings.
	m := regexp.MustCompile(`(?m)^\s*proxy_read_timeout (\d+)s;`).FindStringSubmatch(src)
	if m == nil {
		t.Fatal("nginx/sockmon.conf sets no proxy_read_timeout in seconds")
	}
	readTimeout, _ := time.ParseDuration(m[1] + "s")
	if ping := serveDuration(t, "ping-interval"); readTimeout <= ping {
		t.Errorf("proxy_read_timeout %s is not above sockmon's --ping-interval %s", readTimeout, ping)
	}
}

// startNginx runs nginx with sockmon.conf after a small substitution: the
// listen port 80 becomes a free loopback port, and the upstream servers
// 127.0.0.1:8080 (WebSocket) and 127.0.0.1:8081 (control) become the test's
// sockmon nodes (ws lists one or more WebSocket addresses). It returns
// nginx's address.
func startNginx(t *testing.T, ws []string, control string) string {
	t.Helper()
	nginx := requireTool(t, "nginx", "nginx")
	addr := freeAddr(t)
	var servers []string
	for _, a := range ws {
		servers = append(servers, "server "+a+" ")
	}
	conf := substitute(t, "nginx/sockmon.conf", readFile(t, "nginx/sockmon.conf"),
		"listen 80;", "listen "+addr+";",
		"server 127.0.0.1:8080 ", strings.Join(servers, "max_fails=1 fail_timeout=10s;\n    "),
		"server 127.0.0.1:8081;", "server "+control+";",
	)
	dir := t.TempDir()
	include := filepath.Join(dir, "sockmon.conf")
	writeFile(t, include, conf)
	prefix, wrapper := nginxWrapper(t, include)
	run(t, nginx, "-t", "-p", prefix, "-c", wrapper, "-e", filepath.Join(prefix, "error.log"))
	startDaemon(t, exec.Command(nginx, "-p", prefix, "-c", wrapper, "-e", filepath.Join(prefix, "error.log")), syscall.SIGTERM)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(prefix, "error.log"))
			t.Logf("nginx error.log:\n%s", b)
		}
	})
	waitFor(t, "nginx to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return addr
}

// from returns an HTTP client and a WebSocket dialer whose connections
// leave from the loopback address src (127.0.0.2 is not 127.0.0.1 to nginx's
// allow rules, and is a distinct client IP to sockmon).
func from(src string) (*http.Client, *websocket.Dialer) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	wd := &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}, HandshakeTimeout: 10 * time.Second}
	return hc, wd
}

func get(t *testing.T, hc *http.Client, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// echo sends sockmon's echo envelope and checks the reply.
func echo(t *testing.T, c *websocket.Conn, id int) {
	t.Helper()
	msg := fmt.Sprintf(`{"type":"echo","id":%d,"data":"x"}`, id)
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, b, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var got, want map[string]any
	_ = json.Unmarshal([]byte(msg), &want)
	if typ != websocket.TextMessage || json.Unmarshal(b, &got) != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("echo through nginx: got %q, want %s", b, msg)
	}
}

// A real nginx with sockmon.conf in front of a real `sockmon serve`: a
// WebSocket session echoes through it; sockmon sees each client's own IP
// through X-Forwarded-For (its per-IP connection rate limit tells them
// apart); health answers through nginx; /metrics, the admin API and the
// detailed health answer only clients on 127.0.0.1.
func TestNginxProxiesWebSocketToSockmon(t *testing.T) {
	requireTool(t, "nginx", "nginx")
	// One new connection per second per client IP, and nginx (127.0.0.1)
	// is a trusted proxy.
	n := startSockmon(t, nil, "--trusted-proxies", "127.0.0.1/32", "--conn-rate", "1", "--conn-burst", "1")
	lb := startNginx(t, []string{n.ws}, n.control)
	wsURL := "ws://" + lb + "/ws"

	local, _ := from("127.0.0.1")
	remote, _ := from("127.0.0.2")

	// Two clients from 127.0.0.3: the second within the second is refused
	// with 429, because sockmon counts them by their own IP, not nginx's.
	// Then a client from 127.0.0.4 is still welcome.
	var sessions []*websocket.Conn
	for attempt, ip := range []string{"127.0.0.3", "127.0.0.5", "127.0.0.6"} {
		_, wd := from(ip)
		start := time.Now()
		c, _, err := wd.Dial(wsURL, nil)
		if err != nil {
			t.Fatalf("WebSocket through nginx from %s: %v", ip, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		sessions = append(sessions, c)
		c2, resp, err := wd.Dial(wsURL, nil)
		if err == nil {
			c2.Close()
			if time.Since(start) > 800*time.Millisecond && attempt < 2 {
				continue // too slow a machine for a 1/s limit: another IP
			}
			t.Fatalf("a second connection from %s within %s was accepted: sockmon does not see the client IP", ip, time.Since(start))
		}
		if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("second connection from %s: %v (response %v), want 429", ip, err, resp)
		}
		break
	}
	_, wd4 := from("127.0.0.4")
	c4, _, err := wd4.Dial(wsURL, nil)
	if err != nil {
		t.Fatalf("a client from another IP was refused: %v", err)
	}
	t.Cleanup(func() { _ = c4.Close() })
	sessions = append(sessions, c4)
	for i, c := range sessions {
		echo(t, c, i+1)
		echo(t, c, 100+i)
	}

	// Health through nginx, for everyone.
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		code, body := get(t, remote, m, "http://"+lb+"/api/health/socket")
		if code != http.StatusOK || m == http.MethodGet && !strings.Contains(body, `"status":"healthy"`) {
			t.Errorf("%s /api/health/socket through nginx: %d %s", m, code, body)
		}
	}
	// Internal-only locations: 403 from nginx for 127.0.0.2; sockmon's own
	// answer for 127.0.0.1.
	for _, c := range []struct {
		method, path string
		local        func(code int, body string) bool
	}{
		{http.MethodGet, "/metrics", func(code int, body string) bool {
			return code == http.StatusOK && strings.Contains(body, "# TYPE sockmon_connections gauge")
		}},
		// No admin secret is set: sockmon answers 503 with its JSON error.
		{http.MethodGet, "/api/admin/socket", func(code int, body string) bool {
			return code == http.StatusServiceUnavailable && strings.Contains(body, `"success":false`)
		}},
		{http.MethodPost, "/api/health/socket", func(code int, body string) bool {
			return code == http.StatusServiceUnavailable && strings.Contains(body, `"success":false`)
		}},
	} {
		if code, _ := get(t, remote, c.method, "http://"+lb+c.path); code != http.StatusForbidden {
			t.Errorf("%s %s from 127.0.0.2 through nginx: %d, want 403", c.method, c.path, code)
		}
		if code, body := get(t, local, c.method, "http://"+lb+c.path); !c.local(code, body) {
			t.Errorf("%s %s from 127.0.0.1 through nginx: %d %.200s", c.method, c.path, code, body)
		}
	}
	if code, _ := get(t, remote, http.MethodGet, "http://"+lb+"/"); code != http.StatusNotFound {
		t.Errorf("GET / through nginx: %d, want 404", code)
	}
}

// healthTotal is the number of connections a node reports.
func healthTotal(t *testing.T, control string) int {
	t.Helper()
	resp, err := http.Get("http://" + control + "/api/health/socket")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Details struct {
			Connections struct {
				Total int `json:"total"`
			} `json:"connections"`
		} `json:"details"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h.Details.Connections.Total
}

// With two nodes, a node that refuses upgrades with 503 (here: full at
// --max-conns 1) does not cost clients anything: nginx retries the upgrade
// on the other node (proxy_next_upstream http_503).
func TestNginxRetriesAnUpgradeRefusedWith503(t *testing.T) {
	requireTool(t, "nginx", "nginx")
	full := startSockmon(t, nil, "--max-conns", "1")
	other := startSockmon(t, nil)
	lb := startNginx(t, []string{full.ws, other.ws}, other.control)
	const clients = 6
	for i := range clients {
		c, resp, err := websocket.DefaultDialer.Dial("ws://"+lb+"/ws", nil)
		if err != nil {
			t.Fatalf("client %d: %v (response %v)", i, err, resp)
		}
		t.Cleanup(func() { _ = c.Close() })
		echo(t, c, i)
	}
	if a, b := healthTotal(t, full.control), healthTotal(t, other.control); a != 1 || a+b != clients {
		t.Fatalf("connections: %d on the node with --max-conns 1, %d on the other; want 1 and %d", a, b, clients-1)
	}
}
