package deploy

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"sigs.k8s.io/yaml"
)

// There is no Docker engine here: the compose file is loaded with the
// compose-spec reference loader (what `docker compose config` uses), which
// validates it against the compose-spec schema, interpolates variables and
// checks references between services, volumes and secrets.

const composeFile = "docker-compose.monitoring.yml"

// composeEnv is the environment the README asks for before `up`.
var composeEnv = map[string]string{
	"SOCKMON_ADMIN_SECRET":   "test-admin-secret-test-admin-secret-0123",
	"SOCKMON_JWT_SECRET":     "test-jwt-secret-test-jwt-secret-test-0123",
	"GRAFANA_ADMIN_PASSWORD": "test-grafana-password",
}

func loadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{composeFile},
		cli.WithWorkingDirectory("."),
		cli.WithEnv(kv),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

func mustLoadCompose(t *testing.T) *types.Project {
	t.Helper()
	p, err := loadCompose(t, composeEnv)
	if err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return p
}

func TestComposeLoads(t *testing.T) {
	p := mustLoadCompose(t)
	var names []string
	for name := range p.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	want := []string{"alertmanager", "grafana", "loki", "prometheus", "promtail", "sockmon"}
	if !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	for name, s := range p.Services {
		// promtail has none (the file says why); nothing waits on it.
		if name != "promtail" && (s.HealthCheck == nil || len(s.HealthCheck.Test) < 2 || s.HealthCheck.Test[0] != "CMD") {
			t.Errorf("service %s: no health check in exec form", name)
		}
		if s.Restart == "" {
			t.Errorf("service %s: no restart policy", name)
		}
		if name != "sockmon" && !regexp.MustCompile(`:v?\d+\.\d+\.\d+$`).MatchString(s.Image) {
			t.Errorf("service %s: image %q is not pinned to a version", name, s.Image)
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind && v.Source != "/var/run/docker.sock" {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("service %s: bind mount of %s: %v", name, v.Source, err)
				}
				if !v.ReadOnly {
					t.Errorf("service %s: bind mount of %s should be read-only", name, v.Source)
				}
			}
		}
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" && !(name == "sockmon" && port.Target == 8080) {
				t.Errorf("service %s: port %d published on all interfaces; only sockmon's WebSocket port should be", name, port.Target)
			}
		}
	}
}

// Every secret comes from the environment or a file, with no default: the
// loader refuses the file while one is missing.
func TestComposeRequiresSecrets(t *testing.T) {
	for name := range composeEnv {
		env := map[string]string{}
		for k, v := range composeEnv {
			if k != name {
				env[k] = v
			}
		}
		_, err := loadCompose(t, env)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("without %s: %v, want an error naming it", name, err)
		}
	}
	raw := readFile(t, composeFile)
	for _, line := range strings.Split(raw, "\n") {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, "#") {
			continue
		}
		if k, v, ok := strings.Cut(l, ":"); ok && (strings.Contains(k, "PASSWORD") || strings.Contains(k, "SECRET")) &&
			!strings.HasPrefix(strings.TrimSpace(v), "${") {
			t.Errorf("%s: %q is not taken from the environment", composeFile, l)
		}
	}
}

// The sockmon service runs the image of deploy/Dockerfile as that image
// intends: the same health check, the data directory on a volume, the
// ports of the serve defaults, a stop grace period that fits the drain, and
// the memory limit of rules.yml.
func TestComposeSockmonService(t *testing.T) {
	p := mustLoadCompose(t)
	s := p.Services["sockmon"]
	if s.Build == nil || filepath.Base(s.Build.Dockerfile) != "Dockerfile" {
		t.Fatalf("sockmon: build %+v, want deploy/Dockerfile", s.Build)
	}
	if df, _ := filepath.Abs("Dockerfile"); filepath.Join(s.Build.Context, s.Build.Dockerfile) != df && s.Build.Dockerfile != df {
		t.Errorf("sockmon: builds %s in %s, want %s", s.Build.Dockerfile, s.Build.Context, df)
	}
	stages := parseDockerfile(t)
	var imageHealth []string
	var dataDir string
	for _, c := range stages[len(stages)-1].Commands {
		switch c := c.(type) {
		case *instructions.HealthCheckCommand:
			imageHealth = c.Health.Test
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				if kv.Key == "SOCKMON_DATA_DIR" {
					dataDir = kv.Value
				}
			}
		}
	}
	if !slices.Equal([]string(s.HealthCheck.Test), imageHealth) {
		t.Errorf("sockmon: health check %v differs from the image's %v", s.HealthCheck.Test, imageHealth)
	}
	onVolume := false
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == dataDir {
			onVolume = true
		}
	}
	if !onVolume {
		t.Errorf("sockmon: the data directory %s is not on a named volume", dataDir)
	}
	wsPort, _ := strconv.Atoi(servePort(t, "addr"))
	controlPort, _ := strconv.Atoi(servePort(t, "control-addr"))
	published := map[uint32]bool{}
	for _, port := range s.Ports {
		published[port.Target] = true
	}
	if !published[uint32(wsPort)] || !published[uint32(controlPort)] {
		t.Errorf("sockmon: ports %v, want %d and %d", s.Ports, wsPort, controlPort)
	}
	if s.StopGracePeriod == nil {
		t.Fatal("sockmon: no stop_grace_period (Docker's default is 10s)")
	}
	need := serveDuration(t, "shutdown-timeout") + controlShutdown + 5*time.Second
	if got := time.Duration(*s.StopGracePeriod); got < need {
		t.Errorf("sockmon: stop_grace_period %s < shutdown-timeout + control shutdown + 5s margin = %s", got, need)
	}
	lim := memoryLimitInRules(t)
	if int64(s.MemLimit) != lim {
		t.Errorf("sockmon: mem_limit %d, want rules.yml's %d", s.MemLimit, lim)
	}
	if v := s.Environment["SOCKMON_MEMORY_LIMIT"]; v == nil || *v != strconv.FormatInt(lim, 10) {
		t.Errorf("sockmon: SOCKMON_MEMORY_LIMIT %v, want %d", v, lim)
	}
	flagEnv := map[string]bool{"SOCKMON_ADMIN_SECRET": true, "SOCKMON_JWT_SECRET": true}
	for _, f := range serveFlags(t) {
		flagEnv[f.Env] = true
	}
	for k := range s.Environment {
		if !flagEnv[k] {
			t.Errorf("sockmon: environment %s is not a variable sockmon reads", k)
		}
	}
}

// mountTarget is where a service mounts a path of deploy/.
func mountTarget(t *testing.T, s types.ServiceConfig, rel string) string {
	t.Helper()
	abs, err := filepath.Abs(rel)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Source == abs {
			return v.Target
		}
	}
	t.Fatalf("service %s does not mount %s", s.Name, rel)
	return ""
}

// hostPort checks that an address of another file names a compose service
// and one of the ports that service listens on.
func hostPort(t *testing.T, p *types.Project, where, addr string, port string) {
	t.Helper()
	host, got, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: %q: %v", where, addr, err)
	}
	if _, ok := p.Services[host]; !ok {
		t.Errorf("%s: %s is not a service of %s", where, host, composeFile)
	}
	if got != port {
		t.Errorf("%s: %s, want port %s", where, addr, port)
	}
}

// The other deployment files are mounted where the services read them, and
// the addresses in them name the services of the compose file.
func TestComposeWiresTheConfigFiles(t *testing.T) {
	p := mustLoadCompose(t)

	prom := p.Services["prometheus"]
	dir := mountTarget(t, prom, "prometheus")
	if !slices.Contains([]string(prom.Command), "--config.file="+dir+"/prometheus.yml") {
		t.Errorf("prometheus: command %v does not read %s/prometheus.yml", prom.Command, dir)
	}
	var promCfg struct {
		Alerting struct {
			Alertmanagers []struct {
				StaticConfigs []struct{ Targets []string } `json:"static_configs"`
			} `json:"alertmanagers"`
		} `json:"alerting"`
		ScrapeConfigs []struct {
			JobName       string                       `json:"job_name"`
			StaticConfigs []struct{ Targets []string } `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "prometheus/prometheus.yml")), &promCfg); err != nil {
		t.Fatal(err)
	}
	hostPort(t, p, "prometheus.yml alertmanager", promCfg.Alerting.Alertmanagers[0].StaticConfigs[0].Targets[0], "9093")
	hostPort(t, p, "prometheus.yml job sockmon", promCfg.ScrapeConfigs[0].StaticConfigs[0].Targets[0], servePort(t, "control-addr"))

	am := p.Services["alertmanager"]
	dir = mountTarget(t, am, "alertmanager")
	if !slices.Contains([]string(am.Command), "--config.file="+dir+"/alertmanager.yml") {
		t.Errorf("alertmanager: command %v does not read %s/alertmanager.yml", am.Command, dir)
	}
	// Every /run/secrets/<name> that alertmanager.yml reads is a secret of
	// the service.
	var mounted []string
	for _, s := range am.Secrets {
		mounted = append(mounted, s.Source)
	}
	read := regexp.MustCompile(`/run/secrets/([a-z_]+)`).FindAllStringSubmatch(readFile(t, "alertmanager/alertmanager.yml"), -1)
	if len(read) == 0 {
		t.Fatal("alertmanager.yml reads no /run/secrets file")
	}
	for _, m := range read {
		if !slices.Contains(mounted, m[1]) {
			t.Errorf("alertmanager.yml reads /run/secrets/%s, which the service does not mount (%v)", m[1], mounted)
		}
	}

	gr := p.Services["grafana"]
	if got := mountTarget(t, gr, "grafana/provisioning"); got != "/etc/grafana/provisioning" {
		t.Errorf("grafana: provisioning mounted at %s, want /etc/grafana/provisioning", got)
	}
	if got, want := mountTarget(t, gr, "grafana/dashboards"), loadDashboardProviders(t).Providers[0].Options.Path; got != want {
		t.Errorf("grafana: dashboards mounted at %s, but the provider reads %s", got, want)
	}
	for _, ds := range loadDatasources(t).Datasources {
		u, err := url.Parse(ds.URL)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"prometheus": "9090", "loki": "3100"}[ds.Type]
		hostPort(t, p, "datasource "+ds.Name, u.Host, want)
	}

	pt := p.Services["promtail"]
	target := mountTarget(t, pt, "promtail/promtail.yml")
	if !slices.Contains([]string(pt.Command), "-config.file="+target) {
		t.Errorf("promtail: command %v does not read %s", pt.Command, target)
	}
}

// promtail gives sockmon's log lines the labels the dashboard's log panel
// selects. (promtail is not packaged in Debian: this reads its file; the
// compose file runs the real one.)
func TestPromtailLabelsWhatTheDashboardQueries(t *testing.T) {
	p := mustLoadCompose(t)
	var cfg struct {
		Clients []struct {
			URL string `json:"url"`
		} `json:"clients"`
		ScrapeConfigs []struct {
			JobName       string           `json:"job_name"`
			DockerSD      []map[string]any `json:"docker_sd_configs"`
			RelabelConfig []struct {
				SourceLabels []string `json:"source_labels"`
				TargetLabel  string   `json:"target_label"`
			} `json:"relabel_configs"`
			PipelineStages []map[string]map[string]any `json:"pipeline_stages"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "promtail/promtail.yml")), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Clients) != 1 || len(cfg.ScrapeConfigs) != 1 {
		t.Fatalf("promtail.yml: %d clients, %d scrape configs; want 1 and 1", len(cfg.Clients), len(cfg.ScrapeConfigs))
	}
	u, err := url.Parse(cfg.Clients[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	hostPort(t, p, "promtail client", u.Host, "3100")
	if u.Path != "/loki/api/v1/push" {
		t.Errorf("promtail client path %s, want /loki/api/v1/push", u.Path)
	}
	sc := cfg.ScrapeConfigs[0]
	labels := map[string]bool{}
	for _, r := range sc.RelabelConfig {
		labels[r.TargetLabel] = true
	}
	for _, st := range sc.PipelineStages {
		for l := range st["labels"] {
			labels[l] = true
		}
	}
	if !strings.Contains(readFile(t, "promtail/promtail.yml"), `"com.docker.compose.service=sockmon"`) {
		t.Error("promtail.yml does not select the compose service sockmon")
	}
	for _, path := range dashboardFiles(t) {
		for _, pn := range loadDashboard(t, path).Panels {
			if pn.Datasource == nil || pn.Datasource.Type != "loki" {
				continue
			}
			for _, tg := range pn.Targets {
				sel := regexp.MustCompile(`^\{([^}]*)\}`).FindStringSubmatch(tg.Expr)
				if sel == nil {
					t.Fatalf("%s: panel %q: %q does not start with a stream selector", path, pn.Title, tg.Expr)
				}
				for _, m := range regexp.MustCompile(`([a-z_]+)\s*(=~|!=|!~|=)`).FindAllStringSubmatch(sel[1], -1) {
					if !labels[m[1]] {
						t.Errorf("%s: panel %q selects label %s, which promtail does not set (%v)", path, pn.Title, m[1], labels)
					}
				}
			}
		}
	}
	// The level values sockmon writes are the ones the panel selects.
	n := startSockmon(t, nil)
	if !strings.Contains(n.logs.String(), `"level":"WARN"`) && !strings.Contains(n.logs.String(), `"level":"INFO"`) {
		t.Errorf("sockmon's log lines carry no upper-case level field:\n%s", n.logs.String())
	}
}
