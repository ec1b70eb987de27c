package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sockmon/sockmon/loadtest"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ", ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// loadUsageHead is the top of `sockmon load --help`, above the flags.
const loadUsageHead = `Usage: sockmon load --url ws://host:port/path [flags]

Drives load at a WebSocket server and reports latency (corrected for
coordinated omission in the open model), rates, connect times and errors.
When the server rate-limits the run (429 at the upgrade, rate_limited
replies, closes with 1008) the progress line and the report say so: for a
capacity run against sockmon, start it with --message-rate 0 --conn-rate 0,
or spread dials with --sources.

Exit status:
  0    ok
  1    an --slo failed, or no connection was established
  2    bad flags
  3    most connections were refused at the upgrade (an HTTP status such as
       429 or 503) or closed by the server's policy (1008), SLOs or not
  130  interrupted (the report of what ran is still printed)

Flags:
`

// loadCommand implements `sockmon load`: it parses its flags, runs
// loadtest.Run until the duration ends or SIGINT/SIGTERM arrives, prints the
// report and returns the exit status (loadUsageHead lists them).
func loadCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("load")
	var (
		cfg                                     loadtest.Config
		mode, sources, jwtSecret, hgrm, plotOut string
		headers, slos                           stringList
		asJSON                                  bool
	)
	fs.StringVar(&cfg.URL, "url", "", "target `URL`: ws://host:port/path or wss://... (required)")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "accept any TLS certificate for wss:// (self-signed staging)")
	fs.IntVar(&cfg.Conns, "conns", 100, "connections to open")
	fs.Float64Var(&cfg.Ramp, "ramp", 1000, "connections opened per second (0: as fast as possible)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "messages per second in total, open model; 0: closed loop (each connection sends again when its reply arrives)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "length of the measured phase, after the ramp")
	fs.IntVar(&cfg.Size, "size", 64, "payload `bytes` (the data string's length in echo-json and publish)")
	fs.StringVar(&mode, "mode", string(loadtest.ModeEchoBinary), "echo-binary | echo-json | publish | connect-only")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Second, "dial+handshake timeout, and how long a reply may take before it counts as a timeout")
	fs.StringVar(&sources, "sources", "", "local `addresses` to spread dials over: 127.0.0.2-127.0.0.9 or a comma list")
	fs.Var(&headers, "header", "`Name: value` added to every upgrade request (repeatable)")
	fs.StringVar(&cfg.Token, "token", "", "bearer token sent on every upgrade request")
	fs.StringVar(&jwtSecret, "jwt-secret", "", "mint an HS256 token per connection (sub load-N) with this `secret`")
	fs.StringVar(&cfg.Room, "room", "sockmon-load", "room joined in publish mode")
	fs.IntVar(&cfg.Publishers, "publishers", 1, "publishing connections in publish mode")
	fs.IntVar(&cfg.DialConcurrency, "dial-concurrency", 64, "dials in progress at once")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON (schema "+loadtest.ReportSchema+")")
	fs.StringVar(&hgrm, "hgrm", "", "write the corrected latency distribution to `FILE` in HdrHistogram format")
	fs.StringVar(&plotOut, "plot", "", "draw latency by percentile to `FILE`.svg or FILE.png")
	fs.StringVar(&cfg.MetricsURL, "metrics-url", "", "server's Prometheus `URL` (http://host:8081/metrics), scraped before and after")
	fs.Var(&slos, "slo", "assertion such as 'p99<20ms', 'errors<0.1%', 'rate>=99%' (repeatable; exit 1 when one fails)")
	usage := func(w io.Writer) {
		fmt.Fprint(w, loadUsageHead)
		printFlags(w, fs)
	}
	if code, done := parseFlags(fs, args, stdout, stderr, usage); done {
		return code
	}

	var errs []error
	cfg.Mode = loadtest.Mode(mode)
	cfg.JWTSecret = []byte(jwtSecret)
	if sources != "" {
		addrs, err := loadtest.ParseSources(sources)
		errs = append(errs, err)
		cfg.Sources = addrs
	}
	cfg.Header = http.Header{}
	for _, h := range headers {
		errs = append(errs, loadtest.ParseHeader(cfg.Header, h))
	}
	parsedSLOs, err := loadtest.ParseSLOs(slos)
	errs = append(errs, err)
	if plotOut != "" && !strings.HasSuffix(plotOut, ".svg") && !strings.HasSuffix(plotOut, ".png") {
		errs = append(errs, fmt.Errorf("--plot %q: want a .svg or .png file", plotOut))
	}
	errs = append(errs, cfg.Validate())
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(stderr, "sockmon load: %v\n", err)
		return loadtest.ExitUsage
	}

	cfg.Progress = stderr
	if f, ok := stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			cfg.ProgressTTY = true
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := loadtest.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "sockmon load: %v\n", err)
		if rep == nil {
			return loadtest.ExitFailed
		}
	}
	rep.EvaluateSLOs(parsedSLOs)

	code := rep.ExitCode()
	if err != nil {
		code = max(code, loadtest.ExitFailed)
	}
	if asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sockmon load: writing the report: %v\n", err)
		code = max(code, loadtest.ExitFailed)
	}
	if hgrm != "" {
		if err := writeFile(hgrm, rep.WriteHgrm); err != nil {
			fmt.Fprintf(stderr, "sockmon load: --hgrm: %v\n", err)
			code = max(code, loadtest.ExitFailed)
		}
	}
	if plotOut != "" {
		if err := rep.WritePlot(plotOut); err != nil {
			fmt.Fprintf(stderr, "sockmon load: --plot: %v\n", err)
			code = max(code, loadtest.ExitFailed)
		}
	}
	return code
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
