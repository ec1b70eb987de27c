package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const checkTestAdminSecret = "check-test-admin-secret-0123456789abcdef"

// runCheckBin runs `sockmon check args...` as Nagios would: a separate
// process, its exit code, stdout and stderr apart. env adds to an
// environment without any SOCKMON_ADMIN_TOKEN of the caller's.
func runCheckBin(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	bin, err := buildSockmon()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	cmd := exec.Command(bin, append([]string{"check"}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOCKMON_ADMIN_TOKEN=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	if errb.Len() > 0 {
		t.Errorf("sockmon check %v wrote to stderr (plugins use stdout only): %s", args, errb.String())
	}
	return code, out.String(), errb.String()
}

// startChecked starts `sockmon serve` with an admin secret and waits until
// it accepts clients; it returns the WebSocket and control addresses.
func startChecked(t *testing.T, args ...string) (wsAddr, ctlAddr string) {
	t.Helper()
	_, wsAddr, ctlAddr = startServeEnv(t, []string{"SOCKMON_ADMIN_SECRET=" + checkTestAdminSecret}, append([]string{"--drain-delay", "0"}, args...)...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + ctlAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return wsAddr, ctlAddr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz not 200 after 10s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// adminToken mints an admin token the way `sockmon token --admin` does.
func adminToken(t *testing.T) string {
	t.Helper()
	var out strings.Builder
	t.Setenv("SOCKMON_ADMIN_SECRET", checkTestAdminSecret)
	if rc := tokenCommand([]string{"--admin", "--sub", "nagios", "--ttl", "10m"}, &out, io.Discard); rc != 0 {
		t.Fatalf("sockmon token exited %d", rc)
	}
	return strings.TrimSpace(out.String())
}

// perf is one perfdata item.
type perf struct {
	value                     float64 // NaN-free: known reports whether it was "U"
	known                     bool
	uom, warn, crit, min, max string
}

var perfItemRE = regexp.MustCompile(`^([^=' ]+)=(U|-?[0-9.]+)(s|ms|us|%|B|KB|MB|TB|c)?;([@~:0-9.-]*);([@~:0-9.-]*);(-?[0-9.]*);(-?[0-9.]*)$`)

// parsePerf reads a plugin's output the way a Nagios-style runner does:
// the status line's text, and the perfdata of both parts (after the first
// line's "|" and after a later line's "|") by label. Every item must be
// label=value[UOM];warn;crit;min;max (the Monitoring Plugins development guidelines).
func parsePerf(t *testing.T, out string) (first string, items map[string]perf) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	first, p1, _ := strings.Cut(lines[0], " | ")
	all := p1
	for _, l := range lines[1:] {
		if _, p2, ok := strings.Cut(l, "|"); ok {
			// Nagios joins the parts without a space; the plugin supplies it.
			if !strings.HasPrefix(p2, " ") {
				t.Errorf("second perfdata part %q does not start with a space", p2)
			}
			all += p2
		}
	}
	items = map[string]perf{}
	for _, it := range strings.Fields(all) {
		m := perfItemRE.FindStringSubmatch(it)
		if m == nil {
			t.Fatalf("perfdata item %q is not label=value[UOM];warn;crit;min;max", it)
		}
		if _, dup := items[m[1]]; dup {
			t.Fatalf("perfdata label %q twice", m[1])
		}
		p := perf{known: m[2] != "U", uom: m[3], warn: m[4], crit: m[5], min: m[6], max: m[7]}
		if p.known {
			p.value, _ = strconv.ParseFloat(m[2], 64)
		}
		items[m[1]] = p
	}
	return first, items
}

func TestCheckHealthyNode(t *testing.T) {
	wsAddr, ctlAddr := startChecked(t)
	url, wsURL := "http://"+ctlAddr, "ws://"+wsAddr+"/ws"

	code, out, _ := runCheckBin(t, nil, "--url", url, "--ws-url", wsURL, "--format", "nagios")
	first, p := parsePerf(t, out)
	if code != 0 || !strings.HasPrefix(first, "SOCKMON OK - healthy, ") || strings.Count(out, "\n") != 1 {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	if len(first) > 80 {
		t.Errorf("status line of %d characters: %q", len(first), first)
	}
	rt := p["response_time"]
	if !rt.known || rt.uom != "ms" || rt.value <= 0 || rt.warn != "1000" || rt.crit != "5000" || rt.min != "0" {
		t.Errorf("response_time perfdata %+v", rt)
	}
	if e := p["error_rate"]; !e.known || e.uom != "%" || e.max != "100" {
		t.Errorf("error_rate perfdata %+v", e)
	}
	for _, step := range []string{"connect", "echo", "ping", "close", "total"} {
		if c := p["canary_"+step]; !c.known || c.uom != "ms" || c.value <= 0 {
			t.Errorf("canary_%s perfdata %+v", step, c)
		}
	}

	// The detailed view, with every level of -v: the token comes from the
	// environment and is never printed.
	tok := adminToken(t)
	code, out, _ = runCheckBin(t, []string{"SOCKMON_ADMIN_TOKEN=" + tok}, "-u", url, "--ws-url", wsURL, "--format", "nagios", "-vvv")
	first, p = parsePerf(t, out)
	if code != 0 || !strings.HasPrefix(first, "SOCKMON OK - healthy, ") || !strings.Contains(out, "\nhealth: POST "+url+"/api/health/socket: HTTP 200") ||
		!strings.Contains(out, "\nconfig: ") || !strings.Contains(out, "\n| ") {
		t.Fatalf("-vvv with a token: exit %d, output:\n%s", code, out)
	}
	if strings.Contains(out, tok) {
		t.Fatal("the admin token is in the output")
	}
	if rss := p["rss"]; !rss.known || rss.uom != "B" || rss.value <= 0 {
		t.Errorf("rss perfdata %+v", rss)
	}

	code, out, _ = runCheckBin(t, nil, "-u", url, "--ws-url", wsURL, "--format", "prometheus")
	page := []byte(out)
	if code != 0 {
		t.Fatalf("prometheus: exit %d:\n%s", code, out)
	}
	problems, err := promlint.New(bytes.NewReader(page)).Lint()
	if err != nil || len(problems) > 0 {
		t.Fatalf("promlint: %v %+v", err, problems)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(page))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, out)
	}
	for name, want := range map[string]float64{"sockmon_check_health_up": 1, "sockmon_check_canary_success": 1, "sockmon_check_health_http_status_code": 200} {
		if got := mfs[name].GetMetric()[0].GetGauge().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if n := len(mfs["sockmon_check_canary_step_duration_seconds"].GetMetric()); n != 4 {
		t.Errorf("%d canary steps in the exposition", n)
	}

	code, out, _ = runCheckBin(t, nil, "-u", url, "--ws-url", wsURL, "--format", "json")
	var doc struct {
		State    string
		ExitCode int
		Health   struct {
			HTTPStatus     int
			ResponseTimeMs float64
			Body           struct{ Status string }
		}
		Canary struct {
			OK        bool
			CloseCode int
			Steps     []struct{ Name string }
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 0 {
		t.Fatalf("json: exit %d, %v:\n%s", code, err, out)
	}
	if doc.State != "OK" || doc.ExitCode != 0 || doc.Health.HTTPStatus != 200 || doc.Health.Body.Status != "healthy" ||
		doc.Health.ResponseTimeMs <= 0 || !doc.Canary.OK || doc.Canary.CloseCode != 1000 || len(doc.Canary.Steps) != 4 {
		t.Errorf("json: %+v", doc)
	}

	code, out, _ = runCheckBin(t, nil, "-u", url)
	if code != 0 || !strings.HasPrefix(out, "OK: healthy, ") || !strings.Contains(out, "\n  health       GET ") {
		t.Errorf("text: exit %d:\n%s", code, out)
	}
}

func TestCheckMaintenance(t *testing.T) {
	wsAddr, ctlAddr := startChecked(t)
	url, wsURL := "http://"+ctlAddr, "ws://"+wsAddr+"/ws"
	tok := adminToken(t)
	req, _ := http.NewRequest("POST", url+"/api/admin/socket",
		strings.NewReader(`{"action":"set_maintenance_mode","data":{"enabled":true,"reason":"x"}}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("set_maintenance_mode: %d", resp.StatusCode)
	}
	for _, tc := range []struct {
		env   []string
		args  []string
		code  int
		first string
	}{
		{nil, nil, 1, "SOCKMON WARNING - maintenance; 0 connections"},
		// The canary's 503 is what maintenance means, not a second fault.
		{nil, []string{"--ws-url", wsURL}, 1, "SOCKMON WARNING - maintenance; "},
		{nil, []string{"--maintenance-state", "critical"}, 2, "SOCKMON CRITICAL - maintenance"},
		{nil, []string{"--maintenance-state", "ok"}, 0, "SOCKMON OK - maintenance, 0 connections"},
		{[]string{"SOCKMON_ADMIN_TOKEN=" + tok}, nil, 1, "SOCKMON WARNING - maintenance: x; "},
	} {
		code, out, _ := runCheckBin(t, tc.env, append([]string{"-u", url, "--format", "nagios"}, tc.args...)...)
		first, p := parsePerf(t, out)
		if code != tc.code || !strings.HasPrefix(first, tc.first) {
			t.Errorf("%v: exit %d, output:\n%s\nwant exit %d and %q", tc.args, code, out, tc.code, tc.first)
		}
		if c := p["connections"]; !c.known || c.value != 0 {
			t.Errorf("%v: connections perfdata %+v", tc.args, c)
		}
	}
}

func TestCheckUnhealthyByMemoryLimit(t *testing.T) {
	_, ctlAddr := startChecked(t, "--memory-limit", "1")
	code, out, _ := runCheckBin(t, nil, "-u", "http://"+ctlAddr, "--format", "nagios")
	first, p := parsePerf(t, out)
	if code != 2 || !strings.HasPrefix(first, "SOCKMON CRITICAL - unhealthy (") || !strings.Contains(first, "memory_over_limit") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	if rt := p["response_time"]; !rt.known {
		t.Errorf("an unhealthy node still answered: response_time %+v", rt)
	}
	// Docker's HEALTHCHECK takes 0 and 1 only (deploy/Dockerfile).
	if code, _, _ := runCheckBin(t, nil, "-u", "http://"+ctlAddr, "--exit-codes", "docker"); code != 1 {
		t.Fatalf("--exit-codes docker on an unhealthy node: exit %d, want 1", code)
	}
}

func TestCheckDownNode(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	code, out, _ := runCheckBin(t, nil, "-u", "http://"+addr, "--ws-url", "ws://"+addr+"/ws", "--format", "nagios")
	first, p := parsePerf(t, out)
	if code != 2 || !strings.HasPrefix(first, "SOCKMON CRITICAL - cannot reach http://"+addr+"/api/health/socket: ") ||
		!strings.Contains(first, "connection refused") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	for _, l := range []string{"response_time", "connections", "canary_connect"} {
		if p[l].known || p[l].uom != "" {
			t.Errorf("%s of a node that is down: %+v, want U", l, p[l])
		}
	}
}

// delayProxy forwards TCP connections to target and holds each answer
// back for delay before the first byte. It stops with the test.
func delayProxy(t *testing.T, target string, delay time.Duration) string {
	return tcpProxy(t, target, func(dst, src net.Conn, toClient bool, done <-chan struct{}) {
		if toClient {
			select {
			case <-time.After(delay):
			case <-done:
				return
			}
		}
		_, _ = io.Copy(dst, src)
	})
}

func TestCheckSlowNode(t *testing.T) {
	_, ctlAddr := startChecked(t)
	slow := "http://" + delayProxy(t, ctlAddr, 300*time.Millisecond)
	for _, tc := range []struct {
		args  []string
		code  int
		first string
	}{
		{[]string{"-w", "100", "-c", "5000"}, 1, "SOCKMON WARNING - response_time "},
		{[]string{"--warning", "100", "--critical", "200"}, 2, "SOCKMON CRITICAL - response_time "},
		{[]string{"-w", "@0:100"}, 0, "SOCKMON OK - healthy"},
	} {
		code, out, _ := runCheckBin(t, nil, append([]string{"-u", slow, "--format", "nagios"}, tc.args...)...)
		first, p := parsePerf(t, out)
		if code != tc.code || !strings.HasPrefix(first, tc.first) {
			t.Errorf("%v: exit %d, output:\n%s\nwant exit %d and %q", tc.args, code, out, tc.code, tc.first)
		}
		if rt := p["response_time"]; !rt.known || rt.value < 300 {
			t.Errorf("%v: response_time %+v, want at least the proxy's 300 ms", tc.args, rt)
		}
	}

	// Past -t: UNKNOWN as the issue asks, CRITICAL on request.
	stalled := "http://" + delayProxy(t, ctlAddr, time.Minute)
	for _, tc := range []struct {
		args  []string
		code  int
		first string
	}{
		{[]string{"-t", "0.5"}, 3, "SOCKMON UNKNOWN - no health answer within the 500ms timeout from " + stalled},
		{[]string{"--timeout", "0.5", "--timeout-state", "critical"}, 2, "SOCKMON CRITICAL - no health answer within the 500ms timeout"},
	} {
		start := time.Now()
		code, out, _ := runCheckBin(t, nil, append([]string{"-u", stalled, "--format", "nagios"}, tc.args...)...)
		first, p := parsePerf(t, out)
		if code != tc.code || !strings.HasPrefix(first, tc.first) {
			t.Errorf("%v: exit %d, output:\n%s\nwant exit %d and %q", tc.args, code, out, tc.code, tc.first)
		}
		if p["response_time"].known {
			t.Errorf("%v: response_time known after a timeout: %+v", tc.args, p["response_time"])
		}
		if el := time.Since(start); el > 20*time.Second {
			t.Errorf("%v: the check took %s", tc.args, el)
		}
	}
}

// Arguments: help and version exit 3 on stdout; every mistake is an
// UNKNOWN status line on stdout; no flag takes a token.
func TestCheckArguments(t *testing.T) {
	env := func(k string) string { return map[string]string{"SET": "tok"}[k] }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-h"}, "Usage: sockmon check --url"},
		{[]string{"--help"}, "-t expiring UNKNOWN"},
		{[]string{"-V"}, "sockmon check " + version},
		{[]string{"--version"}, "sockmon check " + version},
		{nil, "SOCKMON UNKNOWN - --url is required"},
		{[]string{"-u", "http://h:8081", "--token", "abc"}, "SOCKMON UNKNOWN - flag provided but not defined: -token"},
		{[]string{"-u", "http://h:8081", "--token-env", "UNSET"}, "SOCKMON UNKNOWN - --token-env: $UNSET is empty or not set"},
		{[]string{"-u", "http://h:8081", "--ws-token-env", "UNSET"}, "SOCKMON UNKNOWN - --ws-token-env"},
		{[]string{"-u", "http://h:8081", "-w", "20:10"}, "SOCKMON UNKNOWN - invalid value \"20:10\" for flag -w"},
		{[]string{"-u", "http://h:8081", "--critical-p99", "x"}, "SOCKMON UNKNOWN - invalid value"},
		{[]string{"-u", "http://h:8081", "-t", "0"}, "SOCKMON UNKNOWN - invalid value \"0\" for flag -t"},
		{[]string{"-u", "http://h:8081", "--timeout-state", "warning"}, "SOCKMON UNKNOWN - --timeout-state warning"},
		{[]string{"-u", "http://h:8081", "--maintenance-state", "bad"}, "SOCKMON UNKNOWN - invalid value"},
		{[]string{"-u", "http://h:8081", "--format", "xml"}, "SOCKMON UNKNOWN - --format"},
		{[]string{"-u", "http://h:8081", "extra"}, "SOCKMON UNKNOWN - unexpected argument \"extra\""},
		{[]string{"-u", "h:8081"}, "SOCKMON UNKNOWN - URL \"h:8081\""},
		{[]string{"-u", "http://h:8081", "--ws-url", "http://h:8080/ws"}, "SOCKMON UNKNOWN - WebSocket URL"},
		{[]string{"-u", "http://h:8081", "--verbose=4"}, "\"4\" is not a level 0-3"},
	} {
		var out bytes.Buffer
		code := runCheck(context.Background(), tc.args, &out, env)
		if code != 3 || !strings.Contains(out.String(), tc.want) {
			t.Errorf("sockmon check %v: exit %d, output %q; want exit 3 and %q", tc.args, code, out.String(), tc.want)
		}
	}
}

// -vv and -vvv count like getopt's, and --verbose=N sets the level.
func TestCheckVerbosityFlags(t *testing.T) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"healthy","details":{"connections":{"total":1}}}`)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	url := "http://" + ln.Addr().String()
	for args, level := range map[string]int{"": 0, "-v": 1, "-vv": 2, "-v -v": 2, "-vvv": 3, "--verbose=3": 3, "--verbose=1": 1} {
		var out bytes.Buffer
		a := append([]string{"-u", url, "--format", "nagios"}, strings.Fields(args)...)
		if code := runCheck(context.Background(), a, &out, func(string) string { return "" }); code != 0 {
			t.Fatalf("%s: exit %d: %s", args, code, out.String())
		}
		// Level 1 adds the message rate to the line, 2 the long output,
		// 3 the configuration.
		s, got := out.String(), 0
		first, _, _ := strings.Cut(s, "\n")
		if strings.Contains(first, " msg/min") {
			got = 1
		}
		if strings.Contains(s, "\nhealth: ") {
			got = 2
		}
		if strings.Contains(s, "\nconfig: ") {
			got = 3
		}
		if got != level {
			t.Errorf("%q: output of level %d, want %d:\n%s", args, got, level, s)
		}
	}
}
