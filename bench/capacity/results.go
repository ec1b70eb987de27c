package main

import (
	"fmt"
	"maps"
	"math"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

func values(rs []result, f func(result) float64) []float64 {
	var out []float64
	for _, r := range rs {
		if r.err == nil {
			out = append(out, f(r))
		}
	}
	return out
}

// median of xs; NaN when empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

type resultsInfo struct {
	started    time.Time
	elapsed    time.Duration
	saturation float64
	openRate   float64
	metricsOn  bool
}

// loadRSSTarget is issue 18's bound on the generator's RSS while it holds
// the idle scenario's connections: 64 MB.
const loadRSSTarget = 64e6

// row is the medians of one server.
type row struct {
	name, kind                 string
	rssPerConn, held           float64
	loadRSS, loadHWM           float64 // the generator's own VmRSS at the idle hold, and its peak
	rate, cpuUS                float64
	p50, p99, p999, achieved   float64
	closedLoadCPU, openLoadCPU float64
	sP50, sP99, sP999          float64 // open model at the steady rate
	sAchieved, sLoadCPU        float64
	lag99, sLag99              float64 // the generator's send lag p99 (ms): at half of saturation, at the steady rate
	fan, fanP50, fanP99        float64 // fan-out deliveries/s and publish-to-last-delivery ms
	fanLoadCPU, fanLoadUS      float64
	errs                       []string
}

func summarizeRows(servers []server, res map[string]map[string][]result) []row {
	var rows []row
	for _, s := range servers {
		r := row{name: s.name, kind: s.kind}
		idle, closed, open := res["idle"][s.name], res["closed"][s.name], res["open"][s.name]
		r.rssPerConn = median(values(idle, func(x result) float64 { return x.idleRSSPerConn }))
		r.held = median(values(idle, func(x result) float64 { return float64(x.idleConns) }))
		r.loadRSS = median(values(idle, func(x result) float64 { return float64(x.idleLoadRSS) }))
		r.loadHWM = median(values(idle, func(x result) float64 { return float64(x.idleLoadHWM) }))
		r.rate = median(values(closed, func(x result) float64 { return x.closedRate }))
		r.cpuUS = median(values(closed, func(x result) float64 { return x.closedCPUUS }))
		r.closedLoadCPU = median(values(closed, func(x result) float64 { return x.closedLoadCPU }))
		r.p50 = median(values(open, func(x result) float64 { return x.openP50 }))
		r.p99 = median(values(open, func(x result) float64 { return x.openP99 }))
		r.p999 = median(values(open, func(x result) float64 { return x.openP999 }))
		r.achieved = median(values(open, func(x result) float64 { return x.openAchieved }))
		r.openLoadCPU = median(values(open, func(x result) float64 { return x.openLoadCPU }))
		r.lag99 = median(values(open, func(x result) float64 { return x.openLag99 }))
		steady, fan := res["steady"][s.name], res["fanout"][s.name]
		r.sP50 = median(values(steady, func(x result) float64 { return x.openP50 }))
		r.sP99 = median(values(steady, func(x result) float64 { return x.openP99 }))
		r.sP999 = median(values(steady, func(x result) float64 { return x.openP999 }))
		r.sAchieved = median(values(steady, func(x result) float64 { return x.openAchieved }))
		r.sLoadCPU = median(values(steady, func(x result) float64 { return x.openLoadCPU }))
		r.sLag99 = median(values(steady, func(x result) float64 { return x.openLag99 }))
		r.fan = median(values(fan, func(x result) float64 { return x.fanDeliveries }))
		r.fanP50 = median(values(fan, func(x result) float64 { return x.fanP50 }))
		r.fanP99 = median(values(fan, func(x result) float64 { return x.fanP99 }))
		r.fanLoadCPU = median(values(fan, func(x result) float64 { return x.fanLoadCPU }))
		r.fanLoadUS = median(values(fan, func(x result) float64 { return x.fanLoadUS }))
		for sc, rs := range map[string][]result{"idle": idle, "closed": closed, "open": open, "steady": steady, "fanout": fan} {
			var n int64
			for _, x := range rs {
				if x.err != nil {
					r.errs = append(r.errs, fmt.Sprintf("%s: %v", sc, x.err))
				}
				n += x.closedErrors + x.openErrors + x.fanErrors
			}
			if n > 0 {
				r.errs = append(r.errs, fmt.Sprintf("%s: %d load errors over %d runs", sc, n, len(rs)))
			}
		}
		slices.Sort(r.errs)
		rows = append(rows, r)
	}
	return rows
}

func num(v float64, format string) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf(format, v)
}

func results(o options, servers []server, res map[string]map[string][]result, info resultsInfo) string {
	rows := summarizeRows(servers, res)
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	goVersion, _ := exec.Command("go", "env", "GOVERSION").Output()

	p("# Capacity results\n\n")
	p("Written by `make capacity` (`go run ./bench/capacity`) on %s; the run took %v.\n\n",
		info.started.UTC().Format("2006-01-02 15:04 MST"), info.elapsed.Round(time.Second))
	p("- Machine: %s; %s. Load generator and server share the machine (loopback, separate processes).\n",
		machine(), strings.TrimSpace(string(goVersion)))
	metrics := "on (`--control-addr`, /metrics served)"
	if !info.metricsOn {
		metrics = "**off**: this build of `sockmon serve` has no `--control-addr` yet"
	}
	p("- sockmon metrics: %s.\n", metrics)
	p("- Every figure is the median of %d runs; each run starts the server afresh. Servers: sockmon, "+
		"the reference echo servers of `bench/refservers` (gorilla/websocket, lxzan/gws, lesismal/nbio, "+
		"and a raw netpoll echo as the ceiling), all with a 64 KiB message limit.\n\n", o.repeats)

	p("## Commands\n\n```\n")
	p("%s\nref-<name> -addr 127.0.0.1:PORT\n\n", sockmonArgsDoc(o, info.metricsOn))
	if o.noRescue {
		p("# %s: sockmon serve as above with --poller-rescue off, in scenarios 2, 3 and 3b\n\n", rescueOff)
	}
	if info.metricsOn {
		p("# against sockmon every load run below also has --metrics-url http://127.0.0.1:PORT2/metrics\n")
	}
	d := o.duration.String()
	if o.scenarios["idle"] {
		p("# 1. idle: server RSS (VmRSS) before, and while all connections are held; the generator's own VmRSS then, and its VmHWM\n")
		p("sockmon load --url ws://127.0.0.1:PORT/echo --mode connect-only --conns %d --ramp %d --duration %s --sources %s --json\n",
			o.idleConns, o.ramp, d, o.sources)
	}
	if o.scenarios["closed"] {
		p("# 2. closed loop: replies/s and server CPU (utime+stime) per message\n")
		p("sockmon load --url ws://127.0.0.1:PORT/echo --mode echo-binary --conns %d --size 64 --duration %s --sources %s --json\n",
			o.closedConn, d, o.sources)
	}
	nice := ""
	if o.openNice != 0 {
		nice = fmt.Sprintf("nice -n %d ", o.openNice)
	}
	if o.scenarios["open"] {
		p("# 3. open model at half of sockmon's median closed-loop rate (%.0f / 2 = %.0f msg/s)\n", info.saturation, info.openRate)
		p("%ssockmon load --url ws://127.0.0.1:PORT/echo --mode echo-binary --conns %d --ramp %d --rate %.0f --size 64 --duration %s --sources %s --json\n",
			nice, o.openConns, o.ramp, info.openRate, o.openDur, o.sources)
	}
	if o.steadyRate > 0 && o.scenarios["steady"] {
		p("# 3b. the open model at %.0f msg/s, a rate every server sustains here\n", o.steadyRate)
		p("%ssockmon load --url ws://127.0.0.1:PORT/echo --mode echo-binary --conns %d --ramp %d --rate %.0f --size 64 --duration %s --sources %s --json\n",
			nice, o.openConns, o.ramp, o.steadyRate, o.openDur, o.sources)
	}
	if o.fanMembers > 0 && o.scenarios["fanout"] {
		p("# 4. room fan-out: %d members join one room, one publishes in a closed loop (sockmon: /ws; raw netpoll: /echo)\n", o.fanMembers)
		p("sockmon load --url ws://127.0.0.1:PORT/ws --mode publish --publishers 1 --conns %d --ramp %d --size 64 --duration %s --sources %s --json\n",
			o.fanMembers, o.ramp, d, o.sources)
	}
	if o.fanMembers > 0 && o.scenarios["fanout-saturated"] {
		p("# 5. saturated room fan-out: %d publishers, each publishing again once every member has its last message;\n", o.fanPubs)
		p("#    sockmon as above, then with --write-coalescing off, then raw netpoll (/echo)\n")
		p("sockmon load --url ws://127.0.0.1:PORT/ws --mode publish --publishers %d --conns %d --ramp %d --size 64 --duration %s --sources %s --json\n",
			o.fanPubs, o.fanMembers, o.ramp, d, o.sources)
	}
	p("```\n\n")

	p("## Results\n\n")
	p("| server | idle RSS per conn (KiB) | conns held | generator RSS at the hold (MiB) | closed-loop msg/s | server CPU per msg (µs) | open p50 (ms) | open p99 (ms) | open p99.9 (ms) | open rate achieved | generator send lag p99 (ms) |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.name,
			num(r.rssPerConn/1024, "%.1f"), num(r.held, "%.0f"), num(r.loadRSS/(1<<20), "%.1f"), num(r.rate, "%.0f"), num(r.cpuUS, "%.1f"),
			num(r.p50, "%.3f"), num(r.p99, "%.3f"), num(r.p999, "%.3f"), num(r.achieved*100, "%.1f%%"), num(r.lag99, "%.3f"))
	}
	p("\nCorrected latency: measured from each message's intended send time on the constant-rate schedule " +
		"(coordinated omission corrected, as wrk2 does) to the kernel's receive timestamp of the reply. The generator's " +
		"send lag (a send's actual time minus its intended time) is part of it, whatever delayed the send.\n\n")
	if o.steadyRate > 0 {
		p("### Open model at %.0f msg/s, %d connections\n\n", o.steadyRate, o.openConns)
		p("| server | p50 (ms) | p99 (ms) | p99.9 (ms) | rate achieved | load generator CPU | generator send lag p99 (ms) |\n|---|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rows {
			p("| %s | %s | %s | %s | %s | %s | %s |\n", r.name, num(r.sP50, "%.3f"), num(r.sP99, "%.3f"), num(r.sP999, "%.3f"),
				num(r.sAchieved*100, "%.1f%%"), num(r.sLoadCPU*100, "%.0f%%"), num(r.sLag99, "%.3f"))
		}
		p("\n")
	}
	if o.fanMembers > 0 && o.scenarios["fanout-saturated"] {
		saturatedFanOut(&b, o, servers, res)
	}
	if o.fanMembers > 0 && o.scenarios["fanout"] {
		p("### Room fan-out, %d members\n\n", o.fanMembers)
		p("| server | deliveries/s | publish to last delivery p50 (ms) | p99 (ms) | load generator CPU | generator CPU per delivery (µs) |\n|---|---:|---:|---:|---:|---:|\n")
		var smFan, rawFan float64 = math.NaN(), math.NaN()
		for _, r := range rows {
			if r.kind == "peer" || r.kind == "variant" {
				continue
			}
			p("| %s | %s | %s | %s | %s | %s |\n", r.name, num(r.fan, "%.0f"), num(r.fanP50, "%.1f"), num(r.fanP99, "%.1f"),
				num(r.fanLoadCPU*100, "%.0f%%"), num(r.fanLoadUS, "%.1f"))
			switch r.kind {
			case "sockmon":
				smFan = r.fan
			case "raw":
				rawFan = r.fan
			}
		}
		p("\nsockmon / raw netpoll fan-out: %s.\n\n", num(smFan/rawFan, "%.2f"))
	}

	var sm *row
	var peers []row
	var raw *row
	for i := range rows {
		switch rows[i].kind {
		case "sockmon":
			sm = &rows[i]
		case "peer":
			peers = append(peers, rows[i])
		case "raw":
			raw = &rows[i]
		}
	}
	if sm != nil && (o.scenarios["idle"] || o.scenarios["closed"] || o.scenarios["open"]) {
		p("## Ratios\n\n")
		best := func(f func(row) float64, higher bool) (string, float64) {
			name, v := "", math.NaN()
			for _, r := range peers {
				x := f(r)
				if math.IsNaN(x) {
					continue
				}
				if math.IsNaN(v) || (higher && x > v) || (!higher && x < v) {
					name, v = r.name, x
				}
			}
			return name, v
		}
		p("| figure | sockmon | best peer | sockmon / best peer | raw netpoll | sockmon / raw |\n|---|---:|---:|---:|---:|---:|\n")
		line := func(label string, f func(row) float64, higher bool, format string) {
			bn, bv := best(f, higher)
			rv := math.NaN()
			if raw != nil {
				rv = f(*raw)
			}
			p("| %s | %s | %s (%s) | %s | %s | %s |\n", label, num(f(*sm), format), num(bv, format), bn,
				num(f(*sm)/bv, "%.2f"), num(rv, format), num(f(*sm)/rv, "%.2f"))
		}
		line("closed-loop msg/s (higher is better)", func(r row) float64 { return r.rate }, true, "%.0f")
		line("server CPU µs per msg (lower is better)", func(r row) float64 { return r.cpuUS }, false, "%.1f")
		line("idle RSS KiB per conn (lower is better)", func(r row) float64 { return r.rssPerConn / 1024 }, false, "%.1f")
		line("open p99 ms (lower is better)", func(r row) float64 { return r.p99 }, false, "%.3f")
		line("open p99.9 ms (lower is better)", func(r row) float64 { return r.p999 }, false, "%.3f")
		if o.steadyRate > 0 && o.scenarios["steady"] {
			line(fmt.Sprintf("p99 ms at %.0f msg/s (lower is better)", o.steadyRate), func(r row) float64 { return r.sP99 }, false, "%.3f")
			line(fmt.Sprintf("p99.9 ms at %.0f msg/s (lower is better)", o.steadyRate), func(r row) float64 { return r.sP999 }, false, "%.3f")
		}

		p("\n## Targets\n\n")
		_, bestRate := best(func(r row) float64 { return r.rate }, true)
		check := func(ok bool) string {
			if ok {
				return "met"
			}
			return "**not met**"
		}
		p("- Saturation throughput at least the best of gorilla, gws and nbio: %s / %s msg/s: %s.\n",
			num(sm.rate, "%.0f"), num(bestRate, "%.0f"), check(sm.rate >= bestRate))
		if raw != nil {
			p("- At least 85%% of the raw netpoll echo: %s of %s msg/s (%s): %s.\n",
				num(sm.rate, "%.0f"), num(raw.rate, "%.0f"), num(sm.rate/raw.rate*100, "%.1f%%"), check(sm.rate >= 0.85*raw.rate))
		}
		p("- At most 4 KiB of server RSS per idle connection at %d connections: %s KiB: %s.\n",
			o.idleConns, num(sm.rssPerConn/1024, "%.1f"), check(sm.rssPerConn <= 4096))
		p("- Corrected p99 at most 1 ms at half of saturation with %d connections: %s ms: %s.\n",
			o.openConns, num(sm.p99, "%.3f"), check(sm.p99 <= 1))
		if o.steadyRate > 0 {
			p("- The same at %.0f msg/s, the steady rate: %s ms: %s.\n", o.steadyRate, num(sm.sP99, "%.3f"), check(sm.sP99 <= 1))
		}
		// Issue 18 part 3: sockmon's tail at most the best peer's, figure by figure.
		tail := func(label string, f func(row) float64) {
			bn, bv := best(f, false)
			p("- Corrected %s at most the best peer's: %s ms against %s's %s: %s.\n", label, num(f(*sm), "%.3f"), bn, num(bv, "%.3f"),
				check(!math.IsNaN(f(*sm)) && f(*sm) <= bv))
		}
		if o.scenarios["open"] {
			tail("p99 at half of saturation", func(r row) float64 { return r.p99 })
			tail("p99.9 at half of saturation", func(r row) float64 { return r.p999 })
		}
		if o.steadyRate > 0 && o.scenarios["steady"] {
			tail(fmt.Sprintf("p99 at %.0f msg/s", o.steadyRate), func(r row) float64 { return r.sP99 })
			tail(fmt.Sprintf("p99.9 at %.0f msg/s", o.steadyRate), func(r row) float64 { return r.sP999 })
		}
		if !math.IsNaN(sm.loadRSS) {
			p("- The load generator holding %s connect-only connections in at most 64 MB (%.1f MiB) of RSS: %s MiB: %s.\n",
				num(sm.held, "%.0f"), loadRSSTarget/(1<<20), num(sm.loadRSS/(1<<20), "%.1f"), check(sm.loadRSS <= loadRSSTarget))
		}
		if !info.metricsOn {
			p("- The throughput targets ask for sockmon with metrics on; this run had them off (see above).\n")
		}
	}

	p("\n## Load generator\n\n")
	p("The generator runs as its own process on the same 2 cores. It reads every connection on epoll " +
		"loops of its own (one per core; in the open model one per core but one, the last core left to the " +
		"rest of the process) and handles frames inline. In the open model the loop fires the schedule: it " +
		"wakes at the next intended send but at most every 200µs, so a send leaves up to 200µs after its " +
		"intended time (charged to the corrected latency), and a reply's time is the kernel's receive " +
		"timestamp (SO_TIMESTAMPNS), so a reply read late is not charged. ")
	p("%s Median share of all cores it used (from its own getrusage): closed loop / open model at half of saturation",
		niceNote(o, res))
	if o.steadyRate > 0 {
		p(" / open model at %.0f msg/s", o.steadyRate)
	}
	p(".\n\n")
	for _, r := range rows {
		p("- %s: %s / %s", r.name, num(r.closedLoadCPU*100, "%.0f%%"), num(r.openLoadCPU*100, "%.0f%%"))
		if o.steadyRate > 0 {
			p(" / %s", num(r.sLoadCPU*100, "%.0f%%"))
		}
		p("\n")
	}
	p("\nIts own memory while it holds the idle scenario's connections (connect-only, VmRSS from /proc/PID/status, " +
		"the median over the hold; per connection is the whole RSS, the binary's pages included, over the connections " +
		"held), and its peak (VmHWM, the ramp included):\n\n")
	for _, r := range rows {
		p("- %s: %s MiB, %s KiB per connection, peak %s MiB\n", r.name, num(r.loadRSS/(1<<20), "%.1f"),
			num(r.loadRSS/r.held/1024, "%.2f"), num(r.loadHWM/(1<<20), "%.1f"))
	}
	var problems []string
	for _, r := range rows {
		for _, e := range r.errs {
			problems = append(problems, r.name+" "+e)
		}
	}
	if len(problems) > 0 {
		p("\n## Failures and errors\n\n")
		for _, e := range problems {
			p("- %s\n", e)
		}
	}
	p("\n## Every run\n\n| server | scenario | runs |\n|---|---|---|\n")
	for _, s := range servers {
		for _, sc := range []string{"idle", "closed", "open", "steady", "fanout"} {
			if len(res[sc][s.name]) == 0 {
				continue
			}
			var cells []string
			for _, x := range res[sc][s.name] {
				switch {
				case x.err != nil:
					cells = append(cells, "failed")
				case sc == "idle":
					cells = append(cells, fmt.Sprintf("%.1f KiB/conn (%d conns, %.0f → %.0f MiB; generator %.1f MiB, peak %.1f)",
						x.idleRSSPerConn/1024, x.idleConns, float64(x.idleRSSBefore)/(1<<20), float64(x.idleRSSHeld)/(1<<20),
						float64(x.idleLoadRSS)/(1<<20), float64(x.idleLoadHWM)/(1<<20)))
				case sc == "closed":
					cells = append(cells, fmt.Sprintf("%.0f msg/s, %.1f µs", x.closedRate, x.closedCPUUS))
				case sc == "fanout":
					cells = append(cells, fmt.Sprintf("%.0f deliveries/s, p50 %.1f ms", x.fanDeliveries, x.fanP50))
				default:
					cells = append(cells, fmt.Sprintf("p50 %.3f p99 %.3f p99.9 %.3f ms, %.1f%% of rate, send lag p99 %.3f ms",
						x.openP50, x.openP99, x.openP999, x.openAchieved*100, x.openLag99))
				}
			}
			p("| %s | %s | %s |\n", s.name, sc, strings.Join(cells, "; "))
		}
	}
	return b.String()
}

// saturatedFanOut writes the saturated fan-out's table: sockmon with write
// coalescing on and off and raw netpoll, medians, then every run.
func saturatedFanOut(b *strings.Builder, o options, servers []server, res map[string]map[string][]result) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("### Saturated room fan-out, %d members, %d publishers\n\n", o.fanMembers, o.fanPubs)
	p("Each publisher publishes again as soon as every member has its previous message (64-byte data), so %d publishes "+
		"are always in flight. Latencies are from the publish to each delivery and to the last delivery of the publish.\n\n", o.fanPubs)
	p("| server | deliveries/s | to delivery p50 (ms) | p99 (ms) | to last delivery p50 (ms) | p99 (ms) | load generator CPU |\n")
	p("|---|---:|---:|---:|---:|---:|---:|\n")
	med := func(rs []result, f func(result) float64) float64 { return median(values(rs, f)) }
	fan := map[string]float64{}
	var runs, problems []string
	for _, s := range saturatedServers(servers) {
		rs := res["fanout-saturated"][s.name]
		fan[s.name] = med(rs, func(x result) float64 { return x.fanDeliveries })
		p("| %s | %s | %s | %s | %s | %s | %s |\n", s.name, num(fan[s.name], "%.0f"),
			num(med(rs, func(x result) float64 { return x.fanDelivP50 }), "%.1f"),
			num(med(rs, func(x result) float64 { return x.fanDelivP99 }), "%.1f"),
			num(med(rs, func(x result) float64 { return x.fanP50 }), "%.1f"),
			num(med(rs, func(x result) float64 { return x.fanP99 }), "%.1f"),
			num(med(rs, func(x result) float64 { return x.fanLoadCPU })*100, "%.0f%%"))
		var cells []string
		var errs int64
		for _, x := range rs {
			if x.err != nil {
				cells = append(cells, "failed")
				problems = append(problems, fmt.Sprintf("%s: %v", s.name, x.err))
				continue
			}
			errs += x.fanErrors
			cells = append(cells, fmt.Sprintf("%.0f deliveries/s, last delivery p99 %.1f ms", x.fanDeliveries, x.fanP99))
		}
		if errs > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d load errors over %d runs", s.name, errs, len(rs)))
		}
		runs = append(runs, fmt.Sprintf("- %s: %s", s.name, strings.Join(cells, "; ")))
	}
	p("\nCoalescing on / off: %s deliveries/s. Runs:\n\n%s\n\n", num(fan["sockmon"]/fan[coalescingOff], "%.2f"), strings.Join(runs, "\n"))
	for _, e := range problems {
		p("- failure: %s\n", e)
	}
	if len(problems) > 0 {
		p("\n")
	}
}

// niceNote says at what niceness the generator ran the open-model runs, as
// /proc showed each run (nice(1) runs it unchanged where it may not lower
// it).
func niceNote(o options, res map[string]map[string][]result) string {
	if o.openNice == 0 {
		return "The open-model runs ran the generator at the harness's own niceness."
	}
	seen := map[int]int{}
	for _, sc := range []string{"open", "steady"} {
		for _, rs := range res[sc] {
			for _, x := range rs {
				if x.err == nil {
					seen[x.openNice]++
				}
			}
		}
	}
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(seen)) {
		v := strconv.Itoa(n)
		if n == math.MinInt {
			v = "unread"
		}
		parts = append(parts, fmt.Sprintf("%s in %d", v, seen[n]))
	}
	return fmt.Sprintf("The open-model runs start it with `nice -n %d`, so that the server under test, sharing its 2 cores, "+
		"does not push the schedule back: what the server delays is its replies, not the generator's sends. "+
		"Niceness the generator had, from /proc, by runs: %s.", o.openNice, strings.Join(parts, ", "))
}
