// Command capacity is the capacity suite behind `make capacity`: it builds
// sockmon and the reference echo servers (bench/refservers, their own
// module), runs the same `sockmon load` against each of them one after
// another, repeats, and writes the medians to bench/RESULTS.md.
//
// Scenarios, each against a freshly started server:
//
//	idle    connect-only, -idle-conns connections held: server RSS per connection,
//	        and the load generator's own RSS at the hold
//	closed  closed loop, 100 connections, 64-byte binary: messages/s and server CPU per message
//	open    open model at half of sockmon's median closed-loop rate, -open-conns
//	        connections: corrected p50/p99/p99.9
//	steady  the same at -steady-rate, a rate every server sustains on this
//	        machine (0 skips it)
//	fanout  sockmon and the raw netpoll server only: -fanout-members connections
//	        join one room and one of them publishes in a closed loop: deliveries/s
//	fanout-saturated
//	        the same room kept saturated by -fanout-publishers publishers, each
//	        publishing again as soon as every member has its last message:
//	        deliveries/s, publish-to-delivery and publish-to-last-delivery
//	        p50/p99, generator CPU; sockmon with write coalescing on and off
//	        (--write-coalescing) and the raw netpoll server
//
// -scenarios picks which run (open needs closed: its rate is half of
// sockmon's closed-loop rate).
//
// RESULTS.md is rewritten on every run except its hand-written part: from
// the first "## Notes" heading to the end (handNotes).
//
// Server RSS comes from /proc/PID/status (VmRSS) and server CPU from
// /proc/PID/stat (utime+stime). Run from the repository root.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sockmon/sockmon/loadtest"
)

type options struct {
	bin         string
	load        []string
	repeats     int
	out         string
	logs        string
	idleConns   int
	openConns   int
	closedConn  int
	duration    time.Duration
	openDur     time.Duration // measured phase of the open-model runs
	openNice    int           // the generator's niceness in the open-model runs (0: as the harness's)
	ramp        int
	sources     string
	servers     []string
	steadyRate  float64
	fanMembers  int
	fanPubs     int             // publishers of the saturated fan-out
	scenarios   map[string]bool // the scenarios to run
	metrics     bool            // pass --metrics-url to load runs against sockmon
	noRescue    bool            // also run sockmon with --poller-rescue off (closed loop, open model)
}

// server is one server under test.
type server struct {
	name string
	kind string // "sockmon", "variant" (sockmon with another flag), "peer" or "raw"
	bin  string
	args func(addr, control string) []string
}

// result is one scenario run against one server.
type result struct {
	err error

	idleConns      int
	idleRSSPerConn float64 // bytes
	idleRSSBefore  int64
	idleRSSHeld    int64
	idleLoadRSS    int64 // the generator's own VmRSS while it holds the connections
	idleLoadHWM    int64 // the generator's VmHWM (peak, the ramp included) at the hold

	closedRate    float64 // replies per second
	closedCPUUS   float64 // server CPU per message, µs
	closedErrors  int64
	closedLoadCPU float64 // generator utilization (0-1)

	openRate     float64
	openAchieved float64 // achieved / requested
	openP50      float64
	openP99      float64
	openP999     float64
	openErrors   int64
	openLoadCPU  float64
	openLag99    float64 // ms the generator's sends left after their intended time, p99
	openNice     int     // the generator's niceness as /proc showed it during the run

	fanDeliveries float64 // deliveries per second
	fanP50        float64 // ms from a publish to its last delivery
	fanP99        float64
	fanErrors     int64
	fanLoadCPU    float64
	fanLoadUS     float64 // generator CPU per delivery, µs
	fanDelivP50   float64 // ms from a publish to each delivery (saturated fan-out)
	fanDelivP99   float64
}

func main() {
	o := options{}
	var load, servers string
	flag.StringVar(&o.bin, "bin", "bin/capacity", "directory for the binaries it builds")
	flag.StringVar(&load, "load", "", "load generator command (default: BIN/sockmon load)")
	flag.IntVar(&o.repeats, "repeats", 3, "runs of every scenario against every server; the table shows medians")
	flag.StringVar(&o.out, "out", "bench/RESULTS.md", "results file")
	flag.StringVar(&o.logs, "logs", "bench/out", "directory for server logs and load reports")
	flag.IntVar(&o.idleConns, "idle-conns", 15000, "connections held in the idle scenario")
	flag.IntVar(&o.openConns, "open-conns", 10000, "connections in the open-model scenario")
	flag.IntVar(&o.closedConn, "closed-conns", 100, "connections in the closed-loop scenario")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured phase of every load run")
	flag.DurationVar(&o.openDur, "open-duration", 0, "measured phase of the open-model runs (default: -duration)")
	flag.BoolVar(&o.noRescue, "no-rescue", true, "also run sockmon with --poller-rescue off in the closed loop and the open model")
	flag.IntVar(&o.openNice, "open-nice", -10, "niceness of the load generator in the open-model runs, whose schedule the server under test must not push back (0: unchanged; below 0 needs root)")
	flag.IntVar(&o.ramp, "ramp", 5000, "connections per second while ramping")
	flag.StringVar(&o.sources, "sources", "127.0.0.2-127.0.0.9", "source addresses of the load's connections")
	flag.StringVar(&servers, "servers", "sockmon,gorilla,gws,nbio,netpollraw", "servers to measure")
	flag.Float64Var(&o.steadyRate, "steady-rate", 0, "also run the open model at this rate (messages/s), one every server sustains; 0 skips it")
	flag.IntVar(&o.fanMembers, "fanout-members", 10000, "room members in the fan-out scenarios (0 skips them)")
	flag.IntVar(&o.fanPubs, "fanout-publishers", 32, "publishers keeping the room saturated in the fanout-saturated scenario")
	scenarios := flag.String("scenarios", strings.Join(allScenarios, ","), "scenarios to run, comma-separated (open needs closed)")
	flag.Parse()
	o.scenarios = map[string]bool{}
	for _, sc := range strings.Split(*scenarios, ",") {
		if !slices.Contains(allScenarios, sc) {
			fatalf("-scenarios: unknown scenario %q (want some of %s)", sc, strings.Join(allScenarios, ","))
		}
		o.scenarios[sc] = true
	}
	if o.scenarios["open"] && !o.scenarios["closed"] {
		fatalf("-scenarios: open runs at half of sockmon's closed-loop rate: add closed")
	}
	o.servers = strings.Split(servers, ",")
	if load != "" {
		o.load = strings.Fields(load)
	}
	if o.openDur == 0 {
		o.openDur = o.duration
	}
	if o.repeats < 1 || o.repeats > 20 || o.duration <= 0 || o.duration > 10*time.Minute || o.openDur < 0 || o.openDur > 10*time.Minute {
		fatalf("repeats 1..20 and durations up to 10m, got %d, %v and %v", o.repeats, o.duration, o.openDur)
	}
	if o.openNice < -20 || o.openNice > 19 {
		fatalf("-open-nice: %d is not a niceness (-20..19)", o.openNice)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fatalf("%v", err)
	}
}

// allScenarios are the scenarios in the order they run.
var allScenarios = []string{"idle", "closed", "open", "steady", "fanout", "fanout-saturated"}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "capacity: "+format+"\n", args...)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func numCPU() int { return runtime.NumCPU() }

func run(ctx context.Context, o options) error {
	started := time.Now()
	if err := os.MkdirAll(o.logs, 0o755); err != nil {
		return err
	}
	all, metricsOn, err := build(o)
	if err != nil {
		return err
	}
	o.metrics = metricsOn
	var servers []server
	for _, name := range o.servers {
		i := slices.IndexFunc(all, func(s server) bool { return s.name == name })
		if i < 0 {
			return fmt.Errorf("unknown server %q", name)
		}
		servers = append(servers, all[i])
		if name == "sockmon" && o.noRescue {
			servers = append(servers, all[slices.IndexFunc(all, func(s server) bool { return s.name == rescueOff })])
		}
	}
	if len(o.load) == 0 {
		o.load = []string{filepath.Join(o.bin, "sockmon"), "load"}
	}
	if err := exec.Command(o.load[0], append(o.load[1:], "--help")...).Run(); err != nil {
		return fmt.Errorf("%s --help: %v (is `sockmon load` wired into main.go? -load names another command)", strings.Join(o.load, " "), err)
	}

	res := map[string]map[string][]result{} // scenario -> server -> runs
	add := func(sc, srv string, r result) {
		if res[sc] == nil {
			res[sc] = map[string][]result{}
		}
		res[sc][srv] = append(res[sc][srv], r)
	}
	for rep := 1; rep <= o.repeats; rep++ {
		for _, s := range servers {
			for _, sc := range []string{"idle", "closed"} {
				if !o.scenarios[sc] || sc == "idle" && s.kind == "variant" {
					continue
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				logf("repeat %d/%d: %s %s", rep, o.repeats, s.name, sc)
				r := scenario(ctx, o, s, sc, 0, rep)
				if r.err != nil {
					logf("  %s %s: %v", s.name, sc, r.err)
				}
				add(sc, s.name, r)
			}
		}
	}
	sat := median(values(res["closed"]["sockmon"], func(r result) float64 { return r.closedRate }))
	if o.scenarios["open"] && !(sat > 0) {
		return errors.New("no sockmon closed-loop rate to derive the open-model rate from")
	}
	openRate := float64(int(sat / 2))
	for rep := 1; rep <= o.repeats && o.scenarios["open"]; rep++ {
		for _, s := range servers {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			logf("repeat %d/%d: %s open at %.0f msg/s", rep, o.repeats, s.name, openRate)
			r := scenario(ctx, o, s, "open", openRate, rep)
			if r.err != nil {
				logf("  %s open: %v", s.name, r.err)
			}
			add("open", s.name, r)
		}
	}
	if o.steadyRate > 0 && o.scenarios["steady"] {
		for rep := 1; rep <= o.repeats; rep++ {
			for _, s := range servers {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				logf("repeat %d/%d: %s open at %.0f msg/s (steady)", rep, o.repeats, s.name, o.steadyRate)
				r := scenario(ctx, o, s, "steady", o.steadyRate, rep)
				if r.err != nil {
					logf("  %s steady: %v", s.name, r.err)
				}
				add("steady", s.name, r)
			}
		}
	}
	if o.fanMembers > 0 && o.scenarios["fanout"] {
		for rep := 1; rep <= o.repeats; rep++ {
			for _, s := range servers {
				if s.kind == "peer" || s.kind == "variant" {
					continue
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				logf("repeat %d/%d: %s fan-out to %d members", rep, o.repeats, s.name, o.fanMembers)
				r := scenario(ctx, o, s, "fanout", 0, rep)
				if r.err != nil {
					logf("  %s fanout: %v", s.name, r.err)
				}
				add("fanout", s.name, r)
			}
		}
	}
	if o.fanMembers > 0 && o.scenarios["fanout-saturated"] {
		for rep := 1; rep <= o.repeats; rep++ {
			for _, s := range saturatedServers(servers) {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				logf("repeat %d/%d: %s fan-out to %d members, %d publishers", rep, o.repeats, s.name, o.fanMembers, o.fanPubs)
				r := scenario(ctx, o, s, "fanout-saturated", 0, rep)
				if r.err != nil {
					logf("  %s fanout-saturated: %v", s.name, r.err)
				}
				add("fanout-saturated", s.name, r)
			}
		}
	}
	doc := results(o, servers, res, resultsInfo{
		started: started, elapsed: time.Since(started), saturation: sat, openRate: openRate, metricsOn: metricsOn,
	})
	if old, err := os.ReadFile(o.out); err == nil {
		doc += handNotes(string(old))
	}
	if err := os.WriteFile(o.out, []byte(doc), 0o644); err != nil {
		return err
	}
	logf("wrote %s in %v", o.out, time.Since(started).Round(time.Second))
	return nil
}

// build compiles sockmon from the main module and every reference server
// from bench/refservers (its own module, built with -mod=mod so no go.work
// is needed). It reports whether sockmon serve has --control-addr, i.e.
// runs with its metrics endpoint on.
func build(o options) ([]server, bool, error) {
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return nil, false, err
	}
	logf("building into %s", bin)
	goCmd := func(dir string, args ...string) error {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, out)
		}
		return nil
	}
	if err := goCmd(".", "build", "-o", filepath.Join(bin, "sockmon"), "./cmd/sockmon"); err != nil {
		return nil, false, err
	}
	refs := []string{"gorilla", "gws", "nbio", "netpollraw"}
	for _, r := range refs {
		if err := goCmd("bench/refservers", "build", "-o", filepath.Join(bin, "ref-"+r), "./"+r); err != nil {
			return nil, false, err
		}
	}
	help, _ := exec.Command(filepath.Join(bin, "sockmon"), "serve", "--help").CombinedOutput()
	metricsOn := bytes.Contains(help, []byte("--control-addr"))
	sockmonArgs := func(addr, control string) []string {
		a := []string{"serve", "--addr", addr, "--echo-path", "/echo",
			"--max-conns", strconv.Itoa(max(o.idleConns, o.openConns, o.fanMembers) + 1000), "--max-message-size", "65536",
			"--conn-rate", "0", "--message-rate", "0", "--message-bytes-rate", "0", "--room-publish-rate", "0", "--drain-delay", "0s"}
		if metricsOn {
			a = append(a, "--control-addr", control, "--data-dir", filepath.Join(o.logs, "sockmon-data"))
		}
		return a
	}
	servers := []server{{name: "sockmon", kind: "sockmon", bin: filepath.Join(bin, "sockmon"), args: sockmonArgs}}
	servers = append(servers, server{name: rescueOff, kind: "variant", bin: filepath.Join(bin, "sockmon"),
		args: func(addr, control string) []string { return append(sockmonArgs(addr, control), "--poller-rescue", "off") }})
	for _, r := range refs {
		kind := "peer"
		if r == "netpollraw" {
			kind = "raw"
		}
		servers = append(servers, server{name: r, kind: kind, bin: filepath.Join(bin, "ref-"+r),
			args: func(addr, _ string) []string { return []string{"-addr", addr} }})
	}
	return servers, metricsOn, nil
}

// rescueOff is the name of sockmon run with --poller-rescue off, beside
// sockmon as configured in the closed loop and the open model.
const rescueOff = "sockmon-no-rescue"

// coalescingOff is the name of sockmon run with --write-coalescing off.
const coalescingOff = "sockmon-coalescing-off"

// saturatedServers are the servers of the saturated fan-out: sockmon as
// configured (write coalescing on by default), sockmon with it off, and
// the raw netpoll server; the peers have no rooms.
func saturatedServers(servers []server) []server {
	var out []server
	for _, s := range servers {
		switch s.kind {
		case "sockmon":
			out = append(out, s)
			args := s.args
			out = append(out, server{name: coalescingOff, kind: s.kind, bin: s.bin, args: func(addr, control string) []string {
				return append(args(addr, control), "--write-coalescing", "off")
			}})
		case "raw":
			out = append(out, s)
		}
	}
	return out
}

// sockmonArgsDoc is how RESULTS.md shows sockmon's command line.
func sockmonArgsDoc(o options, metricsOn bool) string {
	a := fmt.Sprintf("sockmon serve --addr 127.0.0.1:PORT --echo-path /echo --max-conns %d --max-message-size 65536 --conn-rate 0 --message-rate 0 --message-bytes-rate 0 --room-publish-rate 0 --drain-delay 0s",
		max(o.idleConns, o.openConns, o.fanMembers)+1000)
	if metricsOn {
		a += " --control-addr 127.0.0.1:PORT2 --data-dir DIR"
	}
	return a
}

// running is a started server process.
type running struct {
	cmd     *exec.Cmd
	addr    string
	control string // sockmon's control address, when it has one
	log     *os.File
	exited  chan struct{} // closed when the process has been waited for
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func start(o options, s server, tag string) (*running, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	control, err := freePort()
	if err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(o.logs, tag+".server.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(s.bin, s.args(addr, control)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	exited := make(chan struct{})
	r := &running{cmd: cmd, addr: addr, log: log, exited: exited}
	if (s.kind == "sockmon" || s.kind == "variant") && o.metrics {
		r.control = control
	}
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			log.Close()
			return nil, fmt.Errorf("%s exited at start (see %s)", s.name, log.Name())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			r.stop()
			return nil, fmt.Errorf("%s not listening on %s after 10s", s.name, addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // let start-up allocation settle before reading RSS
	return r, nil
}

func (r *running) pid() int { return r.cmd.Process.Pid }

// stop sends SIGTERM to the server it started and kills it after 10s.
func (r *running) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
	r.log.Close()
}

// loadRun runs the load generator with args and decodes its JSON report.
// during, when not nil, runs while the generator does; finished is closed
// when the generator has exited.
func loadRun(ctx context.Context, o options, tag string, args []string, during func(finished <-chan struct{})) (*loadtest.Report, error) {
	var d func(int, <-chan struct{})
	if during != nil {
		d = func(_ int, finished <-chan struct{}) { during(finished) }
	}
	return loadRunProc(ctx, o, tag, args, 0, d)
}

// loadRunProc is loadRun whose during is also given the generator's PID,
// with the generator started at niceness nice (0: the harness's own, else
// through nice(1), which runs it unchanged where it may not).
func loadRunProc(ctx context.Context, o options, tag string, args []string, nice int, during func(pid int, finished <-chan struct{})) (*loadtest.Report, error) {
	full := append(append(slices.Clone(o.load[1:]), args...), "--json")
	name := o.load[0]
	if nice != 0 {
		full = append([]string{"-n", strconv.Itoa(nice), name}, full...)
		name = "nice"
	}
	cmd := exec.CommandContext(ctx, name, full...)
	var stdout bytes.Buffer
	errLog, err := os.Create(filepath.Join(o.logs, tag+".load.log"))
	if err != nil {
		return nil, err
	}
	defer errLog.Close()
	fmt.Fprintf(errLog, "%s %s\n", name, strings.Join(full, " "))
	cmd.Stdout, cmd.Stderr = &stdout, errLog
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	finished := make(chan struct{})
	go func() { err = cmd.Wait(); close(finished) }()
	if during != nil {
		during(cmd.Process.Pid, finished)
	}
	<-finished
	_ = os.WriteFile(filepath.Join(o.logs, tag+".report.json"), stdout.Bytes(), 0o644)
	var rep loadtest.Report
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		return nil, fmt.Errorf("load: %v; report: %v", err, jerr)
	}
	return &rep, nil
}

func scenario(ctx context.Context, o options, s server, sc string, rate float64, rep int) result {
	tag := fmt.Sprintf("%s-%s-%d", s.name, sc, rep)
	srv, err := start(o, s, tag)
	if err != nil {
		return result{err: err}
	}
	defer srv.stop()
	url := "ws://" + srv.addr + "/echo"
	dur := o.duration.String()
	var extra []string
	if srv.control != "" {
		extra = []string{"--metrics-url", "http://" + srv.control + "/metrics"}
	}
	switch sc {
	case "fanout", "fanout-saturated":
		if s.kind == "sockmon" {
			url = "ws://" + srv.addr + "/ws"
		}
		pubs := 1
		if sc == "fanout-saturated" {
			pubs = o.fanPubs
		}
		rp, err := loadRun(ctx, o, tag, append([]string{"--url", url, "--conns", strconv.Itoa(o.fanMembers), "--ramp", strconv.Itoa(o.ramp),
			"--duration", dur, "--size", "64", "--mode", "publish", "--publishers", strconv.Itoa(pubs), "--sources", o.sources}, extra...), nil)
		if err != nil {
			return result{err: err}
		}
		if rp.Publish == nil || rp.Publish.Members < int64(o.fanMembers) {
			return result{err: fmt.Errorf("fan-out: %v members joined of %d (errors %v)", rp.Publish, o.fanMembers, rp.Errors.ByClass)}
		}
		return result{fanDeliveries: rp.Publish.DeliveriesPerSecond, fanP50: rp.Publish.FanoutMS.P50, fanP99: rp.Publish.FanoutMS.P99,
			fanErrors: rp.Errors.Total, fanLoadCPU: rp.Client.Utilization, fanLoadUS: rp.Client.CPUPerMessageUS,
			fanDelivP50: rp.Latency.Corrected.P50, fanDelivP99: rp.Latency.Corrected.P99}
	case "idle":
		return idle(ctx, o, srv, tag, url, dur)
	case "closed":
		cpu0, _ := cpuTime(srv.pid())
		rp, err := loadRun(ctx, o, tag, append([]string{"--url", url, "--conns", strconv.Itoa(o.closedConn), "--duration", dur,
			"--size", "64", "--mode", "echo-binary", "--sources", o.sources}, extra...), nil)
		cpu1, _ := cpuTime(srv.pid())
		if err != nil {
			return result{err: err}
		}
		r := result{closedRate: rp.Messages.ReceivedRate, closedErrors: rp.Errors.Total, closedLoadCPU: rp.Client.Utilization}
		if rp.Messages.Received > 0 {
			r.closedCPUUS = float64((cpu1 - cpu0).Microseconds()) / float64(rp.Messages.Received)
		}
		return r
	default:
		niceness := math.MinInt
		rp, err := loadRunProc(ctx, o, tag, append([]string{"--url", url, "--conns", strconv.Itoa(o.openConns), "--ramp", strconv.Itoa(o.ramp),
			"--rate", strconv.FormatFloat(rate, 'f', 0, 64), "--duration", o.openDur.String(), "--size", "64", "--mode", "echo-binary",
			"--sources", o.sources}, extra...), o.openNice, func(pid int, finished <-chan struct{}) {
			select {
			case <-time.After(time.Second): // nice(1) has exec'd the generator
				niceness = procNice(pid)
			case <-finished:
			}
		})
		if err != nil {
			return result{err: err}
		}
		r := result{openRate: rate, openP50: rp.Latency.Corrected.P50, openP99: rp.Latency.Corrected.P99,
			openP999: rp.Latency.Corrected.P999, openErrors: rp.Errors.Total, openLoadCPU: rp.Client.Utilization,
			openLag99: rp.Latency.ScheduleLag.P99, openNice: niceness}
		if rp.Messages.RateRatio != nil {
			r.openAchieved = *rp.Messages.RateRatio
		}
		return r
	}
}

// idle holds o.idleConns connections and reads the server's RSS while they
// are all held: the median of the samples taken while the server's open
// descriptors are at their plateau. The generator's own RSS is sampled with
// it (the median over the same plateau) and its VmHWM at the last of them.
func idle(ctx context.Context, o options, srv *running, tag, url, dur string) result {
	pid := srv.pid()
	before, err := rssBytes(pid)
	if err != nil {
		return result{err: err}
	}
	baseFDs := openFDs(pid)
	type sample struct {
		fds              int
		rss              int64
		loadRSS, loadHWM int64 // 0 when unread
	}
	var samples []sample
	rp, err := loadRunProc(ctx, o, tag, []string{"--url", url, "--conns", strconv.Itoa(o.idleConns), "--ramp", strconv.Itoa(o.ramp),
		"--duration", dur, "--mode", "connect-only", "--sources", o.sources}, 0, func(loadPID int, finished <-chan struct{}) {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-finished:
				return
			case <-tick.C:
				fds := openFDs(pid)
				if rss, err := rssBytes(pid); err == nil {
					lr, _ := rssBytes(loadPID)
					lh, _ := statusBytes(loadPID, "VmHWM")
					samples = append(samples, sample{fds, rss, lr, lh})
				}
			}
		}
	})
	if err != nil {
		return result{err: err}
	}
	peak := 0
	for _, s := range samples {
		peak = max(peak, s.fds)
	}
	var plateau, loadPlateau []float64
	var loadHWM int64
	for _, s := range samples {
		if s.fds >= peak-peak/200 && s.fds > baseFDs {
			plateau = append(plateau, float64(s.rss))
			if s.loadRSS > 0 {
				loadPlateau = append(loadPlateau, float64(s.loadRSS))
				loadHWM = s.loadHWM
			}
		}
	}
	held := peak - baseFDs
	if len(plateau) == 0 || held <= 0 {
		return result{err: fmt.Errorf("no connections held (report: %d established, errors %v)",
			rp.Connections.Established, rp.Errors.ByClass)}
	}
	heldRSS := median(plateau)
	r := result{idleConns: held, idleRSSBefore: before, idleRSSHeld: int64(heldRSS),
		idleRSSPerConn: (heldRSS - float64(before)) / float64(held), idleLoadHWM: loadHWM}
	if len(loadPlateau) > 0 {
		r.idleLoadRSS = int64(median(loadPlateau))
	}
	return r
}

// notesHeading starts the hand-written part of RESULTS.md: analysis of the
// runs that a table cannot say. Everything from the first line that starts
// with it to the end of the file is kept when the suite rewrites the file.
const notesHeading = "## Notes"

// handNotes returns the hand-written part of an existing RESULTS.md, with a
// blank line before it, or "" when it has none.
func handNotes(old string) string {
	i := strings.Index(old, "\n"+notesHeading)
	if i < 0 {
		return ""
	}
	return "\n" + old[i+1:]
}
