package deploy

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockmon/sockmon/control"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// The manifests are decoded strictly into the k8s.io/api types: an unknown
// or misspelt field, a duplicate key or a wrong type fails the test, as
// `kubectl apply --validate=strict` would.

// controlShutdown is how long `sockmon serve` gives its control side to
// finish after the WebSocket side has drained (the 5 s context in
// cmd/sockmon/serve.go).
const controlShutdown = 5 * time.Second

// decodeStrict decodes one manifest into v, refusing unknown fields, and
// checks its apiVersion and kind.
func decodeStrict(t *testing.T, path, apiVersion, kind string, v any) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(readFile(t, path)), v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, path)), &tm); err != nil {
		t.Fatal(err)
	}
	if tm.APIVersion != apiVersion || tm.Kind != kind {
		t.Fatalf("%s: %s %s, want %s %s", path, tm.APIVersion, tm.Kind, apiVersion, kind)
	}
}

type manifests struct {
	deploy  appsv1.Deployment
	service corev1.Service
	pdb     policyv1.PodDisruptionBudget
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{}
	decodeStrict(t, "kubernetes/deployment.yaml", "apps/v1", "Deployment", &m.deploy)
	decodeStrict(t, "kubernetes/service.yaml", "v1", "Service", &m.service)
	decodeStrict(t, "kubernetes/pdb.yaml", "policy/v1", "PodDisruptionBudget", &m.pdb)
	return m
}

// Every file in kubernetes/ is one of the manifests this test decodes.
func TestKubernetesManifestsDecodeStrictly(t *testing.T) {
	files, err := filepath.Glob("kubernetes/*")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"kubernetes/deployment.yaml": true, "kubernetes/service.yaml": true, "kubernetes/pdb.yaml": true}
	for _, f := range files {
		if !known[filepath.ToSlash(f)] {
			t.Errorf("%s: not decoded by this test; add it", f)
		}
	}
	loadManifests(t)

	// The decoding is strict: a misspelt field fails.
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict([]byte("apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 3\n"), &d); err == nil {
		t.Fatal("strict decoding accepted an unknown field")
	}
}

func containerPort(t *testing.T, c *corev1.Container, port intstr.IntOrString) int32 {
	t.Helper()
	if port.Type == intstr.Int {
		return port.IntVal
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q", c.Name, port.StrVal)
	return 0
}

// envDuration is the duration a SOCKMON_* variable of the container sets,
// or the flag's default.
func envDuration(t *testing.T, c *corev1.Container, flag string) time.Duration {
	t.Helper()
	env := serveFlags(t)[flag].Env
	for _, e := range c.Env {
		if e.Name == env {
			d, err := time.ParseDuration(e.Value)
			if err != nil {
				t.Fatalf("%s=%q: %v", env, e.Value, err)
			}
			return d
		}
	}
	return serveDuration(t, flag)
}

// The probes use the control side's paths and port as `sockmon serve`
// defines them, and the termination timings fit sockmon's drain (C5).
func TestKubernetesProbesAndTermination(t *testing.T) {
	m := loadManifests(t)
	pod := &m.deploy.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := &pod.Containers[0]
	controlPort, _ := strconv.Atoi(servePort(t, "control-addr"))
	wsPort, _ := strconv.Atoi(servePort(t, "addr"))

	ports := map[int32]bool{}
	for _, p := range c.Ports {
		ports[p.ContainerPort] = true
	}
	if !ports[int32(wsPort)] || !ports[int32(controlPort)] {
		t.Errorf("container ports %v, want the defaults of --addr (%d) and --control-addr (%d)", c.Ports, wsPort, controlPort)
	}

	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"startupProbe", c.StartupProbe, control.PathLivez},
		{"livenessProbe", c.LivenessProbe, control.PathLivez},
		{"readinessProbe", c.ReadinessProbe, control.PathReadyz},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s: path %q, want %q", p.name, p.probe.HTTPGet.Path, p.path)
		}
		if got := containerPort(t, c, p.probe.HTTPGet.Port); got != int32(controlPort) {
			t.Errorf("%s: port %d, want the control port %d", p.name, got, controlPort)
		}
		if p.name != "readinessProbe" && p.probe.SuccessThreshold > 1 {
			t.Errorf("%s: successThreshold must be 1", p.name)
		}
	}
	periodOf := func(p *corev1.Probe) time.Duration {
		period, fails := p.PeriodSeconds, p.FailureThreshold
		if period == 0 {
			period = 10
		}
		if fails == 0 {
			fails = 3
		}
		return time.Duration(period*fails) * time.Second
	}
	if d := periodOf(c.StartupProbe); d < 20*time.Second {
		t.Errorf("startupProbe allows %s to start, want at least 20s", d)
	}
	drainDelay := envDuration(t, c, "drain-delay")
	if d := periodOf(c.ReadinessProbe); d > drainDelay {
		t.Errorf("readinessProbe notices a drain after up to %s, longer than --drain-delay %s", d, drainDelay)
	}

	// Termination: grace >= preStop + shutdown-timeout (which includes the
	// drain delay) + the control side's shutdown + a margin.
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Fatal("want a preStop sleep (the image has no shell)")
	}
	preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	shutdown := envDuration(t, c, "shutdown-timeout")
	if pod.TerminationGracePeriodSeconds == nil {
		t.Fatal("terminationGracePeriodSeconds is not set (default 30s)")
	}
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	const minMargin = 5 * time.Second
	if need := preStop + shutdown + controlShutdown + minMargin; grace < need {
		t.Errorf("terminationGracePeriodSeconds %s < preStop %s + shutdown-timeout %s + control shutdown %s + margin %s",
			grace, preStop, shutdown, controlShutdown, minMargin)
	}
	if shutdown <= drainDelay {
		t.Errorf("shutdown-timeout %s leaves no time after the drain delay %s", shutdown, drainDelay)
	}
	// The comment at the top of the file states the same numbers.
	header := readFile(t, "kubernetes/deployment.yaml")
	for _, s := range []string{
		fmt.Sprintf("--drain-delay (%s)", fmtSeconds(drainDelay)),
		fmt.Sprintf("--shutdown-timeout (%s", fmtSeconds(shutdown)),
		fmt.Sprintf("terminationGracePeriodSeconds (%d)", *pod.TerminationGracePeriodSeconds),
		fmt.Sprintf("preStop %d", c.Lifecycle.PreStop.Sleep.Seconds),
	} {
		if !strings.Contains(strings.Join(strings.Fields(header), " "), s) {
			t.Errorf("deployment.yaml's comment does not say %q", s)
		}
	}

	// Rollouts never take a ready pod away before its replacement is ready.
	ru := m.deploy.Spec.Strategy.RollingUpdate
	if ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rollingUpdate.maxUnavailable must be 0: %+v", ru)
	}
	if m.deploy.Spec.MinReadySeconds <= 0 {
		t.Error("minReadySeconds must be set")
	}

	// Prometheus scrape annotations.
	ann := m.deploy.Spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(controlPort) || ann["prometheus.io/path"] != control.PathMetrics {
		t.Errorf("scrape annotations %v, want scrape true, port %d, path %s", ann, controlPort, control.PathMetrics)
	}
}

func fmtSeconds(d time.Duration) string { return fmt.Sprintf("%d s", int(d.Seconds())) }

// Non-root, read-only root filesystem, no capabilities; the secrets come
// from a Secret; every SOCKMON_* variable is one sockmon reads; the data
// directory is an emptyDir; the memory limit matches the one in rules.yml.
func TestKubernetesSecurityAndConfig(t *testing.T) {
	m := loadManifests(t)
	pod := &m.deploy.Spec.Template.Spec
	c := &pod.Containers[0]
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod securityContext must set runAsNonRoot and a non-zero runAsUser: %+v", psc)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container securityContext must be read-only root, no privilege escalation, drop ALL: %+v", sc)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken should be false: sockmon does not talk to the API server")
	}

	flagEnv := map[string]string{}
	for name, f := range serveFlags(t) {
		flagEnv[f.Env] = name
	}
	secrets := map[string]bool{"SOCKMON_ADMIN_SECRET": false, "SOCKMON_JWT_SECRET": false}
	var dataDir string
	for _, e := range c.Env {
		if _, ok := secrets[e.Name]; ok {
			if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("%s must come from a Secret (secretKeyRef)", e.Name)
			}
			secrets[e.Name] = true
			continue
		}
		if _, ok := flagEnv[e.Name]; !ok {
			t.Errorf("env %s: sockmon serve has no flag for it", e.Name)
		}
		if e.Name == "SOCKMON_DATA_DIR" {
			dataDir = e.Value
		}
		if e.Name == "SOCKMON_MEMORY_LIMIT" && (e.ValueFrom == nil || e.ValueFrom.ResourceFieldRef == nil || e.ValueFrom.ResourceFieldRef.Resource != "limits.memory") {
			t.Errorf("SOCKMON_MEMORY_LIMIT should come from the container's limits.memory")
		}
	}
	for name, ok := range secrets {
		if !ok {
			t.Errorf("%s is not set", name)
		}
	}
	var dataVolume string
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == dataDir {
			dataVolume = vm.Name
		}
	}
	found := false
	for _, v := range pod.Volumes {
		if v.Name == dataVolume && v.EmptyDir != nil {
			found = true
		}
	}
	if dataDir == "" || !found {
		t.Errorf("SOCKMON_DATA_DIR %q is not an emptyDir volume mount (a read-only root filesystem needs one)", dataDir)
	}

	lim, ok := c.Resources.Limits[corev1.ResourceMemory]
	if !ok {
		t.Fatal("no memory limit")
	}
	if lim.Value() != memoryLimitInRules(t) {
		t.Errorf("memory limit %s (%d bytes) differs from the %d bytes of instance:sockmon_memory_limit_bytes:configured in rules.yml",
			lim.String(), lim.Value(), memoryLimitInRules(t))
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Error("set cpu and memory requests")
	}
}

// The Service and the PodDisruptionBudget select the Deployment's pods;
// the Service exposes the WebSocket port only.
func TestKubernetesServiceAndPDB(t *testing.T) {
	m := loadManifests(t)
	podLabels := m.deploy.Spec.Template.Labels
	matches := func(sel map[string]string) bool {
		for k, v := range sel {
			if podLabels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if !matches(m.deploy.Spec.Selector.MatchLabels) {
		t.Errorf("the Deployment's selector %v does not match its pod labels %v", m.deploy.Spec.Selector.MatchLabels, podLabels)
	}
	if !matches(m.service.Spec.Selector) {
		t.Errorf("the Service's selector %v does not match the pod labels %v", m.service.Spec.Selector, podLabels)
	}
	if m.pdb.Spec.Selector == nil || !matches(m.pdb.Spec.Selector.MatchLabels) {
		t.Errorf("the PodDisruptionBudget's selector does not match the pod labels %v", podLabels)
	}
	c := &m.deploy.Spec.Template.Spec.Containers[0]
	wsPort, _ := strconv.Atoi(servePort(t, "addr"))
	if len(m.service.Spec.Ports) != 1 {
		t.Fatalf("the Service has %d ports, want the WebSocket port only", len(m.service.Spec.Ports))
	}
	if got := containerPort(t, c, m.service.Spec.Ports[0].TargetPort); got != int32(wsPort) {
		t.Errorf("the Service targets port %d, want the WebSocket port %d", got, wsPort)
	}
	replicas := int32(1)
	if m.deploy.Spec.Replicas != nil {
		replicas = *m.deploy.Spec.Replicas
	}
	if mu := m.pdb.Spec.MaxUnavailable; mu == nil || mu.IntValue() < 1 || int32(mu.IntValue()) >= replicas {
		t.Errorf("PodDisruptionBudget maxUnavailable %v: want at least 1 and fewer than the %d replicas", mu, replicas)
	}
}
