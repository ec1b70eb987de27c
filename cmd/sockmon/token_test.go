package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudwego/netpoll"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/control"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/protocol"
	"github.com/sockmon/sockmon/netcore/wstest"
)

const (
	tokenTestAdminSecret  = "token-test-admin-secret-0123456789abcdef"
	tokenTestClientSecret = "token-test-client-secret-0123456789abcdef"
)

func tokenEnv(k string) string {
	return map[string]string{"SOCKMON_ADMIN_SECRET": tokenTestAdminSecret, "SOCKMON_JWT_SECRET": tokenTestClientSecret}[k]
}

func mint(t *testing.T, getenv func(string) string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := mintToken(args, &out, &errb, getenv)
	return strings.TrimSpace(out.String()), errb.String(), code
}

// The tokens `sockmon token` mints are accepted where they belong: a client
// token by the WebSocket engine (authenticated as --sub), an admin token by
// the control server's admin API; neither is accepted by the other.
func TestTokenCommandMintsWorkingTokens(t *testing.T) {
	eng, err := netcore.New(netcore.Config{DrainDelay: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	proto, err := protocol.New(eng, protocol.Config{JWTSecret: []byte(tokenTestClientSecret)})
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := control.New(control.Config{DataDir: t.TempDir(), Engine: eng, Protocol: proto, AdminSecret: []byte(tokenTestAdminSecret),
		ClientSecret: []byte(tokenTestClientSecret), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	wln, err := netpoll.CreateListener("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = eng.Serve(wln) }()
	go func() { _ = ctl.Serve(cln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = ctl.Shutdown(ctx)
		_ = eng.Shutdown(ctx)
	})

	clientTok, stderr, code := mint(t, tokenEnv, "--sub", "zoe", "--ttl", "10m")
	if code != 0 || stderr != "" {
		t.Fatalf("client token: exit %d: %s", code, stderr)
	}
	adminTok, stderr, code := mint(t, tokenEnv, "--admin", "--sub", "ops-oncall")
	if code != 0 || stderr != "" {
		t.Fatalf("admin token: exit %d: %s", code, stderr)
	}

	c, _, err := websocket.DefaultDialer.Dial("ws://"+wln.Addr().String()+"/ws?token="+clientTok, nil)
	if err != nil {
		t.Fatalf("client token refused by the engine: %v", err)
	}
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		page, _ := eng.Connections(netcore.ConnQuery{UserID: "zoe"})
		if page.Total == 1 && page.Items[0].Authenticated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the client is not authenticated as zoe")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, resp, err := websocket.DefaultDialer.Dial("ws://"+wln.Addr().String()+"/ws?token="+adminTok, nil); err == nil || resp.StatusCode != 401 {
		t.Fatalf("the engine accepted an admin token as a client token")
	}

	admin := func(tok string) int {
		req, _ := http.NewRequest("GET", "http://"+cln.Addr().String()+control.PathAdmin, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := admin(adminTok); s != 200 {
		t.Fatalf("admin token refused by the admin API: %d", s)
	}
	if s := admin(clientTok); s != 401 {
		t.Fatalf("client token on the admin API: %d, want 401", s)
	}
	viewerTok, stderr, code := mint(t, tokenEnv, "--admin", "--role", "VIEWER", "--sub", "auditor")
	if code != 0 || stderr != "" {
		t.Fatalf("viewer token: exit %d: %s", code, stderr)
	}
	if s := admin(viewerTok); s != 200 {
		t.Fatalf("viewer token on the admin GET: %d, want 200", s)
	}

	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(clientTok, claims, func(*jwt.Token) (any, error) { return []byte(tokenTestClientSecret), nil }); err != nil {
		t.Fatal(err)
	}
	exp, _ := claims.GetExpirationTime()
	if d := time.Until(exp.Time); d < 9*time.Minute || d > 11*time.Minute {
		t.Fatalf("--ttl 10m: exp in %s", d)
	}
	if _, ok := claims["admin"]; ok {
		t.Fatal("a client token carries an admin claim")
	}
}

func TestTokenCommandErrors(t *testing.T) {
	none := func(string) string { return "" }
	short := func(k string) string {
		if k == "SOCKMON_ADMIN_SECRET" {
			return "short"
		}
		return ""
	}
	same := func(string) string { return tokenTestAdminSecret }
	for _, tc := range []struct {
		name   string
		getenv func(string) string
		args   []string
		want   string
	}{
		{"no sub", tokenEnv, nil, "--sub is required"},
		{"zero ttl", tokenEnv, []string{"--sub", "a", "--ttl", "0s"}, "not positive"},
		{"no client secret", none, []string{"--sub", "a"}, "SOCKMON_JWT_SECRET is not set"},
		{"no admin secret", none, []string{"--admin", "--sub", "a"}, "SOCKMON_ADMIN_SECRET is not set"},
		{"short admin secret", short, []string{"--admin", "--sub", "a"}, "refuses admin secrets under"},
		{"admin secret = client secret", same, []string{"--admin", "--sub", "a"}, "equals SOCKMON_JWT_SECRET"},
		{"positional argument", tokenEnv, []string{"--sub", "a", "extra"}, "unexpected argument"},
		{"unknown flag", tokenEnv, []string{"--rolle", "x"}, "flag provided but not defined"},
		{"unknown role", tokenEnv, []string{"--admin", "--sub", "a", "--role", "USER"}, `--role "USER": want ADMIN or VIEWER`},
		{"role without admin", tokenEnv, []string{"--sub", "a", "--role", "VIEWER"}, "add --admin"},
	} {
		out, stderr, code := mint(t, tc.getenv, tc.args...)
		if code != 2 || out != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.name, code, out, stderr, tc.want)
		}
	}
	if stdout, stderr, code := mint(t, tokenEnv, "--help"); code != 0 || !strings.Contains(stdout, "Usage: sockmon token") || !strings.Contains(stdout, "\n  --sub string\n") || stderr != "" {
		t.Errorf("--help: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// A real sockmon serve with --jwt-audience, --jwt-issuer and --jwt-max-ttl
// checks client and admin tokens alike; `sockmon token --aud --iss` mints
// tokens it accepts; a client token whose sub is "server" or "anon:..." is
// refused; the settings are in the start-up log.
func TestServeChecksTokenClaims(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "sockmon.log")
	env := []string{"SOCKMON_ADMIN_SECRET=" + tokenTestAdminSecret, "SOCKMON_JWT_SECRET=" + tokenTestClientSecret}
	_, wsAddr, ctlAddr := startServeEnv(t, env, "--jwt-audience", "sockmon-prod", "--jwt-issuer", "https://auth.example",
		"--jwt-max-ttl", "1h", "--log-file", logFile)
	dial := func(tok string) int {
		c, resp, err := websocket.DefaultDialer.Dial("ws://"+wsAddr+"/ws?token="+tok, nil)
		if err == nil {
			c.Close()
			return 101
		}
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return resp.StatusCode
	}
	admin := func(tok string) int {
		req, _ := http.NewRequest("GET", "http://"+ctlAddr+control.PathAdmin, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	mintOK := func(args ...string) string {
		t.Helper()
		tok, stderr, code := mint(t, tokenEnv, args...)
		if code != 0 {
			t.Fatalf("sockmon token %v: exit %d: %s", args, code, stderr)
		}
		return tok
	}
	claims := []string{"--aud", "sockmon-prod", "--iss", "https://auth.example"}
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"aud, iss, 30m", append([]string{"--ttl", "30m"}, claims...), 200},
		{"no aud nor iss", []string{"--ttl", "30m"}, 401},
		{"wrong aud", []string{"--ttl", "30m", "--aud", "sockmon-staging", "--iss", "https://auth.example"}, 401},
		{"2h, over --jwt-max-ttl", append([]string{"--ttl", "2h"}, claims...), 401},
	} {
		clientWant := tc.want
		if clientWant == 200 {
			clientWant = 101
		}
		if got := dial(mintOK(append([]string{"--sub", "zoe"}, tc.args...)...)); got != clientWant {
			t.Errorf("client token, %s: status %d, want %d", tc.name, got, clientWant)
		}
		if got := admin(mintOK(append([]string{"--admin", "--sub", "ops"}, tc.args...)...)); got != tc.want {
			t.Errorf("admin token, %s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	// The subs the server speaks as: refused by the server, and not minted.
	for _, sub := range []string{"server", "anon:1"} {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "aud": "sockmon-prod", "iss": "https://auth.example",
			"exp": time.Now().Add(time.Minute).Unix()}).SignedString([]byte(tokenTestClientSecret))
		if err != nil {
			t.Fatal(err)
		}
		if got := dial(tok); got != 401 {
			t.Errorf("client token with sub %q: status %d, want 401", sub, got)
		}
		if _, stderr, code := mint(t, tokenEnv, "--sub", sub); code != 2 || !strings.Contains(stderr, "reserved") {
			t.Errorf("sockmon token --sub %s: exit %d %q, want 2 and reserved", sub, code, stderr)
		}
	}
	wstest.WaitFor(t, "the security settings in the start-up log", func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), `"msg":"control security settings"`) && strings.Contains(string(b), `"audience":"sockmon-prod"`) &&
			strings.Contains(string(b), `"preAuthMaxBodyBytes":8192`)
	})
}
