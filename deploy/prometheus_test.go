package deploy

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"sigs.k8s.io/yaml"
)

// ruleFile is the part of a Prometheus rule file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	} `json:"groups"`
}

type rule struct {
	Record      string            `json:"record"`
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	var f ruleFile
	if err := yaml.UnmarshalStrict([]byte(readFile(t, "prometheus/rules.yml")), &f); err != nil {
		t.Fatalf("prometheus/rules.yml: %v", err)
	}
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

func TestPromtoolCheckConfig(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	// Also checks rules.yml, which prometheus.yml names.
	out := run(t, promtool, "check", "config", "prometheus/prometheus.yml")
	if !strings.Contains(out, "1 rule files found") {
		t.Fatalf("promtool check config did not load rules.yml:\n%s", out)
	}
}

func TestPromtoolCheckRules(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	run(t, promtool, "check", "rules", "prometheus/rules.yml")
}

// The alert unit tests of rules_test.yml.
func TestPromtoolTestRules(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	run(t, promtool, "test", "rules", "prometheus/rules_test.yml")
}

// The alerts mirror sockmon's default alert rules (control/alerts.go) and
// carry what Alertmanager and the on-call engineer need; every runbook link
// points at a section of deploy/README.md; rules_test.yml tests each alert.
func TestAlertRulesMirrorTheBuiltInDefaults(t *testing.T) {
	want := map[string]struct {
		severity, forDur string
		exprHas          []string
	}{
		"SockmonDown":          {"critical", "1m", []string{`up{job="sockmon"} == 0`}},
		"SockmonHighErrorRate": {"warning", "5m", []string{"instance:sockmon_message_errors:ratio_rate1m > 0.1"}},
		"SockmonHighLatency":   {"warning", "5m", []string{"instance:sockmon_message_duration_seconds:p99_rate1m > 5"}},
		"SockmonMemoryHigh":    {"critical", "5m", []string{"process_resident_memory_bytes", "instance:sockmon_memory_limit_bytes:configured > 0.9"}},
	}
	readme := readFile(t, "README.md")
	tests := readFile(t, "prometheus/rules_test.yml")
	seen := map[string]bool{}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		seen[r.Alert] = true
		w, ok := want[r.Alert]
		if !ok {
			t.Errorf("alert %s: not expected by this test; add it here and to rules_test.yml", r.Alert)
			continue
		}
		if r.Labels["severity"] != w.severity {
			t.Errorf("alert %s: severity %q, want %q", r.Alert, r.Labels["severity"], w.severity)
		}
		if r.For != w.forDur {
			t.Errorf("alert %s: for %q, want %q", r.Alert, r.For, w.forDur)
		}
		for _, s := range w.exprHas {
			if !strings.Contains(r.Expr, s) {
				t.Errorf("alert %s: expr %q does not contain %q", r.Alert, r.Expr, s)
			}
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if r.Annotations[a] == "" {
				t.Errorf("alert %s: no %s annotation", r.Alert, a)
			}
		}
		_, anchor, _ := strings.Cut(r.Annotations["runbook_url"], "#")
		if !strings.Contains(readme, "\n### "+r.Alert+"\n") || anchor != strings.ToLower(r.Alert) {
			t.Errorf("alert %s: runbook_url %q does not point at a \"### %s\" section of deploy/README.md", r.Alert, r.Annotations["runbook_url"], r.Alert)
		}
		if !strings.Contains(tests, "alertname: "+r.Alert+"\n") {
			t.Errorf("alert %s: no alert_rule_test in rules_test.yml", r.Alert)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("rules.yml has no alert %s", name)
		}
	}
}

// promQuery runs an instant query against a Prometheus server.
func promQuery(base, q string) ([]struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}, error) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, r.Error)
	}
	return r.Data.Result, nil
}

// promScalar is the value of a query that returns one series.
func promScalar(base, q string) (float64, bool) {
	res, err := promQuery(base, q)
	if err != nil || len(res) != 1 {
		return 0, false
	}
	s, _ := res[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// A real Prometheus (the Debian package), run with deploy/prometheus as
// shipped except for addresses and intervals, scrapes a real `sockmon serve`
// that holds N WebSocket clients: the target is up, sockmon_connections sums
// to N, and the recording rules compute a latency quantile from the
// histogram while the clients send messages.
//
// The substitutions on prometheus.yml: the compose service addresses
// sockmon:8081 and alertmanager:9093 become the test's loopback addresses,
// and the 15 s intervals (and 10 s scrape timeout) become 1 s so the test
// does not wait a minute.
func TestPrometheusScrapesSockmon(t *testing.T) {
	bin := requireTool(t, "prometheus", "prometheus")
	n := startSockmon(t, nil)

	dir := t.TempDir()
	cfg := substitute(t, "prometheus/prometheus.yml", readFile(t, "prometheus/prometheus.yml"),
		`"sockmon:8081"`, strconv.Quote(n.control),
		`"alertmanager:9093"`, strconv.Quote(freeAddr(t)),
		"scrape_interval: 15s", "scrape_interval: 1s",
		"scrape_timeout: 10s", "scrape_timeout: 1s",
		"evaluation_interval: 15s", "evaluation_interval: 1s",
	)
	writeFile(t, filepath.Join(dir, "prometheus.yml"), cfg)
	writeFile(t, filepath.Join(dir, "rules.yml"), readFile(t, "prometheus/rules.yml"))
	addr := freeAddr(t)
	base := "http://" + addr
	startDaemon(t, exec.Command(bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
	), syscall.SIGTERM)
	waitFor(t, "Prometheus to be ready", func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	const clients = 7
	conns := make([]*websocket.Conn, clients)
	for i := range conns {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+n.ws+"/ws", nil)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		conns[i] = c
	}
	// One client keeps sending echoes, so that the latency histogram moves
	// between scrapes.
	stop := make(chan struct{})
	sent := make(chan error, 1)
	go func() {
		c := conns[0]
		for id := 1; ; id++ {
			select {
			case <-stop:
				sent <- nil
				return
			case <-time.After(20 * time.Millisecond):
			}
			if err := c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"echo","id":%d,"data":"x"}`, id)); err != nil {
				sent <- err
				return
			}
			if _, _, err := c.ReadMessage(); err != nil {
				sent <- err
				return
			}
		}
	}()
	defer func() {
		close(stop)
		if err := <-sent; err != nil {
			t.Errorf("echo client: %v", err)
		}
	}()

	waitFor(t, "the sockmon target to be up", func() bool {
		resp, err := http.Get(base + "/api/v1/targets?state=active")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				ActiveTargets []struct {
					Labels    map[string]string `json:"labels"`
					ScrapeURL string            `json:"scrapeUrl"`
					Health    string            `json:"health"`
					LastError string            `json:"lastError"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&r) != nil || len(r.Data.ActiveTargets) != 1 {
			return false
		}
		tg := r.Data.ActiveTargets[0]
		return tg.Labels["job"] == "sockmon" && tg.ScrapeURL == "http://"+n.control+"/metrics" && tg.Health == "up"
	})
	waitFor(t, fmt.Sprintf("sum(sockmon_connections) = %d in Prometheus", clients), func() bool {
		v, ok := promScalar(base, `sum(sockmon_connections{job="sockmon"})`)
		return ok && v == clients
	})
	if v, ok := promScalar(base, `sockmon_connections{job="sockmon",auth="anonymous"}`); !ok || v != clients {
		t.Errorf(`sockmon_connections{auth="anonymous"} = %v (found %v), want %d`, v, ok, clients)
	}
	if v, ok := promScalar(base, `up{job="sockmon"}`); !ok || v != 1 {
		t.Errorf(`up{job="sockmon"} = %v (found %v), want 1`, v, ok)
	}

	// The recording rules run without error and yield a p99 from the
	// histogram of the echoes.
	waitFor(t, "job:sockmon_message_duration_seconds:p99_rate5m to have a value", func() bool {
		v, ok := promScalar(base, `job:sockmon_message_duration_seconds:p99_rate5m{job="sockmon"}`)
		return ok && !math.IsNaN(v) && v > 0 && v < 1
	})
	waitFor(t, "every rule evaluated without error", func() bool {
		resp, err := http.Get(base + "/api/v1/rules")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name      string `json:"name"`
						Health    string `json:"health"`
						LastError string `json:"lastError"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&r) != nil {
			return false
		}
		total := 0
		for _, g := range r.Data.Groups {
			for _, rl := range g.Rules {
				if rl.Health != "ok" {
					return false
				}
				total++
			}
		}
		return total == len(loadRules(t))
	})
	// The memory-limit series exists for the node, so SockmonMemoryHigh can
	// compare against it.
	if v, ok := promScalar(base, `instance:sockmon_memory_limit_bytes:configured{job="sockmon"}`); !ok || v != 1<<30 {
		t.Errorf("instance:sockmon_memory_limit_bytes:configured = %v (found %v), want 1GiB", v, ok)
	}
}

var ruleConstRE = regexp.MustCompile(`\* 0 \+ (\d+)`)

// memoryLimitInRules is the memory limit set in rules.yml.
func memoryLimitInRules(t *testing.T) int64 {
	t.Helper()
	for _, r := range loadRules(t) {
		if r.Record == "instance:sockmon_memory_limit_bytes:configured" {
			m := ruleConstRE.FindStringSubmatch(r.Expr)
			if m == nil {
				t.Fatalf("instance:sockmon_memory_limit_bytes:configured: no constant in %q", r.Expr)
			}
			v, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatal("rules.yml records no instance:sockmon_memory_limit_bytes:configured")
	return 0
}
