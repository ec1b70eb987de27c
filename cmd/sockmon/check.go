package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sockmon/sockmon/control/check"
)

// checkCommand is `sockmon check`: a Monitoring Plugins style check of a
// sockmon node (control/check does the work). Everything goes to stdout,
// errors included, and the exit code is the state: 0 OK, 1 WARNING,
// 2 CRITICAL, 3 UNKNOWN (also for --help, --version and bad arguments).
func checkCommand(args []string, stdout, _ io.Writer) int {
	return runCheck(context.Background(), args, stdout, os.Getenv)
}

const checkHelp = `Usage: sockmon check --url http://host:8081 [flags]

Checks a sockmon node: reads its health endpoint (GET /api/health/socket, or
the detailed POST view when an admin token is in the environment), times it,
and with --ws-url runs a canary: WebSocket upgrade, echo, ping, close 1000,
each step timed. Prints the result on stdout and exits with its state:
0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (--help, --version and bad arguments
exit 3 too).

States: healthy OK; degraded, maintenance and draining WARNING (see the
--*-state flags); unhealthy CRITICAL; a node that cannot be reached
(connection refused, unknown host) or answers something else CRITICAL; an
admin token it refuses UNKNOWN; a failed canary step CRITICAL (but a 503
from a node in maintenance or draining is that status, not a failure);
-t expiring UNKNOWN (--timeout-state critical to change it); any threshold
crossed WARNING or CRITICAL. The worst of them wins.

Flags:
  -u, --url URL              control side of the node, http://host:8081 (required);
                             a URL with a path is used as given
  --format FORMAT            text (default), json, nagios or prometheus
  -w, --warning RANGE        health response time in ms (default 1000)
  -c, --critical RANGE       health response time in ms (default 5000)
  --warning-connections RANGE, --critical-connections RANGE
                             open WebSocket connections
  --warning-error-rate RANGE, --critical-error-rate RANGE
                             message error rate over the last minute, in percent
  --warning-p99 RANGE, --critical-p99 RANGE
                             p99 message latency over the last minute, in ms
  -t, --timeout SECONDS      bound on the whole check, health and canary (default 10)
  --timeout-state STATE      state when -t expires: unknown (default) or critical
  --token-env NAME           environment variable holding an admin token; when it is
                             set the check reads the detailed view (default
                             SOCKMON_ADMIN_TOKEN; tokens are never taken as arguments)
  --ws-url URL               run the canary against this WebSocket URL (ws://host:8080/ws)
  --ws-token-env NAME        environment variable holding a client token for the
                             canary (servers run with --require-auth)
  --maintenance-state STATE  state for maintenance (default warning)
  --draining-state STATE     state for draining (default warning)
  --degraded-state STATE     state for degraded (default warning)
  --exit-codes STYLE         nagios (default: 0-3 as above) or docker: 0 for OK and
                             WARNING, 1 otherwise (Docker's HEALTHCHECK takes 0 and 1
                             only; 2 is reserved)
  -v, --verbose              more output, repeatable up to -v -v -v (nagios: 1 adds
                             facts to the line, 2 adds lines and perfdata, 3 the
                             configuration)
  -V, --version              print the version
  -h, --help                 print this help

RANGE is the Nagios range [@]start:end: "10" alerts outside 0..10, "10:"
below 10, "~:10" above 10, "@10:20" inside 10..20.

Examples:
  sockmon check --url http://127.0.0.1:8081 --format nagios -w 200 -c 1000
  SOCKMON_ADMIN_TOKEN=$(sockmon token --admin --sub nagios --ttl 8760h) \
    sockmon check -u http://10.0.0.5:8081 --ws-url ws://10.0.0.5:8080/ws --format json
  sockmon check -u http://127.0.0.1:8081 --format prometheus > sockmon.prom.tmp; \
    mv sockmon.prom.tmp /var/lib/node_exporter/textfile/sockmon.prom
`

// rangeFlag is a flag holding an optional Nagios range.
type rangeFlag struct{ r *check.Range }

func (f *rangeFlag) String() string {
	if f == nil || f.r == nil {
		return ""
	}
	return f.r.String()
}

func (f *rangeFlag) Set(s string) error {
	r, err := check.ParseRange(s)
	if err != nil {
		return err
	}
	f.r = &r
	return nil
}

// stateFlag is a flag holding a check state.
type stateFlag struct{ st check.State }

func (f *stateFlag) String() string { return strings.ToLower(f.st.String()) }

func (f *stateFlag) Set(s string) error {
	st, err := check.ParseState(s)
	f.st = st
	return err
}

// secondsFlag is a timeout in seconds ("10", "2.5") or a Go duration
// ("1500ms").
type secondsFlag struct{ d time.Duration }

func (f *secondsFlag) String() string { return strconv.FormatFloat(f.d.Seconds(), 'f', -1, 64) }

func (f *secondsFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return fmt.Errorf("%q is neither seconds nor a duration", s)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d <= 0 {
		return fmt.Errorf("%q is not positive", s)
	}
	f.d = d
	return nil
}

// countFlag counts -v; --verbose=N sets the level.
type countFlag struct{ n int }

func (f *countFlag) String() string   { return strconv.Itoa(f.n) }
func (f *countFlag) IsBoolFlag() bool { return true }

func (f *countFlag) Set(s string) error {
	if s == "true" {
		f.n++
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 3 {
		return fmt.Errorf("%q is not a level 0-3", s)
	}
	f.n = n
	return nil
}

// repeatedV turns -vv and -vvv into -v -v (-v -v -v), as getopt reads them.
var repeatedV = regexp.MustCompile(`^-v{2,3}$`)

func runCheck(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) int {
	unknown := func(format string, a ...any) int {
		fmt.Fprintf(stdout, "SOCKMON UNKNOWN - "+format+" (sockmon check --help)\n", a...)
		return int(check.Unknown)
	}
	var expanded []string
	for _, a := range args {
		if repeatedV.MatchString(a) {
			for range len(a) - 1 {
				expanded = append(expanded, "-v")
			}
			continue
		}
		expanded = append(expanded, a)
	}

	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var (
		url, format, tokenEnv, wsURL, wsTokenEnv string
		help, showVersion                        bool
		warn, crit                               = rangeFlag{r: new(check.MustParseRange("1000"))}, rangeFlag{r: new(check.MustParseRange("5000"))}
		warnConns, critConns                     rangeFlag
		warnErr, critErr, warnP99, critP99       rangeFlag
		timeout                                  = secondsFlag{check.DefaultTimeout}
		timeoutState                             = stateFlag{check.Unknown}
		maintState                               = stateFlag{check.DefaultStatusState(check.StatusMaintenance)}
		drainState                               = stateFlag{check.DefaultStatusState(check.StatusDraining)}
		degradedState                            = stateFlag{check.DefaultStatusState(check.StatusDegraded)}
		verbose                                  countFlag
	)
	for _, n := range []string{"u", "url"} {
		fs.StringVar(&url, n, "", "")
	}
	fs.StringVar(&format, "format", string(check.FormatText), "")
	for n, v := range map[string]flag.Value{"w": &warn, "warning": &warn, "c": &crit, "critical": &crit,
		"warning-connections": &warnConns, "critical-connections": &critConns,
		"warning-error-rate": &warnErr, "critical-error-rate": &critErr,
		"warning-p99": &warnP99, "critical-p99": &critP99,
		"t": &timeout, "timeout": &timeout, "timeout-state": &timeoutState,
		"maintenance-state": &maintState, "draining-state": &drainState, "degraded-state": &degradedState,
		"v": &verbose, "verbose": &verbose} {
		fs.Var(v, n, "")
	}
	fs.StringVar(&tokenEnv, "token-env", "SOCKMON_ADMIN_TOKEN", "")
	fs.StringVar(&wsURL, "ws-url", "", "")
	fs.StringVar(&wsTokenEnv, "ws-token-env", "", "")
	exitCodes := "nagios"
	fs.StringVar(&exitCodes, "exit-codes", exitCodes, "")
	for _, n := range []string{"h", "help"} {
		fs.BoolVar(&help, n, false, "")
	}
	for _, n := range []string{"V", "version"} {
		fs.BoolVar(&showVersion, n, false, "")
	}
	if err := fs.Parse(expanded); err != nil {
		return unknown("%v", err)
	}
	switch {
	case help:
		fmt.Fprint(stdout, checkHelp)
		return int(check.Unknown)
	case showVersion:
		fmt.Fprintf(stdout, "sockmon check %s (revision %s)\n", version, revision)
		return int(check.Unknown)
	case fs.NArg() > 0:
		return unknown("unexpected argument %q", fs.Arg(0))
	case url == "":
		return unknown("--url is required")
	case exitCodes != "nagios" && exitCodes != "docker":
		return unknown("--exit-codes %q: want nagios or docker", exitCodes)
	case timeoutState.st != check.Unknown && timeoutState.st != check.Critical:
		return unknown("--timeout-state %s: want unknown or critical", timeoutState.String())
	}
	f, err := check.ParseFormat(format)
	if err != nil {
		return unknown("--format: %v", err)
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	cfg := check.Config{
		URL: url, WSURL: wsURL, Timeout: timeout.d, TimeoutCritical: timeoutState.st == check.Critical,
		ResponseTime: check.Thresholds{Warning: warn.r, Critical: crit.r},
		Connections:  check.Thresholds{Warning: warnConns.r, Critical: critConns.r},
		ErrorRate:    check.Thresholds{Warning: warnErr.r, Critical: critErr.r},
		P99:          check.Thresholds{Warning: warnP99.r, Critical: critP99.r},
		StatusStates: map[string]check.State{
			check.StatusMaintenance: maintState.st, check.StatusDraining: drainState.st, check.StatusDegraded: degradedState.st,
		},
	}
	// A token named explicitly must be there; the default name is only
	// used when set.
	if cfg.AdminToken = getenv(tokenEnv); cfg.AdminToken == "" && set["token-env"] {
		return unknown("--token-env: $%s is empty or not set", tokenEnv)
	}
	if wsTokenEnv != "" {
		if cfg.ClientToken = getenv(wsTokenEnv); cfg.ClientToken == "" {
			return unknown("--ws-token-env: $%s is empty or not set", wsTokenEnv)
		}
	}
	res, err := check.Run(ctx, cfg)
	if err != nil {
		return unknown("%v", strings.TrimPrefix(err.Error(), check.ErrConfig.Error()+": "))
	}
	if err := check.Write(stdout, res, f, verbose.n); err != nil {
		res.State = check.Unknown
	}
	if exitCodes == "docker" {
		if res.State == check.OK || res.State == check.Warning {
			return 0
		}
		return 1
	}
	return int(res.State)
}
