package alerts

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockmon/sockmon/netcore/wstest"
)

// alertmanagerBin finds Debian's prometheus-alertmanager. Under CI=true a
// missing binary fails the test (make test-deps installs it); elsewhere it
// skips.
func alertmanagerBin(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"prometheus-alertmanager", "alertmanager"} {
		if bin, err := exec.LookPath(name); err == nil {
			return bin
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("prometheus-alertmanager is not installed (CI=true): run make test-deps")
	}
	t.Skip("prometheus-alertmanager is not installed; make test-deps installs it")
	return ""
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// startAlertmanager runs a real Alertmanager on 127.0.0.1 with a temporary
// storage directory; it sends its own notifications (resolved ones too) to
// hookURL at once.
func startAlertmanager(t *testing.T, hookURL string) string {
	t.Helper()
	bin := alertmanagerBin(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %s
        send_resolved: true
`, hookURL)
	if err := os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "alertmanager.yml"), "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://" + addr
	wstest.WaitFor(t, "alertmanager ready", func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return base
}

// A real Alertmanager receives the pushed alert: its API lists it as
// active while it fires, it drops it from the list once the pushed endsAt
// has passed, and it sends its own resolved notification.
func TestAlertmanagerPush(t *testing.T) {
	hook := newReceiver(t)
	am := startAlertmanager(t, hook.srv.URL)
	r := newRig(t, func(c *Config) {
		c.Now = time.Now
		c.Channels = []ChannelConfig{{Name: "alertmanager", Type: TypeAlertmanager, URLs: []string{am}}}
	})
	k := rule("sockmon_busy", "connections", ">", 0, 0, LevelCritical)
	k.Description = "someone is connected"
	r.e.SetStoredRules([]Rule{k})
	open(r.m, 1)
	r.e.Evaluate()

	type amAlert struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		Status      struct {
			State string `json:"state"`
		} `json:"status"`
		EndsAt string `json:"endsAt"`
	}
	list := func() []amAlert {
		resp, err := http.Get(am + "/api/v2/alerts?filter=alertname%3D%22sockmon_busy%22")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out []amAlert
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	wstest.WaitFor(t, "the alert in Alertmanager", func() bool { return len(list()) == 1 })
	a := list()[0]
	if a.Status.State != "active" || a.Labels["severity"] != "critical" || a.Labels["instance"] != "node1" ||
		a.Annotations["description"] != "someone is connected" {
		t.Fatalf("alertmanager shows %+v", a)
	}
	wstest.WaitFor(t, "Alertmanager's own firing notification", func() bool {
		p := hook.webhooks(t)
		return len(p) > 0 && p[0].Status == "firing" && p[0].Alerts[0].Labels["alertname"] == "sockmon_busy"
	})

	closeConns(r.m, 1)
	r.e.Evaluate()
	wstest.WaitFor(t, "the alert resolved in Alertmanager", func() bool { return len(list()) == 0 })
	wstest.WaitFor(t, "Alertmanager's resolved notification", func() bool {
		p := hook.webhooks(t)
		return len(p) > 0 && p[len(p)-1].Status == "resolved"
	})
	// The resolved alert is re-sent for a while (its API asks for it).
	before := len(r.e.Alerts())
	r.e.Evaluate()
	if before != 1 {
		t.Fatalf("resolved alert not listed: %d", before)
	}
}
