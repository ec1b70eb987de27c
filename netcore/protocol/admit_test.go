package protocol

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// The echo path is a route like /ws: the same admission (token, origin,
// bans, the per-IP connection rate; maintenance from the engine) and the
// same message rate. Before the engine/protocol split it skipped all of
// them.
func TestEchoPathIsAdmittedLikeTheProtocolPath(t *testing.T) {
	srv, addr := testServer(t, Config{
		EchoPath: "/echo", JWTSecret: testSecret, RequireAuth: true,
		AllowedOrigins: []string{"https://app.example.com"},
		MessageRate:    1, MessageBurst: 3, BanAfter: 2, BanDuration: time.Minute,
	})
	echo := "ws://" + addr + "/echo"
	tok := token(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "eve", "exp": time.Now().Add(time.Hour).Unix()})

	if status, _ := dialStatus(t, echo, nil); status != http.StatusUnauthorized {
		t.Fatalf("echo without a token: %d, want 401", status)
	}
	if status, _ := dialStatus(t, echo+"?token="+tok, http.Header{"Origin": {"https://evil.example"}}); status != http.StatusForbidden {
		t.Fatalf("echo from a foreign origin: %d, want 403", status)
	}

	// Verbatim echo within the rate; then rate_limited; then closed with
	// 1008 and the user banned, on every path.
	c := dialWS(t, echo+"?token="+tok, nil)
	for i := 0; i < 3; i++ {
		if err := c.c.WriteMessage(websocket.BinaryMessage, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if _, p, err := c.c.ReadMessage(); err != nil || len(p) != 1 || p[0] != byte(i) {
			t.Fatalf("echo %d: %v %v", i, p, err)
		}
	}
	for i := 0; i < 3; i++ {
		c.Send(`{"type":"ping"}`)
	}
	for i := 0; i < 3; i++ {
		if m := c.recv(); m["code"] != CodeRateLimited {
			t.Fatalf("over the rate on the echo path: %v, want rate_limited", m)
		}
	}
	if ce := c.ExpectClose(); ce.Code != 1008 || !strings.Contains(ce.Text, "banned") {
		t.Fatalf("close %d %q, want 1008 banned", ce.Code, ce.Text)
	}
	for _, path := range []string{"/echo", "/ws"} {
		if status, hdr := dialStatus(t, "ws://"+addr+path+"?token="+tok, nil); status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
			t.Fatalf("banned user on %s: %d Retry-After %q, want 429", path, status, hdr.Get("Retry-After"))
		}
	}

	srv.SetMaintenance(true, "upgrade", false)
	other := token(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Hour).Unix()})
	if status, _ := dialStatus(t, echo+"?token="+other, nil); status != http.StatusServiceUnavailable {
		t.Fatalf("echo in maintenance: %d, want 503", status)
	}
}

// The per-IP connection rate counts the echo path too.
func TestEchoPathSharesTheConnectionRate(t *testing.T) {
	_, addr := testServer(t, Config{EchoPath: "/echo", ConnRate: 1, ConnBurst: 2})
	dialWS(t, "ws://"+addr+"/echo", nil)
	dialWS(t, "ws://"+addr+"/ws", nil)
	if status, _ := dialStatus(t, "ws://"+addr+"/echo", nil); status != http.StatusTooManyRequests {
		t.Fatalf("third connection from one IP: %d, want 429", status)
	}
}

// Every configuration error of the protocol is reported at once.
func TestConfigValidateReportsEveryError(t *testing.T) {
	eng, err := netcore.New(netcore.Config{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(eng, Config{Path: "ws", EchoPath: "echo", RequireAuth: true, JWTSecret: nil,
		BanDuration: time.Hour, BanMax: time.Minute, AllowedOrigins: []string{"example.com"}, MaxRoomsPerConn: -1})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`path "ws"`, `echo path "echo"`, "require-auth", "ban-max", "allowed origin", "max-rooms"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	if _, err := New(eng, Config{JWTSecret: []byte("short")}); err == nil || !strings.Contains(err.Error(), "32") {
		t.Errorf("short secret: %v", err)
	}
	if _, err := New(eng, Config{EchoPath: "/ws"}); err == nil {
		t.Error("echo path equal to the protocol path accepted")
	}
}

// A trusted proxy's own address stands for many clients: a client whose
// real address is unknown (no PROXY header, no X-Forwarded-For) is closed
// for abuse but its address is not banned, and the per-IP connection rate
// does not apply to it. A client the proxy names is banned as usual.
func TestTrustedProxyIsNeverBanned(t *testing.T) {
	_, addr := testServer(t, Config{MessageRate: 1, MessageBurst: 1, BanAfter: 1, ConnRate: 1, ConnBurst: 1},
		func(e *netcore.Config) { e.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	flood := func(hdr http.Header) *websocket.CloseError {
		c := dialWS(t, "ws://"+addr+"/ws", hdr)
		for i := 0; i < 3; i++ {
			c.Send(`{"type":"ping"}`)
		}
		return c.ExpectClose()
	}
	for i := 0; i < 3; i++ { // more than the connection burst of 1
		if ce := flood(nil); ce.Code != 1008 || strings.Contains(ce.Text, "banned") {
			t.Fatalf("proxy's own address, round %d: close %d %q, want 1008 without a ban", i, ce.Code, ce.Text)
		}
	}
	named := http.Header{"X-Forwarded-For": {"198.51.100.7"}}
	if ce := flood(named); ce.Code != 1008 || !strings.Contains(ce.Text, "banned") {
		t.Fatalf("a named client: close %d %q, want 1008 banned", ce.Code, ce.Text)
	}
	if status, _ := dialStatus(t, "ws://"+addr+"/ws", named); status != http.StatusTooManyRequests {
		t.Fatalf("the banned client again: %d, want 429", status)
	}
	dialWS(t, "ws://"+addr+"/ws", nil) // the proxy's other clients still connect
}

// IPv6 clients are limited and banned per /64 by default.
func TestIPv6KeysArePrefixes(t *testing.T) {
	svc := &Service{cfg: Config{IPv6Prefix: 64}}
	a, b := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	ka, _ := svc.ipKey(a)
	kb, _ := svc.ipKey(b)
	if ka != kb || ka != "ip:2001:db8:1:2::" {
		t.Fatalf("keys %q and %q, want both ip:2001:db8:1:2::", ka, kb)
	}
	if k, _ := svc.ipKey(netip.MustParseAddr("2001:db8:1:3::1")); k == ka {
		t.Fatal("another /64 has the same key")
	}
	if k, _ := svc.ipKey(netip.MustParseAddr("192.0.2.1")); k != "ip:192.0.2.1" {
		t.Fatalf("IPv4 key %q", k)
	}
	svc.cfg.IPv6Prefix = 128
	if k, _ := svc.ipKey(a); k != "ip:2001:db8:1:2::1" {
		t.Fatalf("with prefix 128: %q", k)
	}
}

// Inflated bytes count against the per-connection byte rate: a deflated
// frame of a few hundred bytes that inflates to 40 KB costs 40 KB.
func TestMessageByteRateCountsInflatedBytes(t *testing.T) {
	_, addr := testServer(t, Config{MessageBytesRate: 1000, MessageBytesBurst: 64 << 10})
	c := wstest.Dial(t, addr, "/ws", "Sec-WebSocket-Extensions: permessage-deflate")
	msg := []byte(`{"type":"echo","id":1,"data":"` + strings.Repeat("a", 40<<10) + `"}`)
	deflated := wstest.Deflate(t, msg)
	if len(deflated) > 1000 {
		t.Fatalf("the test message deflates to %d bytes; want a small frame", len(deflated))
	}
	send := func() map[string]any {
		c.Write(wstest.ClientFrame(true, 4, ws.OpText, deflated, true))
		f := c.NextData()
		p := f.Payload
		if f.Header.Rsv1() {
			p = wstest.Inflate(t, p)
		}
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			t.Fatalf("reply %q: %v", p, err)
		}
		return m
	}
	if m := send(); m["type"] != "echo" {
		t.Fatalf("first 40 KB message: %v", m["type"])
	}
	if m := send(); m["code"] != CodeRateLimited || !strings.Contains(m["message"].(string), "byte rate") || m["id"] != float64(1) {
		t.Fatalf("second 40 KB message within the second: %v, want rate_limited for the byte rate", m)
	}
}

// Client tokens: aud, iss and the lifetime are checked when the Config
// sets them, and a sub the server speaks as in publish's from ("server",
// "anon:<socket>") is refused, so no client can pose as either.
func TestClientTokenClaims(t *testing.T) {
	_, plain := testServer(t, Config{JWTSecret: testSecret})
	_, strict := testServer(t, Config{JWTSecret: testSecret, JWTAudience: "sockmon", JWTIssuer: "https://auth.example", JWTMaxTTL: time.Hour})
	now := time.Now()
	claims := func(kv ...any) jwt.MapClaims {
		m := jwt.MapClaims{"sub": "zoe", "iat": now.Unix(), "exp": now.Add(30 * time.Minute).Unix(), "aud": "sockmon", "iss": "https://auth.example"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	for _, tc := range []struct {
		name          string
		claims        jwt.MapClaims
		plain, strict int
	}{
		{"all good", claims(), 101, 101},
		{"aud in a list", claims("aud", []string{"other", "sockmon"}), 101, 101},
		{"no aud", claims("aud", nil), 101, 401},
		{"wrong aud", claims("aud", "other"), 101, 401},
		{"no iss", claims("iss", nil), 101, 401},
		{"wrong iss", claims("iss", "https://evil.example"), 101, 401},
		{"minted for a day", claims("iat", now.Add(-time.Minute).Unix(), "exp", now.Add(24*time.Hour).Unix()), 101, 401},
		{"no iat, valid for a day", claims("iat", nil, "exp", now.Add(24*time.Hour).Unix()), 101, 401},
		{"future iat, valid for a day", claims("iat", now.Add(23*time.Hour).Unix(), "exp", now.Add(24*time.Hour).Unix()), 101, 401},
		{"no iat, valid for 30m", claims("iat", nil), 101, 101},
		{"sub server", claims("sub", "server"), 401, 401},
		{"sub anon:7", claims("sub", "anon:7"), 401, 401},
		{"sub anonymous (not the prefix)", claims("sub", "anonymous"), 101, 101},
	} {
		tok := token(t, jwt.SigningMethodHS256, testSecret, tc.claims)
		for _, srv := range []struct {
			addr string
			want int
		}{{plain, tc.plain}, {strict, tc.strict}} {
			if status, _ := dialStatus(t, "ws://"+srv.addr+"/ws?token="+tok, nil); status != srv.want {
				t.Errorf("%s on %s: status %d, want %d", tc.name, srv.addr, status, srv.want)
			}
		}
	}
}
