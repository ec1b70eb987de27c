package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The client port answers the public health endpoints with the control
// port's status and body, never the admin API or /metrics; the control port
// serves /metrics under the seed's /api/metrics too.
func TestClientPortHealth(t *testing.T) {
	_, wsAddr, ctlAddr := startServeEnv(t, nil, "--drain-delay", "0")
	get := func(method, url string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	for _, path := range []string{"/api/health/socket", "/livez", "/readyz"} {
		code, hdr, body := get("GET", "http://"+wsAddr+path)
		ccode, _, cbody := get("GET", "http://"+ctlAddr+path)
		if code != 200 || code != ccode || hdr.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s on the client port: %d %q, control port %d", path, code, hdr.Get("Content-Type"), ccode)
		}
		var a, b map[string]any
		if json.Unmarshal([]byte(body), &a) != nil || json.Unmarshal([]byte(cbody), &b) != nil || a["status"] != b["status"] {
			t.Fatalf("GET %s: client port %s, control port %s", path, body, cbody)
		}
		if hcode, hhdr, hbody := get("HEAD", "http://"+wsAddr+path); hcode != 200 || hbody != "" || hhdr.Get("Content-Length") == "0" {
			t.Fatalf("HEAD %s: %d %q, Content-Length %q", path, hcode, hbody, hhdr.Get("Content-Length"))
		}
	}
	for _, path := range []string{"/metrics", "/api/metrics", "/api/admin/socket"} {
		if code, _, body := get("GET", "http://"+wsAddr+path); code == 200 || strings.Contains(body, "sockmon_") {
			t.Fatalf("GET %s on the client port answered %d: the client port never serves it", path, code)
		}
	}
	if code, _, body := get("GET", "http://"+ctlAddr+"/api/metrics"); code != 200 || !strings.Contains(body, "sockmon_build_info") {
		t.Fatalf("/api/metrics on the control port: %d", code)
	}

	_, wsOff, _ := startServeEnv(t, nil, "--client-port-health=false")
	if code, _, _ := get("GET", "http://"+wsOff+"/readyz"); code == 200 {
		t.Fatal("--client-port-health=false still answers /readyz on the client port")
	}
}
