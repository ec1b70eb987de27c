package dashboard

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sockmon/sockmon/control"
)

// Every answer carries the security headers: a CSP without inline script,
// no framing, no referrer; pages and data are not stored.
func checkHeaders(t *testing.T, what string, r *response) {
	t.Helper()
	csp := r.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("%s: CSP %q", what, csp)
	}
	if r.header.Get("X-Frame-Options") != "DENY" || r.header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("%s: X-Frame-Options %q, Referrer-Policy %q", what, r.header.Get("X-Frame-Options"), r.header.Get("Referrer-Policy"))
	}
}

// Sign-in: the form without a session; 401 with the form for a wrong,
// expired or claim-less token; 303 with an HttpOnly, SameSite=Strict
// cookie that expires with the token for a good one; Secure behind TLS;
// the token never in a log; a token in the URL is refused unread.
func TestSignIn(t *testing.T) {
	f := newFixture(t)
	r := f.do("GET", "/dashboard", nil)
	if r.status != 200 || !strings.Contains(r.body, `name="token"`) || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /dashboard without a session: %d %q", r.status, r.body)
	}
	checkHeaders(t, "sign-in page", r)
	if strings.Contains(r.body, "<script") {
		t.Error("the sign-in page has a script")
	}

	sign := func(claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testSecret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	exp := time.Now().Add(time.Hour).Unix()
	for name, tok := range map[string]string{
		"garbage":   "not-a-token",
		"empty":     "",
		"expired":   sign(jwt.MapClaims{"sub": "a", "admin": true, "role": "ADMIN", "exp": time.Now().Add(-time.Minute).Unix()}),
		"role USER": sign(jwt.MapClaims{"sub": "a", "admin": true, "role": "USER", "exp": exp}),
		"no admin":  sign(jwt.MapClaims{"sub": "a", "role": "ADMIN", "exp": exp}),
		"other secret": func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "a", "admin": true, "role": "ADMIN", "exp": exp}).SignedString([]byte("x"))
			return s
		}(),
		"lower viewer":  sign(jwt.MapClaims{"sub": "a", "admin": true, "role": "viewer", "exp": exp}),
		"no expiration": sign(jwt.MapClaims{"sub": "a", "admin": true, "role": "ADMIN"}),
	} {
		r := f.login(tok)
		if r.status != 401 || !strings.Contains(r.body, `name="token"`) || !strings.Contains(r.body, "Sign-in refused") || r.header.Get("Set-Cookie") != "" {
			t.Errorf("%s: %d, cookie %q", name, r.status, r.header.Get("Set-Cookie"))
		}
	}
	tok := f.token("alice", control.AdminRole)
	if r := f.do("POST", "/dashboard/login?token="+tok, nil); r.status != 400 || r.header.Get("Set-Cookie") != "" {
		t.Errorf("token in the URL: %d", r.status)
	}
	if r := f.login(tok, "Sec-Fetch-Site: cross-site"); r.status != 403 {
		t.Errorf("sign-in posted from another site: %d", r.status)
	}

	r = f.login(tok)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/dashboard" {
		t.Fatalf("good token: %d, Location %q", r.status, r.header.Get("Location"))
	}
	cookie := r.header.Get("Set-Cookie")
	for _, want := range []string{"sockmon_session=", "HttpOnly", "SameSite=Strict", "path=/dashboard"} {
		if !strings.Contains(strings.ToLower(cookie), strings.ToLower(want)) {
			t.Errorf("cookie %q lacks %s", cookie, want)
		}
	}
	if strings.Contains(cookie, "secure") || strings.Contains(cookie, "Secure") {
		t.Errorf("cookie over plain HTTP is Secure: %q", cookie)
	}
	if i := strings.Index(strings.ToLower(cookie), "max-age="); i < 0 {
		t.Errorf("cookie %q has no Max-Age", cookie)
	} else if n, _ := strconv.Atoi(strings.SplitN(cookie[i+8:], ";", 2)[0]); n <= 0 || n > 3600 {
		t.Errorf("cookie Max-Age %d, want at most the token's hour", n)
	}
	if r := f.login(tok, "X-Forwarded-Proto: https"); !strings.Contains(r.header.Get("Set-Cookie"), "secure") {
		t.Errorf("cookie behind TLS is not Secure: %q", r.header.Get("Set-Cookie"))
	}
	if strings.Contains(f.logs.String(), tok) {
		t.Error("the token is in the log")
	}
	if !strings.Contains(f.logs.String(), "dashboard sign-in") {
		t.Error("the sign-in is not logged")
	}

	c, _, _ := strings.Cut(cookie, ";")
	page := f.do("GET", "/dashboard", nil, "Cookie: "+c)
	if page.status != 200 || !strings.Contains(page.body, `name="sockmon-csrf"`) || !strings.Contains(page.body, `content="ADMIN"`) || strings.Contains(page.body, tok) {
		t.Fatalf("the page with a session: %d %s", page.status, page.body)
	}
	checkHeaders(t, "app page", page)
	if strings.Contains(page.body, "<script>") || strings.Contains(page.body, " on") && strings.Contains(page.body, "onclick=") {
		t.Error("the page has inline script")
	}
	// A tampered or foreign cookie is no session.
	id, mac, _ := strings.Cut(strings.TrimPrefix(c, "sockmon_session="), ".")
	for _, bad := range []string{"sockmon_session=" + id + ".AAAA" + mac[4:], "sockmon_session=" + id, "sockmon_session=x.y"} {
		if r := f.do("GET", "/dashboard", nil, "Cookie: "+bad); !strings.Contains(r.body, `name="token"`) {
			t.Errorf("cookie %q opened the dashboard", bad)
		}
	}
	other := newFixture(t)
	if r := other.do("GET", "/dashboard", nil, "Cookie: "+c); !strings.Contains(r.body, `name="token"`) {
		t.Error("a cookie of another process (a restart) opened the dashboard")
	}
}

// Logout needs the CSRF token, ends the session (the cookie no longer
// opens anything) and clears the cookie.
func TestLogout(t *testing.T) {
	f := newFixture(t)
	c, csrf := f.session(control.AdminRole)
	form := "Content-Type: application/x-www-form-urlencoded"
	if r := f.do("POST", "/dashboard/logout", strings.NewReader("csrf=wrong"), "Cookie: "+c, form); r.status != 403 {
		t.Fatalf("logout with a wrong CSRF token: %d", r.status)
	}
	r := f.do("POST", "/dashboard/logout", strings.NewReader("csrf="+csrf), "Cookie: "+c, form)
	if r.status != http.StatusSeeOther || !strings.Contains(r.header.Get("Set-Cookie"), "sockmon_session=;") {
		t.Fatalf("logout: %d, cookie %q", r.status, r.header.Get("Set-Cookie"))
	}
	if r := f.do("GET", "/dashboard", nil, "Cookie: "+c); !strings.Contains(r.body, `name="token"`) {
		t.Fatal("the cookie still opens the dashboard after logout")
	}
	if r := f.do("GET", "/dashboard/api/status", nil, "Cookie: "+c); r.status != 401 {
		t.Fatalf("API after logout: %d", r.status)
	}
}

// A session ends with its token, and the table stays bounded.
func TestSessionsExpireAndStayBounded(t *testing.T) {
	ss, err := newSessions(3, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s := ss.create(control.Principal{Sub: "a", Role: control.AdminRole, Expires: now.Add(time.Minute)}, now)
	if !s.expires.Equal(now.Add(time.Minute)) {
		t.Fatalf("session expires %s, want the token's expiry", s.expires)
	}
	cookie := ss.cookieValue(s)
	if ss.get(cookie, now.Add(59*time.Second)) == nil {
		t.Fatal("session gone before the token expired")
	}
	if ss.get(cookie, now.Add(time.Minute)) != nil {
		t.Fatal("session outlived the token")
	}
	long := ss.create(control.Principal{Sub: "b", Expires: now.Add(48 * time.Hour)}, now)
	if !long.expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("session of a long token expires %s, want the TTL", long.expires)
	}
	for i := range 5 {
		ss.create(control.Principal{Sub: "c"}, now.Add(time.Duration(i)*time.Second))
	}
	if n := len(ss.byID); n != 3 {
		t.Fatalf("%d sessions kept, want at most 3", n)
	}
	if ss.get(ss.cookieValue(long), now) != nil {
		t.Fatal("the oldest session was not evicted")
	}
}

// POST /dashboard/api/action: without a session 401, without the CSRF
// token or from another site 403; reads run unaudited, commands are
// audited under the signed-in sub; a VIEWER's command is 403 (and
// audited as refused) even with its CSRF token.
func TestAPIAction(t *testing.T) {
	f := newFixture(t)
	post := func(cookie, csrf, body string, extra ...string) *response {
		h := append([]string{"Content-Type: application/json", "Cookie: " + cookie, "X-CSRF-Token: " + csrf}, extra...)
		return f.do("POST", "/dashboard/api/action", strings.NewReader(body), h...)
	}
	maint := `{"action":"set_maintenance_mode","data":{"enabled":true,"reason":"dash"}}`
	if r := post("sockmon_session=x.y", "", maint); r.status != 401 {
		t.Fatalf("no session: %d", r.status)
	}
	c, csrf := f.session(control.AdminRole)
	if r := post(c, "", maint); r.status != 403 {
		t.Fatalf("no CSRF token: %d", r.status)
	}
	if r := post(c, csrf, maint, "Sec-Fetch-Site: cross-site"); r.status != 403 {
		t.Fatalf("cross-site: %d", r.status)
	}
	if r := post(c, csrf, maint, "Origin: http://evil.example"); r.status != 403 {
		t.Fatalf("foreign Origin: %d", r.status)
	}
	if f.engine.Maintenance() != nil {
		t.Fatal("a refused POST turned maintenance on")
	}
	before, _ := f.ctl.CommandHistory(control.CommandHistoryOptions{Limit: 100})
	r := post(c, csrf, `{"action":"get_connections","data":{"limit":10}}`)
	if r.status != 200 || !strings.Contains(r.body, `"connections":[]`) {
		t.Fatalf("get_connections: %d %s", r.status, r.body)
	}
	if r := post(c, csrf, `{"action":"get_connections","data":{"limit":0}}`); r.status != 422 || !strings.Contains(r.body, `"field":"data.limit"`) {
		t.Fatalf("get_connections limit 0: %d %s", r.status, r.body)
	}
	if after, _ := f.ctl.CommandHistory(control.CommandHistoryOptions{Limit: 100}); len(after) != len(before) {
		t.Fatal("a dashboard read was audited")
	}
	if r := post(c, csrf, maint, "Origin: "+f.base, "Sec-Fetch-Site: same-origin"); r.status != 200 || f.engine.Maintenance() == nil {
		t.Fatalf("set_maintenance_mode: %d %s", r.status, r.body)
	}
	recs, _ := f.ctl.CommandHistory(control.CommandHistoryOptions{Limit: 1})
	if recs[0].Actor != "alice-admin" || recs[0].Action != control.ActionSetMaintenanceMode || recs[0].SourceIP != "127.0.0.1" || recs[0].Result != control.ResultOK {
		t.Fatalf("audit record %+v", recs[0])
	}

	vc, vcsrf := f.session(control.ViewerRole)
	off := `{"action":"set_maintenance_mode","data":{"enabled":false}}`
	if r := post(vc, vcsrf, off); r.status != 403 || f.engine.Maintenance() == nil {
		t.Fatalf("viewer set_maintenance_mode: %d %s", r.status, r.body)
	}
	recs, _ = f.ctl.CommandHistory(control.CommandHistoryOptions{Limit: 1})
	if recs[0].Actor != "alice-viewer" || recs[0].Result != control.ResultRefused || recs[0].Status != 403 {
		t.Fatalf("viewer's refusal audit %+v", recs[0])
	}
	if r := post(vc, vcsrf, `{"action":"get_command_history","data":{"limit":5}}`); r.status != 200 {
		t.Fatalf("viewer get_command_history: %d", r.status)
	}
	if r := f.do("GET", "/dashboard", nil, "Cookie: "+vc); !strings.Contains(r.body, `content="VIEWER"`) {
		t.Fatal("the viewer's page does not say VIEWER")
	}
	// Status once, for a page that has no stream yet.
	r = f.do("GET", "/dashboard/api/status", nil, "Cookie: "+vc)
	var ev Event
	if r.status != 200 || json.Unmarshal([]byte(r.body), &ev) != nil || ev.Status == nil || !ev.Status.Maintenance.Enabled || ev.Version != "test" {
		t.Fatalf("api/status: %d %s", r.status, r.body)
	}
	checkHeaders(t, "api/status", r)
	if r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("api/status Cache-Control %q", r.header.Get("Cache-Control"))
	}
	for _, p := range []struct{ method, path string }{{"GET", "/dashboard/api/action"}, {"POST", "/dashboard/events"}, {"PUT", "/dashboard"}} {
		if r := f.do(p.method, p.path, nil, "Cookie: "+c); r.status != 405 {
			t.Errorf("%s %s: %d", p.method, p.path, r.status)
		}
	}
	if r := f.do("GET", "/dashboard/nope", nil); r.status != 404 {
		t.Errorf("unknown page: %d", r.status)
	}
}

func TestOptionsValidate(t *testing.T) {
	f := newFixture(t)
	for _, o := range []Options{
		{},
		{Control: f.ctl, Interval: 6 * time.Second},
		{Control: f.ctl, Interval: time.Millisecond},
		{Control: f.ctl, MaxClients: -1},
		{Control: f.ctl, Prefix: "dashboard"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v): no error", o)
		}
	}
	d, err := New(Options{Control: f.ctl})
	if err != nil {
		t.Fatal(err)
	}
	if o := d.Options(); o.Interval != 2*time.Second || o.MaxClients != 20 || o.Prefix != "/dashboard" {
		t.Fatalf("defaults %+v", o)
	}
}
