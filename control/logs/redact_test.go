package logs

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
)

const (
	testJWT    = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	testSecret = "the-admin-secret-0123456789abcdef-xyz"
)

func TestRedactString(t *testing.T) {
	r := newRedactor([]string{testSecret, "short"})
	for _, c := range []struct{ in, want string }{
		{"nothing here", "nothing here"},
		{"token " + testJWT + " refused", "token [REDACTED] refused"},
		{"Authorization: Bearer abc.def-123", "Authorization: [REDACTED]"},
		{"got bearer xyz, then", "got bearer [REDACTED], then"},
		{"GET /ws?token=abc123&x=1 HTTP/1.1", "GET /ws?token=[REDACTED]&x=1 HTTP/1.1"},
		{"/ws?access_token=zz", "/ws?access_token=[REDACTED]"},
		{`{"password": "hunter2"}`, `{"password": "[REDACTED]"}`},
		{"secret=s3cr3t; other", "secret=[REDACTED]; other"},
		{"Cookie: session=abc; theme=dark", "Cookie: [REDACTED]"},
		{"the secret is " + testSecret + "!", "the secret is [REDACTED]!"},
		{"short words stay short", "short words stay short"}, // secrets under 8 bytes are ignored
		{"authenticated: true", "authenticated: true"},
		// The review's gaps (issue 12, item 13).
		{"Authorization: Basic YWxpY2U6cGFzc3dvcmQ=", "Authorization: [REDACTED]"},
		{"sent basic YWxpY2U6cGFzc3dvcmQ= to it", "sent basic [REDACTED] to it"},
		{"dsn postgres://app:hunter2@db:5432/x", "dsn postgres://[REDACTED]@db:5432/x"},
		{"https://deploy-token@git.example.com/r.git", "https://[REDACTED]@git.example.com/r.git"},
		{"/login?user=a&password=hunter2&x=1", "/login?user=a&password=[REDACTED]&x=1"},
		{"/login?user=a&pass=hunter2", "/login?user=a&pass=[REDACTED]"},
		{"/login?pwd=hunter2", "/login?pwd=[REDACTED]"},
		{"s3?access_key=AKIA123&x=1", "s3?access_key=[REDACTED]&x=1"},
		{"session=abc123; path=/", "session=[REDACTED]; path=/"},
		{"dsn=mysql://u:p@h/db", "dsn=[REDACTED]"},
		{"authHeader: xyz", "authHeader: [REDACTED]"},
		{"https://example.com/a/b?q=1", "https://example.com/a/b?q=1"},
	} {
		if got := r.String(c.in); got != c.want {
			t.Errorf("String(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSensitiveKey(t *testing.T) {
	for k, want := range map[string]bool{
		"token": true, "Authorization": true, "x-api-key": true, "api_key": true, "cookie": true,
		"password": true, "clientSecret": true, "webhookUrl": true, "key": true, "auth": true,
		"access_key": true, "pass": true, "pwd": true, "session": true, "dsn": true, "authHeader": true,
		"sessionId": true, "AWS_SECRET_ACCESS_KEY": true, "db_password": true,
		"reason": false, "user": false, "authenticated": false, "socket": false, "address": false,
	} {
		if got := SensitiveKey(k); got != want {
			t.Errorf("SensitiveKey(%q) = %v, want %v", k, got, want)
		}
	}
}

type stringer struct{ s string }

func (s stringer) String() string { return s.s }

// Every kind of attribute, bound or not, grouped or not, is redacted; numbers
// and booleans are kept whatever their key.
func TestRedactHandler(t *testing.T) {
	var out lockedBuffer
	log := slog.New(newRedactHandler(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}), []string{testSecret}))
	log = log.With("authorization", "Bearer "+testJWT, "component", "test")
	log.WithGroup("req").Info("refused "+testJWT,
		"token", "plain-token-value",
		"url", "/ws?token="+testJWT,
		"auth", 3, // a count under a sensitive key stays
		"tokenValid", false,
		"err", errors.New("bad token "+testJWT),
		"data", json.RawMessage(`{"reason":"rotate","nested":{"password":"hunter2","list":["`+testJWT+`",1]},"apiKey":"k","count":2}`),
		"any", map[string]any{"secret": testSecret, "n": 1},
		"stringer", stringer{"secret=" + testSecret},
		"addr", netip.MustParseAddr("10.0.0.1"),
		slog.Group("headers", "Cookie", "a=b", "Host", "example"),
		"raw", []byte("not json Bearer abc"),
	)
	line := out.String()
	for _, leak := range []string{testJWT, testSecret, "plain-token-value", "hunter2", `"k"`, "a=b", "abc"} {
		if strings.Contains(line, leak) {
			t.Errorf("line leaks %q:\n%s", leak, line)
		}
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("not JSON: %s", line)
	}
	req := m["req"].(map[string]any)
	data := req["data"].(map[string]any)
	if req["auth"] != 3.0 || req["tokenValid"] != false || data["count"] != 2.0 || data["reason"] != "rotate" ||
		req["addr"] != "10.0.0.1" || m["component"] != "test" || req["headers"].(map[string]any)["Host"] != "example" {
		t.Errorf("redaction changed what it should keep:\n%s", line)
	}
	if m["authorization"] != Redacted || req["token"] != Redacted || data["apiKey"] != Redacted {
		t.Errorf("sensitive keys not redacted:\n%s", line)
	}
}
