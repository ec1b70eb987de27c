package dashboard

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockmon/sockmon/control"
	"github.com/sockmon/sockmon/loadtest"
)

// The dashboard's cost to the WebSocket side, side by side in one run
// (like control's BenchmarkEchoWithControlPolling): a real `sockmon serve`
// (built without -race) saturated by a closed-loop echo load from a real
// `sockmon load` (200 connections, binary echo), each pair of 3 s runs once
// with no dashboard open and once with five, in alternating order.
// A dashboard here is what an open page costs the node: its event stream
// (the status every --dashboard-interval, default 2 s) and, once per event,
// the connections page's get_connections. Run it without -race:
//
//	go test -run '^$' -bench EchoWithDashboards -benchtime 6x ./control/dashboard/
//
// It reports the median rates and the median of the pairs' ratios.
func BenchmarkEchoWithDashboards(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "sockmon")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/sockmon").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	const secret = "bench-dashboard-admin-secret-0123456789abcdef"
	ws, ctl := startNode(b, bin, dir, secret)
	tok, err := control.AdminToken([]byte(secret), "bench", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	run := func(dashboards int) float64 {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		for range dashboards {
			wg.Go(func() { openDashboard(ctx, b, "http://"+ctl, tok) })
		}
		out, lerr := exec.Command(bin, "load", "--url", "ws://"+ws+"/ws", "--conns", "200", "--ramp", "2000", "--duration", "3s", "--size", "64", "--json").Output()
		cancel()
		wg.Wait()
		var rep loadtest.Report
		if err := json.Unmarshal(out, &rep); err != nil || rep.Connections.Established != 200 {
			b.Fatalf("load run: %v, %v: %s", lerr, err, out)
		}
		return rep.Messages.ReceivedRate
	}
	var off, on, ratio []float64
	for i := range b.N {
		var o, d float64
		if i%2 == 0 {
			o, d = run(0), run(5)
		} else {
			d, o = run(5), run(0)
		}
		off, on, ratio = append(off, o), append(on, d), append(ratio, d/o)
	}
	b.ReportMetric(median(off), "none-msgs/s")
	b.ReportMetric(median(on), "five-msgs/s")
	b.ReportMetric(median(ratio), "five/none")
}

func median(v []float64) float64 {
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// startNode runs `sockmon serve` with its limits off (the load is one
// client address) and returns its WebSocket and control addresses, read
// from its "sockmon serving" log line.
func startNode(b *testing.B, bin, dir, secret string) (ws, ctl string) {
	b.Helper()
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--control-addr", "127.0.0.1:0", "--data-dir", dir,
		"--conn-rate", "0", "--message-rate", "0", "--close-log-rate", "1")
	cmd.Env = append(os.Environ(), "SOCKMON_ADMIN_SECRET="+secret)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addrs := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec struct {
				Msg, Addr   string
				ControlAddr string `json:"control_addr"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "sockmon serving" {
				addrs <- [2]string{rec.Addr, rec.ControlAddr}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case a := <-addrs:
		return a[0], a[1]
	case <-time.After(30 * time.Second):
		b.Fatal("sockmon serve did not log its addresses")
	}
	return "", ""
}

// openDashboard signs in and keeps what an open connections page costs
// until ctx ends: the event stream, read in full, and a get_connections
// after each event.
func openDashboard(ctx context.Context, b *testing.B, base, token string) {
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(base+"/dashboard/login", url.Values{"token": {token}})
	if err != nil {
		b.Error(err)
		return
	}
	resp.Body.Close()
	cookie, _, _ := strings.Cut(resp.Header.Get("Set-Cookie"), ";")
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/dashboard", nil)
	req.Header.Set("Cookie", cookie)
	page, err := client.Do(req)
	if err != nil {
		return
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	_, rest, _ := strings.Cut(string(body), `name="sockmon-csrf" content="`)
	csrf, _, _ := strings.Cut(rest, `"`)

	req, _ = http.NewRequestWithContext(ctx, "GET", base+"/dashboard/events", nil)
	req.Header.Set("Cookie", cookie)
	stream, err := client.Do(req)
	if err != nil {
		return
	}
	defer stream.Body.Close()
	sc := bufio.NewScanner(stream.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	action := []byte(`{"action":"get_connections","data":{"limit":25,"sortBy":"connectedAt","order":"desc"}}`)
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "data: ") {
			continue
		}
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/dashboard/api/action", bytes.NewReader(action))
		req.Header.Set("Cookie", cookie)
		req.Header.Set("X-CSRF-Token", csrf)
		req.Header.Set("Content-Type", "application/json")
		if r, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, r.Body)
			r.Body.Close()
		}
	}
}
