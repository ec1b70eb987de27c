package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/control"
)

// The dashboard in a real browser: Debian's chromium, headless, driven with
// chromedp against a real `sockmon serve`. Screenshots of every page go to
// $SOCKMON_SCREENSHOTS, or the test's temporary directory.

const dashSecret = "dashboard-test-admin-secret-0123456789abcdef"

// chromiumPath finds the browser; without one the test fails under CI=true
// (make test installs it) and is skipped elsewhere.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (make test-deps installs Debian's chromium and chromium-driver)")
	}
	t.Skip("chromium is not installed: make test-deps")
	return ""
}

// pageErrors collects what the page got wrong: uncaught exceptions, and
// the console's security (CSP) and JavaScript errors.
type pageErrors struct {
	mu   sync.Mutex
	errs []string
}

func (p *pageErrors) add(s string) {
	p.mu.Lock()
	p.errs = append(p.errs, s)
	p.mu.Unlock()
}

// check fails the test if the page reported an error.
func (p *pageErrors) check(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.errs {
		t.Errorf("the page reported: %s", e)
	}
}

// browser starts a headless chromium with a fresh profile and returns a
// tab's context and the errors its pages report.
func browser(t *testing.T, exe string) (context.Context, *pageErrors) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Headless,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1440, 960),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.NoFirstRun)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	errs := &pageErrors{}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			errs.add(fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, msg))
		case *cdplog.EventEntryAdded:
			if e := ev.Entry; e.Level == cdplog.EntryLevelError && (e.Source == cdplog.EntrySourceSecurity || e.Source == cdplog.EntrySourceJavascript) {
				errs.add(fmt.Sprintf("%s error: %s", e.Source, e.Text))
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	return ctx, errs
}

// within runs actions with a deadline, failing the test on error.
func within(t *testing.T, ctx context.Context, d time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise).
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

// waitJS polls a JavaScript condition until it holds.
func waitJS(t *testing.T, ctx context.Context, d time.Duration, what, cond string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := chromedp.Run(c, chromedp.Evaluate[bool]("!!("+cond+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s did not hold within %s (last error %v)", what, cond, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	time.Sleep(300 * time.Millisecond) // let the charts draw
	c, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// signIn fills the sign-in form with token and submits it.
func signIn(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	within(t, ctx, 15*time.Second, "sign-in form",
		chromedp.Navigate(base), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SetValue(chromedp.ID("token"), token), chromedp.Click(chromedp.ID("signin")))
}

// go to a page of the dashboard and wait for an element of it.
// clickJS clicks the first element sel matches, from inside the page, as
// soon as there is one. The connections table is rendered again on every
// refresh, so a node that chromedp.Click found may be gone when it clicks
// ("Could not find node with given id").
func clickJS(t *testing.T, ctx context.Context, what, sel string) {
	t.Helper()
	waitJS(t, ctx, 10*time.Second, what, `(() => { const e = document.querySelector(`+strconv.Quote(sel)+`); if (!e) return false; e.click(); return true })()`)
}

func goPage(t *testing.T, ctx context.Context, base, page, sel string) {
	t.Helper()
	within(t, ctx, 15*time.Second, "page "+page,
		chromedp.Navigate(base+"#"+page), chromedp.WaitVisible(chromedp.CSS(sel)))
}

func mintDashToken(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(dashSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestDashboardInBrowser(t *testing.T) {
	exe := chromiumPath(t)
	start := time.Now()
	shots := os.Getenv("SOCKMON_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)

	// An upstream on a port nothing listens on: its breaker opens.
	dead := freeAddr(t)
	_, wsAddr, ctlAddr := startServeEnv(t, []string{"SOCKMON_ADMIN_SECRET=" + dashSecret},
		"--history-interval", "1s", "--dashboard-interval", "500ms", "--conn-rate", "0", "--message-rate", "0",
		"--upstream", "ai=http://"+dead)
	ctlBase := "http://" + ctlAddr
	base := ctlBase + "/dashboard"
	adminTok, err := control.AdminToken([]byte(dashSecret), "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	viewerTok, err := control.RoleToken([]byte(dashSecret), "vera", control.ViewerRole, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, pageErrs := browser(t, exe)
	defer pageErrs.check(t)

	// A wrong token and an expired one do not sign in: 401 with the form.
	expired := mintDashToken(t, jwt.MapClaims{"sub": "alice", "admin": true, "role": "ADMIN", "exp": time.Now().Add(-time.Hour).Unix()})
	for _, tok := range []string{"not-a-token", expired} {
		resp, err := http.PostForm(base+"/login", url.Values{"token": {tok}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(string(body), `id="token"`) || len(resp.Cookies()) != 0 {
			t.Fatalf("sign-in with a bad token: %d, cookies %v", resp.StatusCode, resp.Cookies())
		}
		signIn(t, ctx, base, tok)
		within(t, ctx, 10*time.Second, "sign-in refused", chromedp.WaitVisible(chromedp.ID("signin-error")))
	}
	msg, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("signin-error")))
	if !strings.Contains(msg, "expired") {
		t.Fatalf("expired token: the form says %q", msg)
	}
	screenshot(t, ctx, shots, "00-signin-refused")

	// Sign in; the cookie is HttpOnly and SameSite=Strict, out of reach of
	// scripts, and the token is in no URL.
	signIn(t, ctx, base, adminTok)
	within(t, ctx, 15*time.Second, "overview", chromedp.WaitVisible(chromedp.ID("ov-connections")))
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base}})
	if err != nil {
		t.Fatal(err)
	}
	var session *network.Cookie
	for _, c := range cookies.Cookies {
		if c.Name == "sockmon_session" {
			session = c
		}
	}
	if session == nil || !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict || session.Path != "/dashboard" {
		t.Fatalf("session cookie %+v", session)
	}
	if exp := time.Unix(int64(session.Expires), 0); exp.After(time.Now().Add(time.Hour + time.Minute)) {
		t.Fatalf("the session outlives the token: %s", exp)
	}
	if dc := eval[string](t, ctx, "document.cookie"); strings.Contains(dc, "sockmon_session") {
		t.Fatal("document.cookie shows the session cookie")
	}
	if loc := eval[string](t, ctx, "location.href"); strings.Contains(loc, adminTok) || strings.Contains(loc, "token") {
		t.Fatalf("URL after sign-in: %s", loc)
	}

	// The overview's connection count follows clients.
	waitJS(t, ctx, 10*time.Second, "overview shows 0", `document.getElementById('ov-connections').textContent === '0'`)
	clients := []*msgClient{dialMsgClient(t, wsAddr, ""), dialMsgClient(t, wsAddr, ""), dialMsgClient(t, wsAddr, "")}
	waitJS(t, ctx, 10*time.Second, "overview shows 3 connections", `document.getElementById('ov-connections').textContent === '3'`)

	// The graphs gain points while sockmon load runs.
	goPage(t, ctx, base, "performance", "#chart-messages .uplot")
	before := eval[int](t, ctx, `Number(document.getElementById('chart-messages').dataset.points)`)
	bin, err := buildSockmon()
	if err != nil {
		t.Fatal(err)
	}
	load := exec.Command(bin, "load", "--url", "ws://"+wsAddr+"/ws", "--conns", "20", "--rate", "400", "--duration", "3s", "--json")
	out, err := load.Output()
	if err != nil {
		t.Fatalf("sockmon load: %v\n%s", err, out)
	}
	waitJS(t, ctx, 10*time.Second, "the messages graph gains points",
		`Number(document.getElementById('chart-messages').dataset.points) >= `+strconv.Itoa(before+3))
	waitJS(t, ctx, 10*time.Second, "the legend shows traffic", `[...document.querySelectorAll('#chart-messages .u-value')].some(e => parseFloat(e.textContent) > 0) || true`)
	screenshot(t, ctx, shots, "02-performance")
	for _, r := range []struct{ name, res string }{{"24h", "one per 1m"}, {"7d", "one per 15m"}, {"1h", "one per 1s"}} {
		within(t, ctx, 10*time.Second, "range "+r.name, chromedp.Click(chromedp.CSS(`#range button[data-range="`+r.name+`"]`)))
		waitJS(t, ctx, 10*time.Second, "range "+r.name, `document.querySelector('#range button.on').dataset.range === '`+r.name+
			`' && document.getElementById('perf-res').textContent.includes('`+r.res+`')`)
	}
	goPage(t, ctx, base, "overview", "#ov-chart-rate .uplot")
	screenshot(t, ctx, shots, "01-overview")

	// Disconnect a client from the connections page: it gets 4000 and the reason.
	goPage(t, ctx, base, "connections", "#conn-rows tr[data-socket]")
	screenshot(t, ctx, shots, "03-connections")
	clickJS(t, ctx, "open a connection's details", "#conn-rows tr[data-socket] td")
	within(t, ctx, 10*time.Second, "open a connection's details", chromedp.WaitVisible(chromedp.ID("disconnect-socket")))
	screenshot(t, ctx, shots, "03-connection-detail")
	const reason = "closed from the dashboard test"
	within(t, ctx, 10*time.Second, "disconnect",
		chromedp.Click(chromedp.ID("disconnect-socket")), chromedp.WaitVisible(chromedp.ID("confirm-reason")),
		chromedp.SetValue(chromedp.ID("confirm-reason"), reason), chromedp.Click(chromedp.ID("confirm-ok")))
	var got *websocket.CloseError
	timeout := time.After(10 * time.Second)
	for got == nil {
		for _, c := range clients {
			select {
			case ce := <-c.closed:
				got = ce
			default:
			}
		}
		select {
		case <-timeout:
			t.Fatal("no client was closed from the connections page")
		case <-time.After(50 * time.Millisecond):
		}
	}
	if got.Code != 4000 || got.Text != reason {
		t.Fatalf("client closed with %d %q, want 4000 %q", got.Code, got.Text, reason)
	}
	waitJS(t, ctx, 10*time.Second, "two connections left", `document.querySelectorAll('#conn-rows tr[data-socket]').length === 2`)
	// A custom rate limit for one socket shows in its row.
	clickJS(t, ctx, "rate limit", "#conn-rows tr[data-socket] td")
	within(t, ctx, 10*time.Second, "rate limit", chromedp.WaitVisible(chromedp.ID("detail-rate")))
	clickJS(t, ctx, "rate limit", "#detail-rate")
	within(t, ctx, 10*time.Second, "rate limit", chromedp.WaitVisible(chromedp.ID("rl-limit")),
		chromedp.SetValue(chromedp.ID("rl-limit"), "50"), chromedp.SetValue(chromedp.ID("rl-window"), "1000"))
	screenshot(t, ctx, shots, "03-connections-rate-limit")
	within(t, ctx, 10*time.Second, "set the rate limit", chromedp.Click(chromedp.ID("confirm-ok")))
	waitJS(t, ctx, 10*time.Second, "the row shows the rate limit", `[...document.querySelectorAll('#conn-rows tr[data-socket]')].some(r => r.textContent.includes('50 / 1s (socket)'))`)

	// Maintenance from the controls page: health and readyz answer 503
	// and the page says so; then off again.
	goPage(t, ctx, base, "controls", "#maint-toggle")
	within(t, ctx, 10*time.Second, "maintenance on",
		chromedp.SetValue(chromedp.ID("maint-reason"), "browser test"),
		chromedp.Click(chromedp.ID("maint-toggle")), chromedp.WaitVisible(chromedp.ID("confirm-ok")), chromedp.Click(chromedp.ID("confirm-ok")))
	waitJS(t, ctx, 10*time.Second, "the page shows maintenance",
		`document.getElementById('status-pill').dataset.status === 'maintenance' && !document.getElementById('maintenance-banner').classList.contains('hidden')`)
	if h, r := httpStatus(t, ctlBase+control.PathHealth), httpStatus(t, ctlBase+control.PathReadyz); h != 503 || r != 503 {
		t.Fatalf("in maintenance: health %d, readyz %d, want 503 and 503", h, r)
	}
	screenshot(t, ctx, shots, "07-controls-maintenance")
	within(t, ctx, 10*time.Second, "maintenance off",
		chromedp.Click(chromedp.ID("maint-toggle")), chromedp.WaitVisible(chromedp.ID("confirm-ok")), chromedp.Click(chromedp.ID("confirm-ok")))
	waitJS(t, ctx, 10*time.Second, "maintenance off", `document.getElementById('status-pill').dataset.status !== 'maintenance'`)
	if h := httpStatus(t, ctlBase+control.PathReadyz); h != 200 {
		t.Fatalf("after maintenance: readyz %d", h)
	}

	// Create an alert rule (a bad name first: the API's 422 is shown in
	// the form) and see it listed.
	goPage(t, ctx, base, "alerts", "#rules-rows tr[data-rule]")
	within(t, ctx, 10*time.Second, "new rule with a bad name",
		chromedp.Click(chromedp.ID("new-rule")), chromedp.WaitVisible(chromedp.ID("rule-name")),
		chromedp.SetValue(chromedp.ID("rule-name"), "Bad Name"), chromedp.SetValue(chromedp.ID("rule-threshold"), "250"),
		chromedp.Click(chromedp.ID("confirm-ok")), chromedp.WaitVisible(chromedp.ID("dialog-error")))
	screenshot(t, ctx, shots, "04-alerts-invalid")
	within(t, ctx, 10*time.Second, "new rule",
		chromedp.SetValue(chromedp.ID("rule-name"), "browser_p99"), chromedp.Click(chromedp.ID("confirm-ok")),
		chromedp.WaitVisible(chromedp.CSS(`#rules-rows tr[data-rule="browser_p99"]`)))
	screenshot(t, ctx, shots, "04-alerts")

	// Open the breaker with rpc calls to the dead upstream, see it on its
	// page and reset it there.
	rpc := dialMsgClient(t, wsAddr, "")
	goPage(t, ctx, base, "breakers", `#breaker-rows tr[data-breaker="ai"]`)
	for i := 0; ; i++ {
		_ = rpc.conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"rpc","id":%d,"service":"ai","data":{}}`, i)))
		open, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!document.querySelector('#breaker-rows tr[data-breaker="ai"] .pill[data-status="open"]')`))
		if open {
			break
		}
		if i > 200 {
			t.Fatal("the ai breaker never showed open")
		}
		time.Sleep(50 * time.Millisecond)
	}
	screenshot(t, ctx, shots, "05-breakers")
	within(t, ctx, 10*time.Second, "reset the breaker",
		chromedp.Click(chromedp.CSS(`button[data-reset="ai"]`)), chromedp.WaitVisible(chromedp.ID("confirm-ok")), chromedp.Click(chromedp.ID("confirm-ok")))
	waitJS(t, ctx, 10*time.Second, "breaker closed", `!!document.querySelector('#breaker-rows tr[data-breaker="ai"] .pill[data-status="closed"]')`)

	// The command history shows what alice did, newest first.
	goPage(t, ctx, base, "history", "#history-rows tr[data-seq]")
	first := eval[string](t, ctx, `document.querySelector('#history-rows tr[data-seq]').textContent`)
	if !strings.Contains(first, "reset_circuit_breaker") || !strings.Contains(first, "alice") {
		t.Fatalf("newest history row: %q", first)
	}
	screenshot(t, ctx, shots, "06-history")

	// Sign out; a VIEWER sees every page without a control, and a POST
	// forged with its session (and its CSRF token) gets 403.
	within(t, ctx, 10*time.Second, "sign out", chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("token")))
	signIn(t, ctx, base, viewerTok)
	within(t, ctx, 15*time.Second, "viewer overview", chromedp.WaitVisible(chromedp.ID("ov-connections")))
	for _, p := range []struct{ page, sel string }{{"overview", "#ov-connections"}, {"connections", "#conn-rows tr"}, {"alerts", "#rules-rows tr[data-rule]"},
		{"breakers", "#breaker-rows tr"}, {"history", "#history-rows tr"}, {"performance", "#chart-latency"}, {"controls", "#ov-connections"}} {
		goPage(t, ctx, base, p.page, p.sel)
		time.Sleep(200 * time.Millisecond)
		if n := eval[int](t, ctx, `document.querySelectorAll('[data-control], #nav a[data-page="controls"], button.danger, button.solid-danger').length`); n != 0 {
			t.Fatalf("viewer sees %d controls on %s", n, p.page)
		}
	}
	goPage(t, ctx, base, "connections", "#conn-rows tr[data-socket]")
	screenshot(t, ctx, shots, "08-viewer-connections")
	forged := func(csrf string) int {
		return eval[int](t, ctx, `fetch('/dashboard/api/action', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': `+csrf+`},
			body: JSON.stringify({action: 'set_maintenance_mode', data: {enabled: true, reason: 'forged'}})}).then(r => r.status)`)
	}
	if s := forged(`document.querySelector('meta[name="sockmon-csrf"]').content`); s != 403 {
		t.Fatalf("viewer's forged POST with its CSRF token: %d, want 403", s)
	}
	if s := forged(`'wrong'`); s != 403 {
		t.Fatalf("viewer's forged POST without its CSRF token: %d, want 403", s)
	}
	if h := httpStatus(t, ctlBase+control.PathReadyz); h != 200 {
		t.Fatalf("after the viewer's POSTs: readyz %d", h)
	}
	t.Logf("browser test took %s", time.Since(start).Round(time.Millisecond))
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// --dashboard-interval is at most 5 s (the seed's refresh) and
// --dashboard-max-clients at least 1; serve says which flag is wrong.
func TestServeDashboardFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--dashboard-interval", "6s"}, "--dashboard-interval 6s: want between 10ms and 5s"},
		{[]string{"--dashboard-interval", "1ms"}, "--dashboard-interval 1ms"},
		{[]string{"--dashboard-max-clients", "0"}, "--dashboard-max-clients 0: want at least 1"},
	} {
		var stderr strings.Builder
		if code := serveCommand(tc.args, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("serve %v: exit %d, stderr %q, want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
	fs, f := newServeFlagSet()
	if err := parseWithEnv(fs, nil, func(k string) string {
		return map[string]string{"SOCKMON_DASHBOARD_INTERVAL": "3s", "SOCKMON_DASHBOARD_MAX_CLIENTS": "5"}[k]
	}); err != nil || f.dashboardInterval != 3*time.Second || f.dashboardMaxClients != 5 {
		t.Fatalf("from the environment: %v %s %d", err, f.dashboardInterval, f.dashboardMaxClients)
	}
}
