package deploy

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestAmtoolCheckConfig(t *testing.T) {
	amtool := requireTool(t, "amtool", "prometheus-alertmanager")
	out := run(t, amtool, "check-config", "alertmanager/alertmanager.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("amtool check-config:\n%s", out)
	}
}

// Alertmanager's own router sends each severity where the file's header
// says, and every alert of rules.yml reaches a receiver that notifies
// someone besides the webhook.
func TestAlertmanagerRoutesBySeverity(t *testing.T) {
	amtool := requireTool(t, "amtool", "prometheus-alertmanager")
	receivers := func(labels ...string) string {
		args := append([]string{"config", "routes", "test", "--config.file=alertmanager/alertmanager.yml"}, labels...)
		// stdout only: amtool warns on stderr that --config.file overrides
		// the --alertmanager.url of its own configuration.
		out, err := exec.Command(amtool, args...).Output()
		if err != nil {
			t.Fatalf("amtool %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	for _, c := range []struct {
		severity, want string
	}{
		{"emergency", "webhook,page"},
		{"critical", "webhook,page"},
		{"warning", "webhook,ticket"},
		{"info", "webhook"},
	} {
		if got := receivers("alertname=X", "severity="+c.severity); got != c.want {
			t.Errorf("severity=%s goes to %q, want %q", c.severity, got, c.want)
		}
	}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		got := receivers("alertname="+r.Alert, "severity="+r.Labels["severity"], "job=sockmon", "instance=a:8081")
		if got == "webhook" {
			t.Errorf("alert %s (severity %q) reaches only the webhook", r.Alert, r.Labels["severity"])
		}
	}
}

// No secret is written in the file: Slack URLs, PagerDuty keys, SMTP
// passwords and bearer tokens all come from *_file fields.
func TestAlertmanagerSecretsFromFiles(t *testing.T) {
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(readFile(t, "alertmanager/alertmanager.yml")), &cfg); err != nil {
		t.Fatal(err)
	}
	inline := []string{"api_url", "slack_api_url", "routing_key", "service_key", "auth_password", "smtp_auth_password",
		"auth_secret", "credentials", "password", "bearer_token", "opsgenie_api_key", "api_key", "token"}
	files := 0
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if slices.Contains(inline, k) {
					t.Errorf("%s.%s: a secret written in the file; use %s_file", path, k, k)
				}
				if strings.HasSuffix(k, "_file") {
					files++
				}
				walk(path+"."+k, e)
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	walk("", cfg)
	// The Slack URL is referenced twice through a YAML anchor, so five
	// references: SMTP, webhook token, PagerDuty key, Slack twice.
	if files < 5 {
		t.Errorf("%d *_file fields, want a secret file for SMTP, the webhook, PagerDuty and Slack", files)
	}
}
