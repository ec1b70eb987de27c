package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/sockmon/sockmon/control"
)

// The Alerts page in a real browser against a real `sockmon serve` whose
// engine evaluates every 100 ms: a rule created on the page (connections >
// -1, so it holds at once) fires and is listed as firing on the page and
// the overview; it is acknowledged from the page, which then shows who
// acknowledged it and the history's acknowledged entry; the history's
// level and rule filters; a silence is created and expired; the command
// history offers the alert actions; a VIEWER sees the alerts and silences
// but no control.
func TestDashboardAlertsInBrowser(t *testing.T) {
	exe := chromiumPath(t)
	shots := os.Getenv("SOCKMON_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, ctlAddr := startServeEnv(t, []string{"SOCKMON_ADMIN_SECRET=" + dashSecret},
		"--dashboard-interval", "300ms", "--alert-interval", "100ms", "--alert-group-wait", "0")
	base := "http://" + ctlAddr + "/dashboard"
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

	signIn(t, ctx, base, adminTok)
	within(t, ctx, 15*time.Second, "overview", chromedp.WaitVisible(chromedp.ID("ov-connections")))
	waitJS(t, ctx, 10*time.Second, "the overview's alerts panel", `document.getElementById('ov-alerts-sub') && document.getElementById('ov-alerts-sub').textContent.startsWith('0 firing')`)
	if txt := eval[string](t, ctx, `document.getElementById('ov-alerts').textContent`); strings.Contains(txt, "engine") {
		t.Fatalf("the overview's alerts panel says %q", txt)
	}

	// The rule form offers every level the API accepts.
	goPage(t, ctx, base, "alerts", "#rules-rows tr[data-rule]")
	within(t, ctx, 10*time.Second, "new rule form", chromedp.Click(chromedp.ID("new-rule")), chromedp.WaitVisible(chromedp.ID("rule-level")))
	if lv := eval[string](t, ctx, `[...document.querySelectorAll('#rule-level option')].map(o => o.value).join(',')`); lv != "info,warning,critical,emergency" {
		t.Fatalf("the rule form's levels: %s", lv)
	}
	within(t, ctx, 10*time.Second, "create a rule that fires",
		chromedp.SetValue(chromedp.ID("rule-name"), "browser_conns"), chromedp.SetValue(chromedp.ID("rule-metric"), "connections"),
		chromedp.SetValue(chromedp.ID("rule-operator"), ">"), chromedp.SetValue(chromedp.ID("rule-threshold"), "-1"),
		chromedp.SetValue(chromedp.ID("rule-for"), "0"), chromedp.SetValue(chromedp.ID("rule-level"), "critical"),
		chromedp.Click(chromedp.ID("confirm-ok")), chromedp.WaitVisible(chromedp.CSS(`#rules-rows tr[data-rule="browser_conns"]`)))
	row := `document.querySelector('#alerts-rows tr[data-alert="browser_conns"]')`
	waitJS(t, ctx, 10*time.Second, "the alert is listed as firing, unacknowledged",
		row+` && `+row+`.dataset.state === 'firing' && `+row+`.querySelector('.pill[data-status="critical"]') && `+row+`.querySelector('td.ack').textContent === '–' && `+row+`.querySelector('button[data-ack="browser_conns"]')`)
	screenshot(t, ctx, shots, "10-alerts-firing")

	// The overview lists it among the firing alerts.
	goPage(t, ctx, base, "overview", `#ov-alerts tr[data-alert="browser_conns"]`)
	if sub := eval[string](t, ctx, `document.getElementById('ov-alerts-sub').textContent`); !strings.HasPrefix(sub, "1 firing") {
		t.Fatalf("the overview's alerts panel: %q", sub)
	}

	// Acknowledge it from the page: acknowledged by alice, no button.
	goPage(t, ctx, base, "alerts", `button[data-ack="browser_conns"]`)
	within(t, ctx, 10*time.Second, "acknowledge",
		chromedp.Click(chromedp.CSS(`button[data-ack="browser_conns"]`)), chromedp.WaitVisible(chromedp.ID("ack-comment")),
		chromedp.SetValue(chromedp.ID("ack-comment"), "on it"), chromedp.Click(chromedp.ID("confirm-ok")))
	waitJS(t, ctx, 10*time.Second, "acknowledged by alice",
		row+` && `+row+`.querySelector('td.ack').textContent.startsWith('alice, ') && !`+row+`.querySelector('button[data-ack]')`)
	waitJS(t, ctx, 10*time.Second, "the history's acknowledged entry",
		`[...document.querySelectorAll('#alert-history-rows tr[data-kind="acknowledged"]')].some(r => r.textContent.includes('browser_conns') && r.textContent.includes('alice'))`)
	if n := eval[int](t, ctx, `document.querySelectorAll('#alert-history-rows tr[data-kind="firing"]').length`); n < 1 {
		t.Fatal("the history has no firing entry")
	}
	screenshot(t, ctx, shots, "11-alerts-acknowledged")

	// The history's filters: level info has none of it, critical and the
	// rule's name have it.
	within(t, ctx, 10*time.Second, "history level info",
		chromedp.SetValue(chromedp.ID("ah-level"), "info"), chromedp.Click(chromedp.ID("ah-apply")))
	waitJS(t, ctx, 10*time.Second, "no info entry", `!document.querySelector('#alert-history-rows tr[data-seq]') && document.querySelector('#alert-history-rows .empty')`)
	within(t, ctx, 10*time.Second, "history level critical, rule browser_conns",
		chromedp.SetValue(chromedp.ID("ah-level"), "critical"), chromedp.SetValue(chromedp.ID("ah-name"), "browser_conns"), chromedp.Click(chromedp.ID("ah-apply")))
	waitJS(t, ctx, 10*time.Second, "the rule's entries only",
		`(() => { const r = [...document.querySelectorAll('#alert-history-rows tr[data-seq]')]; return r.length >= 2 && r.every(x => x.textContent.includes('browser_conns')); })()`)
	within(t, ctx, 10*time.Second, "history rule nope",
		chromedp.SetValue(chromedp.ID("ah-level"), ""), chromedp.SetValue(chromedp.ID("ah-name"), "nope"), chromedp.Click(chromedp.ID("ah-apply")))
	waitJS(t, ctx, 10*time.Second, "no entry of rule nope", `!document.querySelector('#alert-history-rows tr[data-seq]')`)

	// Paging: twelve more rules fire and are acknowledged (through the
	// page's API, 24 more entries); the first page holds 25 entries, Older
	// shows the older ones, none twice, and Newer goes back.
	eval[bool](t, ctx, `(async () => {
		const call = (action, data) => fetch('/dashboard/api/action', {method: 'POST', headers: {'Content-Type': 'application/json',
			'X-CSRF-Token': document.querySelector('meta[name="sockmon-csrf"]').content}, body: JSON.stringify({action, data})}).then(r => r.json());
		for (let i = 0; i < 12; i++) await call('configure_alert', {name: 'page_' + i, metric: 'connections', operator: '>', threshold: -1, forMs: 0, level: 'info'});
		for (let n = 0; n < 100; n++) {
			const r = await call('get_alerts', {});
			if (r.data.alerts.filter(a => a.name.startsWith('page_') && a.state === 'firing').length === 12) break;
			await new Promise(res => setTimeout(res, 100));
		}
		for (let i = 0; i < 12; i++) { const r = await call('acknowledge_alert', {name: 'page_' + i}); if (!r.success) throw new Error(JSON.stringify(r)); }
		return true;
	})()`)
	eval[bool](t, ctx, `(document.getElementById('ah-name').value = '') === ''`)
	within(t, ctx, 10*time.Second, "history without filters", chromedp.Click(chromedp.ID("ah-apply")))
	waitJS(t, ctx, 10*time.Second, "a full first page", `document.querySelectorAll('#alert-history-rows tr[data-seq]').length === 25 && !document.getElementById('ah-older').disabled && document.getElementById('ah-newer').disabled`)
	page1 := eval[string](t, ctx, `[...document.querySelectorAll('#alert-history-rows tr[data-seq]')].map(r => r.dataset.seq).join(',')`)
	within(t, ctx, 10*time.Second, "older", chromedp.Click(chromedp.ID("ah-older")))
	waitJS(t, ctx, 10*time.Second, "the older page", `document.getElementById('ah-page').textContent === 'page 2' && document.querySelector('#alert-history-rows tr[data-seq]')`)
	page2 := eval[string](t, ctx, `[...document.querySelectorAll('#alert-history-rows tr[data-seq]')].map(r => r.dataset.seq).join(',')`)
	min1 := 1 << 30
	for _, f := range strings.Split(page1, ",") {
		n, _ := strconv.Atoi(f)
		min1 = min(min1, n)
	}
	for _, f := range strings.Split(page2, ",") {
		if n, _ := strconv.Atoi(f); n >= min1 || n <= 0 {
			t.Fatalf("older page %s after first page %s", page2, page1)
		}
	}
	if len(strings.Split(page1, ","))+len(strings.Split(page2, ",")) < 26 {
		t.Fatalf("pages %s and %s: want at least 26 entries", page1, page2)
	}
	within(t, ctx, 10*time.Second, "newer", chromedp.Click(chromedp.ID("ah-newer")))
	waitJS(t, ctx, 10*time.Second, "back to the first page", `document.getElementById('ah-page').textContent === 'page 1' && document.querySelectorAll('#alert-history-rows tr[data-seq]').length === 25`)

	// A silence, created and expired from the page.
	within(t, ctx, 10*time.Second, "new silence",
		chromedp.Click(chromedp.ID("new-silence")), chromedp.WaitVisible(chromedp.ID("sil-name")),
		chromedp.SetValue(chromedp.ID("sil-name"), "browser_conns"), chromedp.SetValue(chromedp.ID("sil-duration"), "30"),
		chromedp.SetValue(chromedp.ID("sil-comment"), "browser test"), chromedp.Click(chromedp.ID("confirm-ok")))
	sil := `document.querySelector('#silences-rows tr[data-silence]')`
	waitJS(t, ctx, 10*time.Second, "the silence is listed, active",
		sil+` && `+sil+`.dataset.state === 'active' && `+sil+`.textContent.includes('rule=browser_conns') && `+sil+`.textContent.includes('browser test') && `+sil+`.querySelector('button[data-expire]')`)
	screenshot(t, ctx, shots, "12-alerts-silence")
	within(t, ctx, 10*time.Second, "expire the silence",
		chromedp.Click(chromedp.CSS(`#silences-rows button[data-expire]`)), chromedp.WaitVisible(chromedp.ID("confirm-ok")), chromedp.Click(chromedp.ID("confirm-ok")))
	waitJS(t, ctx, 10*time.Second, "the silence is expired",
		sil+` && `+sil+`.dataset.state === 'expired' && `+sil+`.textContent.includes('expired by alice') && !document.querySelector('#silences-rows button[data-expire]')`)

	// The command history offers the alert actions and filters on them.
	goPage(t, ctx, base, "history", "#history-rows tr[data-seq]")
	if opts := eval[string](t, ctx, `[...document.querySelectorAll('#h-action option')].map(o => o.value).join(',')`); !strings.Contains(opts, "acknowledge_alert") ||
		!strings.Contains(opts, "silence_alerts") || !strings.Contains(opts, "expire_silence") || !strings.Contains(opts, "get_alert_history") {
		t.Fatalf("the command history's actions: %s", opts)
	}
	within(t, ctx, 10*time.Second, "filter acknowledge_alert",
		chromedp.SetValue(chromedp.ID("h-action"), "acknowledge_alert"))
	eval[bool](t, ctx, `document.getElementById('h-action').dispatchEvent(new Event('change'))`)
	within(t, ctx, 10*time.Second, "apply the filter", chromedp.Click(chromedp.CSS(`#page form.toolbar button[type="submit"]`)))
	waitJS(t, ctx, 10*time.Second, "only acknowledge_alert",
		`(() => { const r = [...document.querySelectorAll('#history-rows tr[data-seq]')]; return r.length === 13 && r.every(x => x.textContent.includes('acknowledge_alert') && x.textContent.includes('alice')); })()`)

	// A VIEWER sees the alerts (one acknowledged, one not), who
	// acknowledged, the silences (one active), and no control.
	eval[bool](t, ctx, `(async () => {
		const call = (action, data) => fetch('/dashboard/api/action', {method: 'POST', headers: {'Content-Type': 'application/json',
			'X-CSRF-Token': document.querySelector('meta[name="sockmon-csrf"]').content}, body: JSON.stringify({action, data})}).then(r => r.json());
		const a = await call('configure_alert', {name: 'not_acked', metric: 'connections', operator: '>', threshold: -1, forMs: 0, level: 'warning'});
		const s = await call('silence_alerts', {level: 'info', durationMs: 600000, comment: 'still on'});
		if (!a.success || !s.success) throw new Error(JSON.stringify([a, s]));
		return true;
	})()`)
	within(t, ctx, 10*time.Second, "sign out", chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("token")))
	signIn(t, ctx, base, viewerTok)
	within(t, ctx, 15*time.Second, "viewer overview", chromedp.WaitVisible(chromedp.ID("ov-connections")))
	goPage(t, ctx, base, "alerts", `#alerts-rows tr[data-alert="browser_conns"]`)
	waitJS(t, ctx, 10*time.Second, "viewer: the alert acknowledged by alice, one firing unacknowledged, an active silence",
		row+`.querySelector('td.ack').textContent.startsWith('alice, ') && document.querySelector('#alerts-rows tr[data-alert="not_acked"][data-state="firing"]') &&
		document.querySelector('#silences-rows tr[data-state="active"]') && document.querySelector('#silences-rows tr[data-state="expired"]') && document.querySelector('#alert-history-rows tr[data-seq]')`)
	time.Sleep(500 * time.Millisecond)
	if n := eval[int](t, ctx, `document.querySelectorAll('[data-control], #new-rule, #new-silence, button[data-ack], button[data-expire], button.danger').length`); n != 0 {
		t.Fatalf("viewer sees %d controls on the alerts page", n)
	}
	screenshot(t, ctx, shots, "13-viewer-alerts")
}
