package control

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
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
	f := newFixture(t, func(c *Config) { c.AuthFailures = 1000 })
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
	// Two POSTs per case, each audited as refused; none of them by alice
	// unless the signature verified (403 cases name the sub).
	recs, err := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2*len(cases) {
		t.Fatalf("%d audit records, want %d", len(recs), 2*len(cases))
	}
	for _, r := range recs {
		if r.Result != ResultRefused || (r.Status != 401 && r.Status != 403) || r.SourceIP != "127.0.0.1" {
			t.Errorf("audit record %+v: want a refused 401/403 from 127.0.0.1", r)
		}
		if r.Status == 401 && r.Actor != "" {
			t.Errorf("401 record names actor %q from an unverified token", r.Actor)
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

// Repeated failures from one IP lock that IP out with 429 + Retry-After,
// even for a valid token, while other IPs are unaffected. X-Forwarded-For
// is believed only from a trusted proxy.
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
	r := f.do("POST", PathAdmin, f.token(), []byte(`{"action":"get_alert_configs"}`), from("10.0.0.1"))
	if r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("locked-out IP with a valid token: status %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	if _, _, code, _, _ := r.envelope(t); code != CodeRateLimited {
		t.Fatalf("code %q", code)
	}
	if r := f.do("POST", PathAdmin, f.token(), []byte(`{"action":"get_alert_configs"}`), from("10.0.0.2")); r.status != 200 {
		t.Fatalf("another IP: status %d %s", r.status, r.body)
	}
	recs, _ := f.ctl.CommandHistory(CommandHistoryOptions{Limit: 2})
	if recs[1].SourceIP != "10.0.0.1" || recs[1].Status != 429 || recs[0].SourceIP != "10.0.0.2" {
		t.Fatalf("audit: %+v", recs)
	}

	// The limiter itself: the window ends, a success clears.
	l := newFailLimiter(2, time.Minute)
	now := time.Now()
	l.fail("a", now)
	l.fail("a", now)
	if b, left := l.blocked("a", now.Add(time.Second)); !b || left <= 0 {
		t.Fatal("not blocked after 2 failures")
	}
	if b, _ := l.blocked("a", now.Add(time.Minute)); b {
		t.Fatal("still blocked after the window")
	}
	l.fail("b", now)
	l.succeed("b")
	l.fail("b", now)
	if b, _ := l.blocked("b", now); b {
		t.Fatal("a success did not clear the count")
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
	recs, _ := f.ctl.CommandHistory(CommandHistoryOptions{})
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
	if _, e := f.ctl.Authenticate("192.0.2.10", f.token()); e == nil || e.Status != 429 || e.RetryAfter <= 0 {
		t.Fatalf("Authenticate after many failures: %v, want 429 with RetryAfter", e)
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
