package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cloudwego/netpoll"
	"github.com/sockmon/sockmon/control"
	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/protocol"
	"github.com/sockmon/sockmon/netcore/upstream"
)

// serveFlags are the flags of `sockmon serve`, bound to the engine's and
// the protocol's Configs.
type serveFlags struct {
	cfg             netcore.Config
	proto           protocol.Config
	compression     bool
	logLevel        string
	allowedOrigins  string
	trustedProxies  string
	historyInterval time.Duration
	controlAddr     string
	dataDir         string
	memoryLimit     int64
	upstreams       upstreamFlags
	upstreamsFile   string
	maxRPCInFlight  int
	alerts          alertFlags
}

func newServeFlagSet(stderr io.Writer) (*flag.FlagSet, *serveFlags) {
	f := &serveFlags{}
	c, p := &f.cfg, &f.proto
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", netcore.DefaultAddr, "WebSocket listen address (upgrade path "+protocol.DefaultPath+")")
	fs.StringVar(&p.EchoPath, "echo-path", "", "path where every text and binary message is echoed verbatim, e.g. /echo, with the same admission and message rate as /ws (off when empty)")
	fs.IntVar(&c.MaxConns, "max-conns", netcore.DefaultMaxConns, "maximum upgraded connections; more get 503 before the upgrade")
	fs.IntVar(&c.MaxMessageSize, "max-message-size", netcore.DefaultMaxMessageSize, "maximum message size in bytes, after reassembly and inflating (over it: close 1009)")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", netcore.DefaultMaxHeaderBytes, "maximum size of the upgrade request head (over it: 431)")
	fs.DurationVar(&c.HandshakeTimeout, "handshake-timeout", netcore.DefaultHandshakeTimeout, "time from TCP accept to a complete upgrade request")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", netcore.DefaultIdleTimeout, "close a connection that sent nothing (not even a pong) for this long; 0 disables")
	fs.DurationVar(&c.PingInterval, "ping-interval", netcore.DefaultPingInterval, "server ping interval; keep it under the proxy's read timeout (nginx: 60s); 0 disables")
	fs.IntVar(&c.WriteQueueBytes, "write-queue-bytes", netcore.DefaultWriteQueueBytes, "per-connection outbound queue cap; a slow consumer over it is closed with 1008")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", netcore.DefaultWriteTimeout, "how long one flush may wait for a peer that does not read")
	fs.DurationVar(&c.CloseTimeout, "close-timeout", netcore.DefaultCloseTimeout, "how long to wait for the peer's close frame after sending ours")
	fs.DurationVar(&c.DrainDelay, "drain-delay", netcore.DefaultDrainDelay, "on SIGTERM: wait this long with readiness off before closing connections")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", netcore.DefaultShutdownTimeout, "on SIGTERM: the whole drain finishes within this")
	fs.BoolVar(&f.compression, "compression", true, "negotiate permessage-deflate (no context takeover)")
	fs.IntVar(&c.CompressionThreshold, "compression-threshold", netcore.DefaultCompressionThreshold, "messages smaller than this many bytes are sent uncompressed")
	fs.BoolVar(&p.RequireAuth, "require-auth", false, "refuse clients without a valid token (401); the client secret comes from $SOCKMON_JWT_SECRET")
	fs.StringVar(&f.allowedOrigins, "allowed-origins", "", "comma-separated Origins browsers may connect from (https://app.example.com, https://*.example.com); empty allows all")
	fs.StringVar(&f.trustedProxies, "trusted-proxies", "", "comma-separated CIDRs of proxies whose X-Forwarded-For names the client IP")
	fs.IntVar(&p.ConnRate, "conn-rate", protocol.DefaultConnRate, "new connections per second per client IP (429 over it); 0 disables")
	fs.IntVar(&p.ConnBurst, "conn-burst", protocol.DefaultConnBurst, "burst of new connections per client IP")
	fs.IntVar(&p.MessageRate, "message-rate", protocol.DefaultMessageRate, "messages per second per connection (rate_limited error over it); 0 disables")
	fs.IntVar(&p.MessageBurst, "message-burst", protocol.DefaultMessageBurst, "burst of messages per connection")
	fs.IntVar(&p.BanAfter, "ban-after", protocol.DefaultBanAfter, "rate-limited messages within --ban-window that close a connection (1008) and ban its IP or user")
	fs.DurationVar(&p.BanWindow, "ban-window", protocol.DefaultBanWindow, "window for --ban-after and --max-bad-messages")
	fs.DurationVar(&p.BanDuration, "ban-duration", protocol.DefaultBanDuration, "first ban; each repeat doubles it")
	fs.DurationVar(&p.BanMax, "ban-max", protocol.DefaultBanMax, "longest ban")
	fs.DurationVar(&p.BanDecay, "ban-decay", protocol.DefaultBanDecay, "quiet time that undoes one doubling")
	fs.IntVar(&p.MaxBadMessages, "max-bad-messages", protocol.DefaultMaxBadMessages, "malformed messages within --ban-window that close a connection with 1008")
	fs.IntVar(&p.MaxRoomsPerConn, "max-rooms", protocol.DefaultMaxRoomsPerConn, "rooms one connection may join")
	fs.Var(&f.upstreams, "upstream", "an upstream service for the rpc envelope, NAME=URL (repeatable; defaults for its timeout, pool and breaker)")
	fs.StringVar(&f.upstreamsFile, "upstreams-file", "", "YAML or JSON file of upstream services with their settings; re-read on SIGHUP")
	fs.IntVar(&p.MaxRPCInFlight, "max-rpc-in-flight", protocol.DefaultMaxRPCInFlight, "rpc calls one connection may have open; more get too_many_requests")
	fs.DurationVar(&f.historyInterval, "history-interval", metrics.DefaultHistoryInterval, "metrics history sampling period")
	fs.StringVar(&f.controlAddr, "control-addr", control.DefaultAddr, "control listen address: health, readiness, /metrics and the admin API (admin secret from $SOCKMON_ADMIN_SECRET)")
	fs.StringVar(&f.dataDir, "data-dir", control.DefaultDataDir, "directory of the control store: audit log, alert rules, rate-limit overrides, maintenance state")
	fs.Int64Var(&f.memoryLimit, "memory-limit", 0, "process memory (bytes) over which health reports unhealthy; 0 uses the cgroup limit when there is one")
	f.alerts.register(fs)
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.Usage = flagUsage(stderr, fs, "sockmon serve [flags]")
	return fs, f
}

// The command line's one rule for zero: a 0 given to --idle-timeout,
// --ping-interval, --drain-delay, --conn-rate or --message-rate switches
// that timer or limit off. The packages' Configs read 0 as "the default"
// and a negative value as "off", so offWhenZero translates, here only.
func offWhenZero(durations []*time.Duration, ints []*int) {
	for _, d := range durations {
		if *d == 0 {
			*d = -1
		}
	}
	for _, n := range ints {
		if *n == 0 {
			*n = -1
		}
	}
}

// configs turns the flags into the engine's and the protocol's Configs.
func (f *serveFlags) configs(logger *slog.Logger, getenv func(string) string) (netcore.Config, protocol.Config, error) {
	c, p := f.cfg, f.proto
	offWhenZero([]*time.Duration{&c.IdleTimeout, &c.PingInterval, &c.DrainDelay}, []*int{&p.ConnRate, &p.MessageRate})
	c.DisableCompression = !f.compression
	c.Logger = logger
	p.JWTSecret = []byte(getenv("SOCKMON_JWT_SECRET"))
	p.AllowedOrigins = splitList(f.allowedOrigins)
	for _, s := range splitList(f.trustedProxies) {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return c, p, fmt.Errorf("--trusted-proxies: %v", err)
		}
		p.TrustedProxies = append(p.TrustedProxies, pfx)
	}
	m, err := metrics.New(metrics.Options{HistoryInterval: f.historyInterval, Version: version, Revision: revision})
	if err != nil {
		return c, p, err
	}
	c.Metrics = m
	return c, p, nil
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func serveCommand(args []string, stdout, stderr io.Writer) int {
	fs, f := newServeFlagSet(stderr)
	if err := parseWithEnv(fs, args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "sockmon serve: %v\n", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		fmt.Fprintf(stderr, "sockmon serve: --log-level: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg, pcfg, err := f.configs(logger, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "sockmon serve: %v\n", err)
		return 2
	}
	cfg.Metrics.Start()
	defer cfg.Metrics.Close()
	srv, err := netcore.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "sockmon serve: %v\n", err)
		return 2
	}
	ups, err := upstream.New(upstream.Options{Metrics: cfg.Metrics, MaxReplyBytes: srv.Config().MaxMessageSize})
	if err != nil {
		fmt.Fprintf(stderr, "sockmon serve: %v\n", err)
		return 2
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ups.Shutdown(ctx)
	}()
	if err := loadUpstreams(ups, f.upstreams, f.upstreamsFile); err != nil {
		fmt.Fprintf(stderr, "sockmon serve: upstreams: %v\n", err)
		return 2
	}
	logBreakerChanges(ups, logger)
	pcfg.RPC = ups
	proto, err := protocol.New(srv, pcfg)
	if err != nil {
		fmt.Fprintf(stderr, "sockmon serve: %v\n", err)
		return 2
	}

	// Listen first: a port in use fails before the store is opened.
	ln, err := netpoll.CreateListener("tcp", f.cfg.Addr)
	if err != nil {
		fmt.Fprintf(stderr, "sockmon serve: listen on %s: %v\n", f.cfg.Addr, err)
		return 1
	}
	cln, err := net.Listen("tcp", f.controlAddr)
	if err != nil {
		_ = ln.Close()
		fmt.Fprintf(stderr, "sockmon serve: listen on %s: %v\n", f.controlAddr, err)
		return 1
	}
	alertsCfg, err := f.alerts.config(os.Getenv)
	if err != nil {
		_, _ = ln.Close(), cln.Close()
		fmt.Fprintf(stderr, "sockmon serve: %v\n", err)
		return 2
	}
	emergency := make(chan string, 1)
	ctl, err := control.New(control.Config{
		Alerts:         alertsCfg,
		Addr:           f.controlAddr,
		DataDir:        f.dataDir,
		AdminSecret:    []byte(os.Getenv("SOCKMON_ADMIN_SECRET")),
		ClientSecret:   pcfg.JWTSecret,
		Engine:         srv,
		Protocol:       proto,
		Upstreams:      ups,
		Logger:         logger,
		MemoryLimit:    f.memoryLimit,
		TrustedProxies: pcfg.TrustedProxies,
		OnEmergencyShutdown: func(reason string) {
			select {
			case emergency <- reason:
			default:
			}
		},
	})
	if err != nil {
		_, _ = ln.Close(), cln.Close()
		fmt.Fprintf(stderr, "sockmon serve: %v\n", err)
		return 2
	}
	// The store closes on every way out. On a signal this runs after the
	// WebSocket side has drained: the control side keeps answering (health
	// says draining) until then.
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ctl.Shutdown(ctx)
	}()
	// The rules file wins at start; a bad one stops the start.
	if f.alerts.file != "" {
		n, err := loadAlertsFile(ctl.Alerts(), f.alerts.file, os.Getenv)
		if err != nil {
			_, _ = ln.Close(), cln.Close()
			fmt.Fprintf(stderr, "sockmon serve: %v\n", err)
			return 2
		}
		logger.Info("alerts file loaded", "file", f.alerts.file, "rules", n)
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() {
		if err := ctl.Serve(cln); err != nil {
			errc <- fmt.Errorf("control: %w", err)
		}
	}()
	logger.Info("sockmon serving", "addr", ln.Addr().String(), "control_addr", cln.Addr().String(), "version", version, "revision", revision)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := func() {
		if err := loadUpstreams(ups, f.upstreams, f.upstreamsFile); err != nil {
			logger.Error("SIGHUP: upstreams not reloaded; the previous ones stay in force", "err", err)
		} else {
			logger.Info("SIGHUP: upstreams reloaded", "upstreams", ups.Names())
		}
		if f.alerts.file == "" {
			return
		}
		if n, err := loadAlertsFile(ctl.Alerts(), f.alerts.file, os.Getenv); err != nil {
			logger.Error("SIGHUP: alerts file not reloaded; the previous rules stay in force", "err", err)
		} else {
			logger.Info("SIGHUP: alerts file reloaded", "file", f.alerts.file, "rules", n)
		}
	}
wait:
	for {
		select {
		case err := <-errc:
			logger.Error("server stopped", "err", err)
			return 1
		case <-hup:
			reload()
		case s := <-sig:
			logger.Info("signal received, draining", "signal", s.String())
			break wait
		case reason := <-emergency:
			logger.Warn("emergency shutdown requested through the admin API", "reason", reason)
			break wait
		}
	}
	go func() {
		// A second signal skips the rest of the drain.
		<-sig
		logger.Warn("second signal: exiting without finishing the drain")
		os.Exit(1)
	}()
	if err := srv.Shutdown(context.Background()); err != nil {
		logger.Warn("drain deadline passed with connections left", "err", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, netcore.ErrServerClosed) {
		logger.Error("serve", "err", err)
		return 1
	}
	return 0
}
