package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unitFile is a systemd unit: section -> key -> values (a key may repeat).
type unitFile map[string]map[string][]string

// parseUnit reads a unit file as systemd does: sections, Key=Value lines,
// # and ; comments, backslash continuations.
func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	u := unitFile{}
	var section, pending string
	sc := bufio.NewScanner(strings.NewReader(readFile(t, path)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if pending != "" {
			line, pending = pending+" "+line, ""
		}
		if strings.HasSuffix(line, `\`) {
			pending = strings.TrimSuffix(line, `\`)
			continue
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if u[section] != nil {
				t.Fatalf("%s:%d: section [%s] repeated", path, n, section)
			}
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a Key=Value line in a section: %q", path, n, line)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	if pending != "" {
		t.Fatalf("%s: ends with a continuation", path)
	}
	return u
}

// one returns the single value of a key.
func (u unitFile) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s: %d values %v, want 1", section, key, len(v), v)
	}
	return v[0]
}

// The unit runs `sockmon serve` with flags it has, hardened, with stop
// timings that fit sockmon's drain. Parsed here whether or not systemd is
// installed.
func TestSystemdUnitContents(t *testing.T) {
	u := parseUnit(t, "systemd/sockmon.service")
	for _, s := range []string{"Unit", "Service", "Install"} {
		if u[s] == nil {
			t.Fatalf("no [%s] section", s)
		}
	}
	svc := "Service"
	args := strings.Fields(u.one(t, svc, "ExecStart"))
	if len(args) < 2 || !filepath.IsAbs(args[0]) || filepath.Base(args[0]) != "sockmon" || args[1] != "serve" {
		t.Fatalf("ExecStart %v: want an absolute path to sockmon, then serve", args)
	}
	flags := serveFlags(t)
	dataDir := flags["data-dir"].Default
	for i := 2; i < len(args); i++ {
		name, _, _ := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") {
			continue
		}
		if _, ok := flags[name]; !ok {
			t.Errorf("ExecStart: sockmon serve has no flag --%s", name)
		}
		if name == "data-dir" && i+1 < len(args) {
			dataDir = args[i+1]
		}
	}
	if !slices.Contains(u[svc]["ReadWritePaths"], dataDir) {
		t.Errorf("ReadWritePaths %v does not include the data directory %s (ProtectSystem=strict makes the rest read-only)", u[svc]["ReadWritePaths"], dataDir)
	}
	for k, want := range map[string]string{
		"NoNewPrivileges": "yes",
		"ProtectSystem":   "strict",
		"ProtectHome":     "yes",
		"PrivateTmp":      "yes",
		"PrivateDevices":  "yes",
		"KillSignal":      "SIGTERM",
	} {
		if got := u.one(t, svc, k); got != want {
			t.Errorf("%s=%s, want %s", k, got, want)
		}
	}
	if u.one(t, svc, "CapabilityBoundingSet") != "" {
		t.Error("CapabilityBoundingSet should be empty: sockmon needs no capability")
	}
	stop, err := time.ParseDuration(u.one(t, svc, "TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	shutdown := serveDuration(t, "shutdown-timeout")
	if need := shutdown + controlShutdown + 5*time.Second; stop < need {
		t.Errorf("TimeoutStopSec %s < shutdown-timeout %s + control shutdown %s + 5s margin", stop, shutdown, controlShutdown)
	}
	nofile, err := strconv.Atoi(u.one(t, svc, "LimitNOFILE"))
	maxConns, _ := strconv.Atoi(flags["max-conns"].Default)
	if err != nil || nofile <= maxConns+100 {
		t.Errorf("LimitNOFILE %d (%v) leaves no room above --max-conns %d", nofile, err, maxConns)
	}
}

// systemd-analyze verify finds nothing to say about the unit, and its
// offline security review rates it at most 2.0 ("OK"). ExecStart names
// /usr/local/bin/sockmon, which verify requires to exist: the test points it
// at the binary it built, in a copy of the unit.
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		// Debian's systemd package; not installed in containers without
		// systemd. The parse test above still runs.
		t.Skip("systemd-analyze is not installed: only TestSystemdUnitContents checked the unit")
	}
	unit := filepath.Join(t.TempDir(), "sockmon.service")
	writeFile(t, unit, substitute(t, "systemd/sockmon.service", readFile(t, "systemd/sockmon.service"),
		"ExecStart=/usr/local/bin/sockmon ", "ExecStart="+sockmonBin(t)+" "))
	cmd := exec.Command(sa, "verify", unit)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=notice")
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	if out, err := exec.Command(sa, "security", "--offline=yes", "--threshold=20", unit).CombinedOutput(); err != nil {
		t.Fatalf("systemd-analyze security: exposure above 2.0: %v\n%s", err, out)
	}
}
