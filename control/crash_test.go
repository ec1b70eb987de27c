package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudwego/netpoll"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/protocol"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// The crash test runs a sockmon node (netcore + control) in a child
// process: this test binary, re-executed with childEnv set, which TestMain
// turns into the node instead of the tests.
const childEnv = "SOCKMON_CONTROL_TEST_CHILD_DIR"

// alertIntervalEnv sets the child's alert evaluation interval.
const alertIntervalEnv = "SOCKMON_CONTROL_TEST_ALERT_INTERVAL"

// loadEnv makes the re-executed test binary a load generator instead (see
// bench_test.go): a closed-loop echo load on the ws address it names.
const loadEnv = "SOCKMON_CONTROL_TEST_LOAD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	if ws := os.Getenv(loadEnv); ws != "" {
		os.Exit(runLoadChild(ws))
	}
	if os.Getenv(referenceEnv) != "" {
		os.Exit(runReferenceChild())
	}
	os.Exit(m.Run())
}

// childAddrs is the line the child prints once it serves.
type childAddrs struct {
	WS      string `json:"ws"`
	Control string `json:"control"`
}

// runChild serves a node on data dir until it is killed.
func runChild(dir string) int {
	// No connection or message rate limits: the benchmarks drive it from
	// one IP as fast as it goes.
	eng, proto, err := buildEngine(netcore.Config{Logger: slog.New(slog.DiscardHandler), DrainDelay: -1, MaxConns: 100_000},
		protocol.Config{JWTSecret: []byte(testClientSecret), ConnRate: -1, MessageRate: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg := Config{DataDir: dir, Engine: eng, Protocol: proto, AdminSecret: []byte(testAdminSecret), ClientSecret: []byte(testClientSecret),
		Logger: slog.New(slog.DiscardHandler)}
	if d, err := time.ParseDuration(os.Getenv(alertIntervalEnv)); err == nil {
		cfg.Alerts.Interval, cfg.Alerts.FlapWindow = d, -1
	}
	ctl, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	wln, err := netpoll.CreateListener("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() { _ = eng.Serve(wln) }()
	go func() { _ = ctl.Serve(cln) }()
	b, _ := json.Marshal(childAddrs{WS: wln.Addr().String(), Control: cln.Addr().String()})
	fmt.Println(string(b))
	select {}
}

// startChild runs a node on dir and returns the process and its
// addresses.
func startChild(t testing.TB, dir string, wrapper ...string) (*exec.Cmd, childAddrs) {
	t.Helper()
	return startProcess(t, childEnv+"="+dir, wrapper...)
}

// startProcess re-executes the test binary with env (NAME=value) added,
// under wrapper if any, and returns it with the addresses it prints.
func startProcess(t testing.TB, env string, wrapper ...string) (*exec.Cmd, childAddrs) {
	t.Helper()
	args := append(wrapper, os.Args[0], "-test.run=^$")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case l := <-line:
		var a childAddrs
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("child said %q: %v", l, err)
		}
		return cmd, a
	case <-time.After(30 * time.Second):
		t.Fatalf("the child did not start: %s", stderr.String())
	}
	return nil, childAddrs{}
}

// post sends an admin command to a child and reports whether it was
// acknowledged (200 and success).
func post(client *http.Client, addr, token, action string, data any) (bool, error) {
	body, _ := json.Marshal(map[string]any{"action": action, "data": data})
	req, _ := http.NewRequest("POST", "http://"+addr+PathAdmin, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var env struct{ Success bool }
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return false, err
	}
	return resp.StatusCode == 200 && env.Success, nil
}

// A node killed with SIGKILL while admin commands are being written comes
// back with every acknowledged command: its effect (rate limits, alert
// rules), its audit record, and maintenance mode on.
func TestCrashKeepsAcknowledgedCommands(t *testing.T) {
	dir := t.TempDir()
	cmd, addrs := startChild(t, dir)
	tok, err := AdminToken([]byte(testAdminSecret), "crash-test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second}

	// Maintenance goes on first, acknowledged, then writers keep going.
	if ok, err := post(client, addrs.Control, tok, ActionSetMaintenanceMode, map[string]any{"enabled": true, "reason": "before the crash"}); !ok || err != nil {
		t.Fatalf("maintenance: %v %v", ok, err)
	}
	type ack struct {
		kind string // "rate" or "alert"
		key  string
		val  int
	}
	var (
		mu    sync.Mutex
		acked []ack
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	const writers = 8
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var a ack
				var ok bool
				var err error
				if i%2 == 0 {
					a = ack{"rate", fmt.Sprintf("user-%d-%d", w, i), i + 1}
					ok, err = post(client, addrs.Control, tok, ActionSetRateLimit, map[string]any{"userId": a.key, "limit": a.val, "windowMs": 1000})
				} else {
					a = ack{"alert", fmt.Sprintf("rule-%d-%d", w, i), i}
					ok, err = post(client, addrs.Control, tok, ActionConfigureAlert, map[string]any{"name": a.key, "metric": "connections", "threshold": a.val})
				}
				if err != nil {
					return // the node is gone
				}
				if ok {
					mu.Lock()
					acked = append(acked, a)
					mu.Unlock()
				}
			}
		}()
	}
	// Kill once a good number are through, with requests in flight.
	wstest.WaitFor(t, "acknowledged commands", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 500
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d commands acknowledged before SIGKILL", len(acked))

	// Restart on the same data dir.
	_, addrs = startChild(t, dir)
	get := func(path string) []byte {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+addrs.Control+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b
	}
	var st struct {
		Data AdminStatus `json:"data"`
	}
	if err := json.Unmarshal(get(PathAdmin), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Data.Maintenance.Enabled || st.Data.Maintenance.Reason != "before the crash" {
		t.Fatalf("maintenance after the crash: %+v", st.Data.Maintenance)
	}
	if h := get(PathHealth); !bytes.Contains(h, []byte(`"status":"maintenance"`)) {
		t.Fatalf("health after the crash: %s", h)
	}
	if _, resp, err := dialRaw(addrs.WS); err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatal("the restarted node admitted a client in maintenance")
	}
	limits := map[string]int{}
	for _, rl := range st.Data.RateLimits {
		limits[rl.UserID] = rl.Limit
	}
	rules := map[string]float64{}
	for _, a := range st.Data.Alerts {
		rules[a.Name] = a.Threshold
	}

	// Every audit record, paging back through the log.
	audited := map[string]bool{}
	var before uint64
	for {
		body, _ := json.Marshal(map[string]any{"action": ActionGetCommandHistory, "data": map[string]any{"limit": 1000, "before": before}})
		req, _ := http.NewRequest("POST", "http://"+addrs.Control+PathAdmin, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Data struct{ Commands []AuditRecord } `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Data.Commands {
			var d struct{ UserID, Name string }
			_ = json.Unmarshal(r.Data, &d)
			if r.Result == ResultOK {
				audited[d.UserID+d.Name] = true
			}
			before = r.Seq
		}
		if len(page.Data.Commands) < 1000 {
			break
		}
	}

	missing := 0
	for _, a := range acked {
		switch a.kind {
		case "rate":
			if limits[a.key] != a.val {
				missing++
				t.Errorf("acknowledged rate limit %s=%d is %d after the crash", a.key, a.val, limits[a.key])
			}
		case "alert":
			if th, ok := rules[a.key]; !ok || th != float64(a.val) {
				missing++
				t.Errorf("acknowledged alert rule %s=%d is missing after the crash", a.key, a.val)
			}
		}
		if !audited[a.key] {
			missing++
			t.Errorf("acknowledged command on %s is not in the audit log", a.key)
		}
		if missing > 10 {
			t.Fatal("too many losses")
		}
	}
}
