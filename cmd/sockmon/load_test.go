package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func startGorillaEcho(t *testing.T) string {
	t.Helper()
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			op, msg, err := c.ReadMessage()
			if err != nil || c.WriteMessage(op, msg) != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/echo"
}

func TestLoadCommandFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--url", "http://127.0.0.1:1/"},
		{"--url", "ws://127.0.0.1:1/", "--mode", "bogus"},
		{"--url", "ws://127.0.0.1:1/", "--slo", "p99<fast"},
		{"--url", "ws://127.0.0.1:1/", "--sources", "127.0.0.9-127.0.0.2"},
		{"--url", "ws://127.0.0.1:1/", "--header", "NoColon"},
		{"--url", "ws://127.0.0.1:1/", "--plot", "x.pdf"},
		{"--url", "ws://127.0.0.1:1/", "extra"},
	} {
		var out, errb bytes.Buffer
		if code := loadCommand(args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := loadCommand([]string{"--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "\n  --slo ") || errb.Len() != 0 {
		t.Errorf("--help: exit %d, usage on stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

func TestLoadCommandSLOExitStatus(t *testing.T) {
	url := startGorillaEcho(t)
	dir := t.TempDir()
	base := []string{"--url", url, "--conns", "20", "--rate", "500", "--duration", "500ms", "--json"}

	var out, errb bytes.Buffer
	args := append(append([]string{}, base...), "--slo", "errors<1%", "--slo", "rate>=90%",
		"--hgrm", filepath.Join(dir, "lat.hgrm"), "--plot", filepath.Join(dir, "lat.svg"))
	if code := loadCommand(args, &out, &errb); code != 0 {
		t.Fatalf("passing SLOs: exit %d\nstdout %s\nstderr %s", code, out.String(), errb.String())
	}
	var rep struct {
		Schema string `json:"schema"`
		SLOs   []struct {
			Expr string `json:"expr"`
			OK   bool   `json:"ok"`
		} `json:"slos"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || len(rep.SLOs) != 2 || !rep.SLOs[0].OK {
		t.Fatalf("report %s: %v", out.String(), err)
	}
	for _, f := range []string{"lat.hgrm", "lat.svg"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}

	out.Reset()
	args = append(append([]string{}, base...), "--slo", "p99<1us")
	if code := loadCommand(args, &out, &errb); code != 1 {
		t.Fatalf("failing SLO: exit %d, want 1", code)
	}
}
