package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockmon/sockmon/control"
)

// `sockmon serve --pprof` serves the runtime's profiles on the control port
// to an ADMIN token (a heap profile `go tool pprof` reads, a CPU profile),
// refuses a VIEWER (403) and no token (401), and never serves them on the
// WebSocket port, token or not (4xx); without --pprof the control port
// answers 404.
func TestServePprof(t *testing.T) {
	env := []string{"SOCKMON_ADMIN_SECRET=" + dashSecret}
	_, wsAddr, ctlAddr := startServeEnv(t, env, "--pprof", "--drain-delay", "0")
	admin, err := control.AdminToken([]byte(dashSecret), "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := control.RoleToken([]byte(dashSecret), "vera", control.ViewerRole, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	get := func(url, token string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	ctl := "http://" + ctlAddr + "/debug/pprof/"
	if code, body := get(ctl+"heap", ""); code != 401 {
		t.Fatalf("heap without a token: %d %s", code, body)
	}
	if code, body := get(ctl+"heap", viewer); code != 403 {
		t.Fatalf("heap as VIEWER: %d %s", code, body)
	}
	code, heap := get(ctl+"heap", admin)
	if code != 200 || !bytes.HasPrefix(heap, []byte{0x1f, 0x8b}) {
		t.Fatalf("heap as ADMIN: %d, %d bytes", code, len(heap))
	}
	file := filepath.Join(t.TempDir(), "heap.pprof")
	if err := os.WriteFile(file, heap, 0o600); err != nil {
		t.Fatal(err)
	}
	// The node's own symbols are in it: the profile is this process's.
	out, err := exec.Command("go", "tool", "pprof", "-raw", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "inuse_space/bytes") || !strings.Contains(string(out), "github.com/sockmon/sockmon/") {
		t.Fatalf("go tool pprof -raw: %v\n%.2000s", err, out)
	}
	if code, cpu := get(ctl+"profile?seconds=1", admin); code != 200 || !bytes.HasPrefix(cpu, []byte{0x1f, 0x8b}) {
		t.Fatalf("CPU profile: %d, %d bytes", code, len(cpu))
	}
	if code, body := get(ctl+"goroutine?debug=1", admin); code != 200 || !strings.Contains(string(body), "goroutine profile:") {
		t.Fatalf("goroutine text profile: %d %.200s", code, body)
	}

	for _, p := range []string{"", "heap", "goroutine?debug=1", "cmdline"} {
		// The WebSocket port refuses it as any path but its own (426).
		code, body := get("http://"+wsAddr+"/debug/pprof/"+p, admin)
		if code < 400 || bytes.HasPrefix(body, []byte{0x1f, 0x8b}) || strings.Contains(string(body), "profile") {
			t.Fatalf("/debug/pprof/%s on the WebSocket port: %d %.200s", p, code, body)
		}
	}

	_, _, ctlOff := startServeEnv(t, env, "--drain-delay", "0")
	if code, body := get("http://"+ctlOff+"/debug/pprof/heap", admin); code != 404 {
		t.Fatalf("heap without --pprof: %d %s", code, body)
	}
}
