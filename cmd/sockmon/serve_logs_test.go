package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/control"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// logLines decodes the JSON lines of a log file.
func logLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: not a JSON line: %q", path, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

func hs256(t *testing.T, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A real `sockmon serve` with --log-file and --error-log-file at debug
// level goes through an admin session (with secrets in its data and in a
// close reason), admin and client authentication failures and a flood of
// bad tokens; neither file holds any secret or token the test used. Both
// files are 0640, the error file holds warn and above only, the close lines
// and the connection_stats lines are there and count the refusals.
func TestServeLogFilesHoldNoSecret(t *testing.T) {
	const (
		adminSecret = "logs-test-admin-secret-0123456789abcdef"
		jwtSecret   = "logs-test-client-secret-0123456789abcdef"
		password    = "hunter2-in-a-close-reason"
		webhook     = "https://hooks.example.com/services/T0/B0/webhook-secret-value"
		cookie      = "session-cookie-secret-value"
		bearer      = "sk-live-bearer-secret-value"
	)
	dir := t.TempDir()
	combined, errLog := filepath.Join(dir, "logs", "combined.log"), filepath.Join(dir, "logs", "error.log")
	p := startServeProc(t, cleanEnv("SOCKMON_ADMIN_SECRET="+adminSecret, "SOCKMON_JWT_SECRET="+jwtSecret), filepath.Join(dir, "data"),
		"--log-file", combined, "--error-log-file", errLog, "--log-level", "debug", "--stats-log-interval", "100ms",
		"--conn-rate", "0", "--max-message-size", "1024", "--drain-delay", "0")
	secrets := []string{adminSecret, jwtSecret, password, webhook, cookie, bearer}
	now := time.Now()

	adminToken, err := control.AdminToken([]byte(adminSecret), "ops", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clientToken := hs256(t, jwtSecret, jwt.MapClaims{"sub": "user-7", "exp": now.Add(time.Hour).Unix()})
	expired := hs256(t, jwtSecret, jwt.MapClaims{"sub": "user-8", "exp": now.Add(-time.Hour).Unix()})
	forged := hs256(t, "not-the-secret-0123456789abcdef-0123456", jwt.MapClaims{"sub": "user-9", "exp": now.Add(time.Hour).Unix()})
	forgedAdmin := hs256(t, "not-the-admin-secret-0123456789abcdef", jwt.MapClaims{"sub": "mallory", "admin": true, "role": "ADMIN", "exp": now.Add(time.Hour).Unix()})
	secrets = append(secrets, adminToken, clientToken, expired, forged, forgedAdmin)

	admin := func(token, body string, headers ...string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+p.control+"/api/admin/socket", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// The admin session: maintenance with a bearer token pasted into its
	// reason, a broadcast quoting a client token, an alert rule carrying a
	// webhook secret (refused: unknown fields), a user disconnected with a
	// password in the reason.
	if code := admin(adminToken, `{"action":"set_maintenance_mode","data":{"enabled":true,"reason":"rotating Bearer `+bearer+`"}}`); code != 200 {
		t.Fatalf("set_maintenance_mode: %d", code)
	}
	if code := admin(adminToken, `{"action":"execute_command","data":{"command":"broadcast","message":"new token: `+clientToken+`"}}`); code != 200 {
		t.Fatalf("broadcast: %d", code)
	}
	if code := admin(adminToken, `{"action":"set_maintenance_mode","data":{"enabled":false}}`); code != 200 {
		t.Fatalf("set_maintenance_mode off: %d", code)
	}
	if code := admin(adminToken, `{"action":"configure_alert","data":{"name":"x","webhookSecret":"`+webhook+`","password":"`+password+`"}}`); code != 422 {
		t.Fatalf("configure_alert with secrets: %d, want 422", code)
	}
	user, _, err := websocket.DefaultDialer.Dial("ws://"+p.ws+"/ws?token="+clientToken, http.Header{"Cookie": {"session=" + cookie}})
	if err != nil {
		t.Fatal(err)
	}
	defer user.Close()
	// The 101 reaches the client just before the node counts the connection
	// open; an admin command finds only open connections.
	wstest.WaitFor(t, "the node to count user-7's connection open", func() bool {
		return metricValue(t, p.control, `sockmon_connections_accepted_total{auth="authenticated"}`) >= 1
	})
	if code := admin(adminToken, `{"action":"force_disconnect_user","data":{"userId":"user-7","reason":"password=`+password+`"}}`); code != 200 {
		t.Fatalf("force_disconnect_user: %d", code)
	}

	// Admin authentication failures: a forged admin token, a client token,
	// garbage, and a cookie instead of a token.
	for _, tok := range []string{forgedAdmin, clientToken, "garbage-admin-token-" + cookie} {
		if code := admin(tok, `{"action":"get_alert_configs"}`, "Cookie", "session="+cookie); code != 401 {
			t.Fatalf("admin with a bad token: %d, want 401", code)
		}
	}

	// Client authentication failures and a flood of bad tokens: each a 401.
	refused := 0
	dialRefused := func(url string, h http.Header) {
		t.Helper()
		c, resp, err := websocket.DefaultDialer.Dial(url, h)
		if err == nil {
			c.Close()
			t.Fatalf("upgrade with a bad token accepted: %s", url)
		}
		if resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("upgrade with a bad token: %v, want 401", err)
		}
		refused++
	}
	dialRefused("ws://"+p.ws+"/ws?token="+forged, nil)
	dialRefused("ws://"+p.ws+"/ws", http.Header{"Authorization": {"Bearer " + expired}, "Cookie": {"session=" + cookie}})
	for i := range 100 {
		bad := hs256(t, fmt.Sprintf("flood-secret-%03d-0123456789abcdef0123", i), jwt.MapClaims{"sub": "flood", "exp": now.Add(time.Hour).Unix()})
		secrets = append(secrets, bad)
		dialRefused("ws://"+p.ws+"/ws?token="+bad, nil)
		garbage := fmt.Sprintf("garbage-client-token-%03d-%s", i, cookie)
		secrets = append(secrets, garbage)
		dialRefused("ws://"+p.ws+"/ws", http.Header{"Authorization": {"Bearer " + garbage}})
	}

	// A client over --max-message-size (closed with 1009, an info line) and
	// one that leaves normally (a debug line).
	big, _, err := websocket.DefaultDialer.Dial("ws://"+p.ws+"/ws?token="+clientToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	_ = big.WriteMessage(websocket.BinaryMessage, make([]byte, 4096))
	_, _, _ = big.ReadMessage()
	plain, _, err := websocket.DefaultDialer.Dial("ws://"+p.ws+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = plain.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
	_, _, _ = plain.ReadMessage()
	plain.Close()

	// connection_stats lines add up to every refusal.
	wstest.WaitFor(t, "connection_stats to count every refused upgrade", func() bool {
		total := 0.0
		for _, l := range logLines(t, combined) {
			if l["msg"] == "connection_stats" {
				if r, ok := l["rejected"].(map[string]any); ok {
					n, _ := r["auth"].(float64)
					total += n
				}
			}
		}
		return total == float64(refused)
	})
	wstest.WaitFor(t, "the close lines", func() bool {
		codes := map[float64]string{}
		for _, l := range logLines(t, combined) {
			if l["msg"] == "connection closed" {
				codes[l["code"].(float64)] = l["level"].(string)
			}
		}
		return codes[4000] == "INFO" && codes[1009] == "INFO" && codes[1000] == "DEBUG"
	})

	comb, errs := logLines(t, combined), logLines(t, errLog)
	for _, l := range errs {
		if lv := l["level"]; lv != "WARN" && lv != "ERROR" {
			t.Errorf("error.log holds a %s line: %v", lv, l)
		}
	}
	has := func(lines []map[string]any, msg string) bool {
		for _, l := range lines {
			if l["msg"] == msg {
				return true
			}
		}
		return false
	}
	if !has(errs, "admin authentication refused") || !has(errs, "admin audit") || has(errs, "connection_stats") {
		t.Error("error.log should hold the refused admin requests and no connection_stats")
	}
	if !has(comb, "admin audit") || !has(comb, "maintenance mode on") || !has(comb, "sockmon serving") {
		t.Error("combined.log lacks the admin session")
	}
	for _, path := range []string{combined, errLog} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v %v, want 0640", path, fi.Mode(), err)
		}
		b, _ := os.ReadFile(path)
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %.40q...", filepath.Base(path), s)
			}
		}
	}
	if !strings.Contains(string(mustRead(t, combined)), "[REDACTED]") {
		t.Error("nothing was redacted: the test no longer exercises redaction")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// SIGHUP does not end the process: it rotates the log files (the old one
// moved aside, a new one opened, 0640) and says so in the new file; a
// second SIGHUP after logrotate moved the file reopens the path.
func TestServeSIGHUPReopensLogs(t *testing.T) {
	dir := t.TempDir()
	combined := filepath.Join(dir, "logs", "combined.log")
	p := startServeProc(t, cleanEnv(), filepath.Join(dir, "data"), "--log-file", combined)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wstest.WaitFor(t, "the reload line in the new file", func() bool {
		b, _ := os.ReadFile(combined)
		return bytes.Contains(b, []byte(`"msg":"SIGHUP handled"`))
	})
	backups, _ := filepath.Glob(filepath.Join(dir, "logs", "combined-*.log"))
	if len(backups) != 1 || !bytes.Contains(mustRead(t, backups[0]), []byte(`"msg":"sockmon serving"`)) {
		t.Fatalf("rotated file: %v", backups)
	}

	// logrotate's way: move the file, then SIGHUP.
	if err := os.Rename(combined, combined+".1"); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wstest.WaitFor(t, "the path reopened", func() bool {
		b, err := os.ReadFile(combined)
		return err == nil && bytes.Contains(b, []byte(`"msg":"SIGHUP handled"`))
	})
	if fi, err := os.Stat(combined); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("reopened file: %v %v", fi, err)
	}
	select {
	case <-p.done:
		t.Fatalf("sockmon serve exited on SIGHUP: %v", p.cmd.ProcessState)
	default:
	}
	resp, err := http.Get("http://" + p.control + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz after SIGHUP: %d", resp.StatusCode)
	}
}
