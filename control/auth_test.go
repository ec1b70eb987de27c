package control

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func signHS256(secret string, claims map[string]any) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString([]byte(secret))
}

func adminClaims() map[string]any {
	return map[string]any{"sub": "alice", "admin": true, "role": "ADMIN", "exp": time.Now().Add(time.Hour).Unix()}
}

func with(m map[string]any, k string, v any) map[string]any {
	m[k] = v
	return m
}

func without(m map[string]any, k string) map[string]any {
	delete(m, k)
	return m
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// attackTokens are the tokens the admin API must refuse, each with the
// status it must get.
func attackTokens(t *testing.T) []struct {
	name, header string
	status       int
} {
	t.Helper()
	must := func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sign := func(m jwt.SigningMethod, key any, claims map[string]any) string {
		return must(jwt.NewWithClaims(m, jwt.MapClaims(claims)).SignedString(key))
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	valid := sign(jwt.SigningMethodHS256, []byte(testAdminSecret), adminClaims())
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + b64(with(adminClaims(), "sub", "mallory")) + "." + parts[2]
	none := b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." + b64(adminClaims()) + "."
	noneSigned := must(jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims(adminClaims())).SignedString(jwt.UnsafeAllowNoneSignatureType))

	return []struct {
		name, header string
		status       int
	}{
		{"no token", "", 401},
		{"basic auth", "Basic YWxpY2U6cGFzc3dvcmQ=", 401},
		{"garbage", "Bearer not.a.token", 401},
		{"alg none", "Bearer " + none, 401},
		{"alg none via library", "Bearer " + noneSigned, 401},
		{"HS384 with the admin secret", "Bearer " + sign(jwt.SigningMethodHS384, []byte(testAdminSecret), adminClaims()), 401},
		{"HS512 with the admin secret", "Bearer " + sign(jwt.SigningMethodHS512, []byte(testAdminSecret), adminClaims()), 401},
		{"RS256", "Bearer " + sign(jwt.SigningMethodRS256, rsaKey, adminClaims()), 401},
		{"signed with the client secret", "Bearer " + sign(jwt.SigningMethodHS256, []byte(testClientSecret), adminClaims()), 401},
		{"signed with another secret", "Bearer " + sign(jwt.SigningMethodHS256, []byte("some-other-secret-0123456789abcdef"), adminClaims()), 401},
		{"tampered payload", "Bearer " + tampered, 401},
		{"expired", "Bearer " + sign(jwt.SigningMethodHS256, []byte(testAdminSecret), with(adminClaims(), "exp", time.Now().Add(-time.Minute).Unix())), 401},
		{"no exp", "Bearer " + sign(jwt.SigningMethodHS256, []byte(testAdminSecret), without(adminClaims(), "exp")), 401},
		{"not valid yet", "Bearer " + sign(jwt.SigningMethodHS256, []byte(testAdminSecret), with(adminClaims(), "nbf", time.Now().Add(time.Hour).Unix())), 401},
		{"oversized", "Bearer " + strings.Repeat("a", maxTokenBytes+1), 401},
		{"admin false", "Bearer " + sign(jwt.SigningMethodHS256, []byte(testAdminSecret), with(adminClaims(), "admin", false)), 403},
		{"admin as a string", "Bearer " + sign(jwt.SigningMethodHS256, []byte(testAdminSecret), with(adminClaims(), "admin", "true")), 403},
		{"no admin claim", "Bearer " + sign(jwt.SigningMethodHS256, []byte(testAdminSecret), without(adminClaims(), "admin")), 403},
		{"role USER", "Bearer " + sign(jwt.SigningMethodHS256, []byte(testAdminSecret), with(adminClaims(), "role", "USER")), 403},
		{"role lower case", "Bearer " + sign(jwt.SigningMethodHS256, []byte(testAdminSecret), with(adminClaims(), "role", "admin")), 403},
		{"role viewer lower case", "Bearer " + sign(jwt.SigningMethodHS256, []byte(testAdminSecret), with(adminClaims(), "role", "viewer")), 403},
		{"viewer without admin claim", "Bearer " + sign(jwt.SigningMethodHS256, []byte(testAdminSecret), without(with(adminClaims(), "role", "VIEWER"), "admin")), 403},
		{"viewer signed with the client secret", "Bearer " + sign(jwt.SigningMethodHS256, []byte(testClientSecret), with(adminClaims(), "role", "VIEWER")), 401},
		{"viewer expired", "Bearer " + sign(jwt.SigningMethodHS256, []byte(testAdminSecret), with(with(adminClaims(), "role", "VIEWER"), "exp", time.Now().Add(-time.Minute).Unix())), 401},
		{"no role", "Bearer " + sign(jwt.SigningMethodHS256, []byte(testAdminSecret), without(adminClaims(), "role")), 403},
		{"no sub", "Bearer " + sign(jwt.SigningMethodHS256, []byte(testAdminSecret), without(adminClaims(), "sub")), 403},
		{"client token (no admin claims, client secret)", "Bearer " + clientToken(t, "bob"), 401},
	}
}

// Every attack token is refused on every admin endpoint with the right
// status, and the refusal of each POST is in the audit log.
func TestAdminAuthRefusesAttacks(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.AuthFailures, c.RefusalLogRate = 1000, -1 })
	cases := attackTokens(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.header != "" {
				hdr = []string{"Authorization: " + tc.header}
			}
			for _, ep := range []struct{ method, path, body string }{
				{"GET", PathAdmin, ""},
				{"POST", PathAdmin, `{"action":"set_maintenance_mode","data":{"enabled":true}}`},
				{"POST", PathHealth, `{}`},
			} {
				r := f.do(ep.method, ep.path, "", []byte(ep.body), hdr...)
				if r.status != tc.status {
					t.Fatalf("%s %s: status %d, want %d: %s", ep.method, ep.path, r.status, tc.status, r.body)
				}
				ok, _, code, _, _ := r.envelope(t)
				wantCode := CodeUnauthorized
				if tc.status == 403 {
					wantCode = CodeForbidden
				}
				if ok || code != wantCode {
					t.Fatalf("%s %s: success %v code %q, want %q", ep.method, ep.path, ok, code, wantCode)
				}
				if tc.status == 401 && r.header.Get("WWW-Authenticate") == "" {
					t.Errorf("401 without WWW-Authenticate")
				}
			}
		})
	}
	if f.engine.Maintenance() != nil {
		t.Fatal("a refused request turned maintenance on")
	}
	// Two POSTs per case, each audited as refused among the refusals
	// before authentication, none among the operators' records; none of
	// them by alice unless the signature verified (403 cases name the sub).
	if recs, err := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 1000}); err != nil || len(recs) != 0 {
		t.Fatalf("%d operators' records (%v), want 0", len(recs), err)
	}
	recs, err := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 1000, Unauthenticated: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2*len(cases) {
		t.Fatalf("%d refused records, want %d", len(recs), 2*len(cases))
	}
	for _, r := range recs {
		if r.Result != ResultRefused || (r.Status != 401 && r.Status != 403) || r.SourceIP != "127.0.0.1" || r.Reason == "" {
			t.Errorf("audit record %+v: want a refused 401/403 from 127.0.0.1 with a reason", r)
		}
		if r.Status == 401 && r.Actor != "" {
			t.Errorf("401 record names actor %q from an unverified token", r.Actor)
		}
		if r.Status == 403 && r.Actor != "alice" && r.Actor != "" {
			t.Errorf("403 record names actor %q", r.Actor)
		}
	}
	// The log says why, never shows the token.
	logs := f.logs.String()
	if !strings.Contains(logs, "signed with the client secret") {
		t.Error("the log does not say a client token was presented")
	}
	for _, tc := range cases {
		if tok, ok := strings.CutPrefix(tc.header, "Bearer "); ok && len(tok) > 20 && strings.Contains(logs, tok) {
			t.Errorf("%s: the token is in the log", tc.name)
		}
	}
}

// A valid admin token passes; verifyAdmin (the Go side) agrees with the
// endpoint on every case.
func TestVerifyAdmin(t *testing.T) {
	f := newFixture(t)
	p, aerr := f.ctl.verifyAdmin("Bearer " + f.token())
	if aerr != nil || p.Sub != "alice" || p.Role != AdminRole || time.Until(p.Expires) < 50*time.Minute {
		t.Fatalf("valid token: %+v err %v", p, aerr)
	}
	if r := f.do("GET", PathAdmin, f.token(), nil); r.status != 200 {
		t.Fatalf("GET with a valid token: %d %s", r.status, r.body)
	}
	for _, tc := range attackTokens(t) {
		_, aerr := f.ctl.verifyAdmin(tc.header)
		if aerr == nil || aerr.Status != tc.status {
			t.Errorf("%s: verifyAdmin = %v, want status %d", tc.name, aerr, tc.status)
		}
	}
}

// Repeated failures from one IP lock that IP out: its requests without a
// valid admin token get 429 + Retry-After, but a valid admin token is
// still admitted from it (verified first), and other IPs are unaffected.
// X-Forwarded-For is believed only from a trusted proxy.
func TestAdminAuthFailuresRateLimited(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.AuthFailures = 3
		c.AuthFailureWindow = time.Hour
		c.TrustedProxies = mustPrefixes(t, "127.0.0.0/8")
	})
	from := func(ip string) string { return "X-Forwarded-For: " + ip }
	for i := range 3 {
		if r := f.do("GET", PathAdmin, "wrong", nil, from("10.0.0.1")); r.status != 401 {
			t.Fatalf("failure %d: status %d", i, r.status)
		}
	}
	for _, tok := range []string{"", "wrong", clientToken(t, "bob")} {
		r := f.do("POST", PathAdmin, tok, []byte(`{"action":"get_alert_configs"}`), from("10.0.0.1"))
		if r.status != 429 || r.header.Get("Retry-After") == "" {
			t.Fatalf("locked-out IP with token %.10q: status %d, Retry-After %q", tok, r.status, r.header.Get("Retry-After"))
		}
		if _, _, code, _, _ := r.envelope(t); code != CodeRateLimited {
			t.Fatalf("code %q", code)
		}
	}
	// The operator behind the same address gets in, GET and POST alike,
	// and that does not lift the lockout for the others.
	if r := f.do("GET", PathAdmin, f.token(), nil, from("10.0.0.1")); r.status != 200 {
		t.Fatalf("valid token from a locked-out IP: GET status %d %s", r.status, r.body)
	}
	if r := f.do("POST", PathAdmin, f.token(), []byte(`{"action":"get_alert_configs"}`), from("10.0.0.1")); r.status != 200 {
		t.Fatalf("valid token from a locked-out IP: POST status %d %s", r.status, r.body)
	}
	if r := f.do("GET", PathAdmin, "wrong", nil, from("10.0.0.1")); r.status != 429 {
		t.Fatalf("after an operator's request the IP is not locked out any more: %d", r.status)
	}
	if r := f.do("GET", PathAdmin, "wrong", nil, from("10.0.0.2")); r.status != 401 {
		t.Fatalf("another IP: status %d %s", r.status, r.body)
	}
	// IPv6 addresses are locked out by their /64.
	for i := range 3 {
		f.do("GET", PathAdmin, "wrong", nil, from(fmt.Sprintf("2001:db8:1:2::%x", i+1)))
	}
	if r := f.do("GET", PathAdmin, "wrong", nil, from("2001:db8:1:2:ffff::1")); r.status != 429 {
		t.Fatalf("another address of a locked-out /64: status %d", r.status)
	}
	if r := f.do("GET", PathAdmin, "wrong", nil, from("2001:db8:1:3::1")); r.status != 401 {
		t.Fatalf("another /64: status %d", r.status)
	}
}

// The limiter itself: the window ends the lockout, a success clears
// nothing, and past its capacity it forgets the address whose last failure
// is the oldest, never failing open for a new one.
func TestFailLimiter(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	l := newFailLimiter(2, time.Minute, 3)
	now := time.Now()
	if was, locked, _ := l.fail(a, now); was || locked {
		t.Fatal("locked after 1 failure of 2")
	}
	if was, locked, left := l.fail(a, now); was || !locked || left != time.Minute {
		t.Fatalf("2nd failure: was %v locked %v left %s", was, locked, left)
	}
	if was, locked, left := l.fail(a, now.Add(time.Second)); !was || !locked || left != 59*time.Second {
		t.Fatalf("3rd failure: was %v locked %v left %s", was, locked, left)
	}
	if was, locked, _ := l.fail(a, now.Add(time.Minute)); was || locked {
		t.Fatal("still locked out after the window")
	}

	// Capacity 3: a locked-out address that keeps failing stays; the
	// quietest goes.
	l = newFailLimiter(2, time.Hour, 3)
	l.fail(a, now)
	l.fail(a, now)
	for i := range 10 {
		l.fail(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), now)
		if was, _, _ := l.fail(a, now); !was {
			t.Fatalf("the locked-out address was forgotten after %d new ones", i+1)
		}
	}
	if n := l.len(); n != 3 {
		t.Fatalf("%d addresses tracked, want 3", n)
	}
	l.fail(b, now)
	if was, locked, _ := l.fail(b, now); was || !locked {
		t.Fatal("a new address past the capacity is not counted (fails open)")
	}
}

// The admin 401 never tells an unauthenticated caller what kind of token
// it sent: a client token, expired or not, is an "invalid token" to the
// caller; the log says why.
func TestAdminRefusalSaysLittle(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.AuthFailures, c.RefusalLogRate = 1000, -1 })
	expired, err := signHS256(testClientSecret, map[string]any{"sub": "bob", "exp": time.Now().Add(-time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{clientToken(t, "bob"), expired} {
		for _, ep := range []struct{ method, path string }{{"GET", PathAdmin}, {"POST", PathAdmin}, {"POST", PathHealth}} {
			r := f.do(ep.method, ep.path, tok, []byte(`{}`))
			_, _, code, _, msg := r.envelope(t)
			if r.status != 401 || code != CodeUnauthorized || msg != "invalid token" {
				t.Fatalf("%s %s: %d %s %q, want 401 \"invalid token\"", ep.method, ep.path, r.status, code, msg)
			}
			if strings.Contains(strings.ToLower(string(r.body)), "client") {
				t.Fatalf("the reply names the client secret: %s", r.body)
			}
		}
	}
	if n := strings.Count(f.logs.String(), "signed with the client secret"); n < 6 {
		t.Fatalf("%d log lines say the token was a client token, want 6:\n%s", n, f.logs.String())
	}
}

// Without an admin secret the admin endpoints are off (503), not open;
// the public ones work.
func TestAdminDisabledWithoutSecret(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.AdminSecret = nil })
	tok, _ := signHS256("", adminClaims())
	for _, ep := range []struct{ method, path string }{{"GET", PathAdmin}, {"POST", PathAdmin}, {"POST", PathHealth}} {
		for _, token := range []string{"", tok, f.token()} {
			r := f.do(ep.method, ep.path, token, []byte(`{"action":"set_maintenance_mode","data":{"enabled":true}}`))
			if _, _, code, _, _ := r.envelope(t); r.status != 503 || code != CodeAdminDisabled {
				t.Fatalf("%s %s: status %d code %q, want 503 admin_disabled", ep.method, ep.path, r.status, code)
			}
		}
	}
	if f.engine.Maintenance() != nil {
		t.Fatal("maintenance was turned on with the admin API off")
	}
	for _, p := range []string{PathHealth, PathLivez, PathReadyz, PathMetrics} {
		if r := f.do("GET", p, "", nil); r.status != 200 {
			t.Errorf("GET %s: %d", p, r.status)
		}
	}
	recs, _ := f.ctl.CommandHistory(CommandHistoryOptions{Unauthenticated: true})
	if len(recs) != 6 || recs[0].Code != CodeAdminDisabled || recs[0].Result != ResultRefused {
		t.Fatalf("audit of refused POSTs: %+v", recs)
	}
}

func TestAdminToken(t *testing.T) {
	if _, err := AdminToken(nil, "a", time.Hour); err == nil {
		t.Error("no secret: no error")
	}
	if _, err := AdminToken([]byte(testAdminSecret), "", time.Hour); err == nil {
		t.Error("no sub: no error")
	}
	if _, err := AdminToken([]byte(testAdminSecret), "a", 0); err == nil {
		t.Error("zero ttl: no error")
	}
	tok, err := AdminToken([]byte(testAdminSecret), "ops", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	tk, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(testAdminSecret), nil })
	if err != nil || tk.Method.Alg() != "HS256" {
		t.Fatalf("parse: %v", err)
	}
	if claims["sub"] != "ops" || claims["admin"] != true || claims["role"] != "ADMIN" {
		t.Fatalf("claims %v", claims)
	}
	exp, _ := claims.GetExpirationTime()
	if d := time.Until(exp.Time); d < 50*time.Second || d > 61*time.Second {
		t.Fatalf("exp in %s, want about 1m", d)
	}
}

// Admin tokens: with JWTAudience, JWTIssuer and JWTMaxTTL set, aud and iss
// must match and the lifetime stay under the maximum; MintAdminToken mints
// what they require.
func TestAdminTokenClaims(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.JWTAudience, c.JWTIssuer, c.JWTMaxTTL = "sockmon-admin", "https://auth.example", time.Hour
		c.AuthFailures = 1000
	})
	now := time.Now()
	claims := func(kv ...any) map[string]any {
		m := adminClaims()
		m["aud"], m["iss"], m["iat"], m["exp"] = "sockmon-admin", "https://auth.example", now.Unix(), now.Add(30*time.Minute).Unix()
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
		name   string
		claims map[string]any
		status int
	}{
		{"all good", claims(), 200},
		{"no aud", claims("aud", nil), 401},
		{"wrong aud", claims("aud", "sockmon"), 401},
		{"wrong iss", claims("iss", "https://evil.example"), 401},
		{"minted for a day", claims("exp", now.Add(24*time.Hour).Unix()), 401},
		{"no iat, valid for a day", claims("iat", nil, "exp", now.Add(24*time.Hour).Unix()), 401},
		{"no iat, valid for 30m", claims("iat", nil), 200},
	} {
		tok, err := signHS256(testAdminSecret, tc.claims)
		if err != nil {
			t.Fatal(err)
		}
		if r := f.do("GET", PathAdmin, tok, nil); r.status != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, r.status, tc.status, r.body)
		}
	}
	good, err := MintAdminToken([]byte(testAdminSecret), TokenClaims{Sub: "ops", TTL: 30 * time.Minute, Audience: "sockmon-admin", Issuer: "https://auth.example"})
	if err != nil {
		t.Fatal(err)
	}
	if r := f.do("GET", PathAdmin, good, nil); r.status != 200 {
		t.Fatalf("MintAdminToken with aud and iss: %d %s", r.status, r.body)
	}
	long, _ := MintAdminToken([]byte(testAdminSecret), TokenClaims{Sub: "ops", TTL: 2 * time.Hour, Audience: "sockmon-admin", Issuer: "https://auth.example"})
	if r := f.do("GET", PathAdmin, long, nil); r.status != 401 {
		t.Fatalf("a 2h token under a 1h maximum: %d", r.status)
	}
	if r := f.do("GET", PathAdmin, f.token(), nil); r.status != 401 {
		t.Fatalf("a token without aud and iss: %d", r.status)
	}
}

// A VIEWER token (admin secret, admin: true, role: "VIEWER") reads
// everything: the admin GET, the detailed health and every get_* action;
// every action that changes state gets 403, audited with the viewer as
// actor, and changes nothing. Authenticate (the dashboard's sign-in)
// agrees with the header.
func TestViewerRole(t *testing.T) {
	f := newFixture(t)
	viewer, err := RoleToken([]byte(testAdminSecret), "vera", ViewerRole, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if r := f.do("GET", PathAdmin, viewer, nil); r.status != 200 {
		t.Fatalf("viewer GET %s: %d %s", PathAdmin, r.status, r.body)
	}
	if r := f.do("POST", PathHealth, viewer, []byte(`{}`)); r.status != 200 {
		t.Fatalf("viewer POST %s: %d %s", PathHealth, r.status, r.body)
	}
	for _, a := range Actions() {
		body := []byte(`{"action":"` + a + `","data":{}}`)
		r := f.do("POST", PathAdmin, viewer, body)
		if ReadOnlyAction(a) {
			if r.status != 200 {
				t.Errorf("viewer %s: %d %s, want 200", a, r.status, r.body)
			}
			continue
		}
		if _, _, code, _, _ := r.envelope(t); r.status != 403 || code != CodeForbidden {
			t.Errorf("viewer %s: %d %s, want 403 forbidden", a, r.status, r.body)
		}
	}
	// Valid data makes no difference.
	r := f.do("POST", PathAdmin, viewer, []byte(`{"action":"set_maintenance_mode","data":{"enabled":true,"reason":"x"}}`))
	if r.status != 403 || f.engine.Maintenance() != nil {
		t.Fatalf("viewer set_maintenance_mode: %d, maintenance %v", r.status, f.engine.Maintenance())
	}
	if _, err := f.ctl.Command(Actor{Sub: "vera", Role: ViewerRole}, ActionSetMaintenanceMode, []byte(`{"enabled":true}`)); !errors.Is(err, &Error{Code: CodeForbidden}) {
		t.Fatalf("Command as a viewer: %v, want forbidden", err)
	}
	// An unknown action stays a 400.
	if r := f.do("POST", PathAdmin, viewer, []byte(`{"action":"nope"}`)); r.status != 400 {
		t.Fatalf("viewer unknown action: %d", r.status)
	}
	recs, _ := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 1000, Actor: "vera", Result: ResultRefused})
	if want := len(Actions()) - countReadOnly() + 3; len(recs) != want {
		t.Fatalf("%d refused records of vera, want %d", len(recs), want)
	}
	for _, rec := range recs {
		if rec.Status != 403 && rec.Status != 400 {
			t.Errorf("refused viewer record %+v", rec)
		}
	}
	// The admin token still acts.
	if r := f.admin(ActionSetMaintenanceMode, map[string]any{"enabled": true}); r.status != 200 {
		t.Fatalf("admin: %d", r.status)
	}

	p, e := f.ctl.Authenticate("192.0.2.9", viewer)
	if e != nil || p.Sub != "vera" || p.Role != ViewerRole {
		t.Fatalf("Authenticate viewer: %+v %v", p, e)
	}
	for _, tc := range attackTokens(t) {
		tok, _ := strings.CutPrefix(tc.header, "Bearer ")
		if tc.header == "" || !strings.HasPrefix(tc.header, "Bearer ") {
			continue
		}
		if _, e := f.ctl.Authenticate("192.0.2.10", tok); e == nil || (e.Status != tc.status && e.Status != 429) {
			t.Errorf("Authenticate %s: %v, want %d", tc.name, e, tc.status)
		}
	}
	if _, e := f.ctl.Authenticate("192.0.2.10", "not-a-token"); e == nil || e.Status != 429 || e.RetryAfter <= 0 {
		t.Fatalf("Authenticate a bad token after many failures: %v, want 429 with RetryAfter", e)
	}
	// Verified first: a valid token signs in from a locked-out address.
	if p, e := f.ctl.Authenticate("192.0.2.10", f.token()); e != nil || p.Role != AdminRole {
		t.Fatalf("Authenticate a valid token from a locked-out address: %+v %v", p, e)
	}
	if _, err := RoleToken([]byte(testAdminSecret), "x", "USER", time.Hour); err == nil {
		t.Fatal("RoleToken USER: no error")
	}
}

func countReadOnly() int {
	n := 0
	for _, a := range Actions() {
		if ReadOnlyAction(a) {
			n++
		}
	}
	return n
}
