package main

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sockmon/sockmon/control"
	"github.com/sockmon/sockmon/netcore/wstest"
)

func TestDevAdminSecretFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	secret, path, created, err := devAdminSecret(dir)
	if err != nil || !created || len(secret) < control.MinAdminSecretBytes || path != filepath.Join(dir, devSecretFile) {
		t.Fatalf("first run: %q %s created=%v %v", secret, path, created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode: %v %v, want 0600", fi.Mode(), err)
	}
	again, _, created, err := devAdminSecret(dir)
	if err != nil || created || again != secret {
		t.Fatalf("second run: created=%v same=%v %v", created, again == secret, err)
	}

	// A file others may read, or too short a secret, is refused, not used.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := devAdminSecret(dir); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("0644 secret file: %v", err)
	}
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(path, 0o600)
	if _, _, _, err := devAdminSecret(dir); err == nil || !strings.Contains(err.Error(), "at least") {
		t.Fatalf("short secret: %v", err)
	}
}

func TestHostURL(t *testing.T) {
	for addr, want := range map[string]string{
		"[::]:8081":      "http://localhost:8081/x",
		"0.0.0.0:8081":   "http://localhost:8081/x",
		":8081":          "http://localhost:8081/x",
		"127.0.0.1:9":    "http://127.0.0.1:9/x",
		"[::1]:8081":     "http://[::1]:8081/x",
		"example.org:80": "http://example.org:80/x",
	} {
		if got := hostURL("http", fakeAddr(addr), "/x"); got != want {
			t.Errorf("hostURL(%s) = %s, want %s", addr, got, want)
		}
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

var tokenLineRE = regexp.MustCompile(`(?m)^  admin token   (\S+)$`)

// devBanner waits for the banner of a --dev run and returns stdout.
func devBanner(t *testing.T, p *serveProc) string {
	t.Helper()
	wstest.WaitFor(t, "the development banner", func() bool { return strings.Contains(p.stdout.String(), "  admin API ") })
	return p.stdout.String()
}

// adminGet calls GET /api/admin/socket with token and returns the status.
func adminGet(t *testing.T, control, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+control+"/api/admin/socket", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// `sockmon serve --dev` (make run) on a fresh data dir: a 0600 development
// secret, an admin token that the admin API takes, the URLs; the next run
// reuses the secret, so the first token still works; SOCKMON_ADMIN_SECRET
// wins over the file; without --dev nothing of this happens.
func TestServeDev(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startServeProc(t, cleanEnv(), dataDir, "--dev")
	banner := devBanner(t, p)
	m := tokenLineRE.FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("no admin token in the banner:\n%s", banner)
	}
	token := m[1]
	for _, want := range []string{"DEVELOPMENT", "http://" + p.control + "/api/health/socket", "http://" + p.control + "/metrics",
		"ws://" + p.ws + "/ws", filepath.Join(dataDir, devSecretFile), "expires in 1h;"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if code := adminGet(t, p.control, token); code != http.StatusOK {
		t.Fatalf("the printed token against the admin API: %d", code)
	}
	fi, err := os.Stat(filepath.Join(dataDir, devSecretFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dev secret file: %v %v", fi, err)
	}
	secret, _ := os.ReadFile(filepath.Join(dataDir, devSecretFile))
	if strings.Contains(p.stderr.String(), strings.TrimSpace(string(secret))) || strings.Contains(p.stderr.String(), token) {
		t.Fatal("the development secret or token is in the logs")
	}
	if !strings.Contains(p.stderr.String(), `"file":"`+filepath.Join(dataDir, devSecretFile)+`"`) {
		t.Errorf("the log does not say where the development secret is:\n%s", p.stderr.String())
	}
	stop(t, p)

	// The next run reuses the secret: the first run's token still works.
	p = startServeProc(t, cleanEnv(), dataDir, "--dev")
	banner = devBanner(t, p)
	if !strings.Contains(banner, "reused from") {
		t.Errorf("second run does not say it reused the secret:\n%s", banner)
	}
	if code := adminGet(t, p.control, token); code != http.StatusOK {
		t.Fatalf("first run's token on the second run: %d", code)
	}
	stop(t, p)

	// SOCKMON_ADMIN_SECRET wins: the file's secret no longer opens the API,
	// and no token is printed.
	const envSecret = "env-admin-secret-0123456789abcdef-0123"
	p = startServeProc(t, cleanEnv("SOCKMON_ADMIN_SECRET="+envSecret), dataDir, "--dev")
	banner = devBanner(t, p)
	if tokenLineRE.MatchString(banner) || !strings.Contains(banner, "from SOCKMON_ADMIN_SECRET") {
		t.Errorf("with SOCKMON_ADMIN_SECRET set:\n%s", banner)
	}
	if code := adminGet(t, p.control, token); code != http.StatusUnauthorized {
		t.Fatalf("development token with SOCKMON_ADMIN_SECRET set: %d, want 401", code)
	}
	envToken, err := control.AdminToken([]byte(envSecret), "ops", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code := adminGet(t, p.control, envToken); code != http.StatusOK {
		t.Fatalf("token of SOCKMON_ADMIN_SECRET: %d", code)
	}
	stop(t, p)

	// Production: no --dev, no secret: the admin API stays off (503), no
	// banner, no file on a fresh data dir.
	fresh := filepath.Join(t.TempDir(), "data")
	p = startServeProc(t, cleanEnv(), fresh)
	if code := adminGet(t, p.control, token); code != http.StatusServiceUnavailable {
		t.Fatalf("admin API without --dev or a secret: %d, want 503", code)
	}
	if _, err := os.Stat(filepath.Join(fresh, devSecretFile)); err == nil {
		t.Fatal("a development secret was created without --dev")
	}
	if p.stdout.String() != "" {
		t.Fatalf("stdout without --dev: %q", p.stdout.String())
	}
}

// stop ends a serve process with SIGKILL and waits (the store's lock goes
// with it).
func stop(t *testing.T, p *serveProc) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	<-p.done
}
