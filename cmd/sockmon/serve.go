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
	"github.com/redis/go-redis/v9"
	"github.com/sockmon/sockmon/control"
	"github.com/sockmon/sockmon/control/cluster"
	"github.com/sockmon/sockmon/control/dashboard"
	"github.com/sockmon/sockmon/control/logs"
	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/backplane"
	"github.com/sockmon/sockmon/netcore/protocol"
	"github.com/sockmon/sockmon/netcore/upstream"
)

// serveFlags are the flags of `sockmon serve`, bound to the engine's and
// the protocol's Configs.
type serveFlags struct {
	cfg             netcore.Config
	proto           protocol.Config
	compression     bool
	pollerServe     string
	pollerRescue    string
	writeCoalescing string
	logLevel        string
	allowedOrigins  string
	trustedProxies  string
	controlTrusted  string
	proxyProtocol   string
	historyInterval time.Duration
	controlAddr     string
	agentAddr       string
	clientHealth    bool
	pprof           bool
	dataDir         string
	memoryLimit     int64
	upstreams       upstreamFlags
	upstreamsFile   string
	maxRPCInFlight  int
	dev             bool
	redisURL        string
	redisQueueSize  int

	dashboardInterval   time.Duration
	dashboardMaxClients int

	logFile          string
	errorLogFile     string
	logMaxSize       int
	logMaxAge        int
	logMaxBackups    int
	logCompress      bool
	statsLogInterval time.Duration
	closeLogRate     int
	alerts           alertFlags

	nodeID        string
	nodeHeartbeat time.Duration
}

func newServeFlagSet() (*flag.FlagSet, *serveFlags) {
	f := &serveFlags{}
	c, p := &f.cfg, &f.proto
	fs := newFlagSet("serve")
	fs.StringVar(&c.Addr, "addr", netcore.DefaultAddr, "WebSocket listen address (upgrade path "+protocol.DefaultPath+")")
	fs.StringVar(&p.EchoPath, "echo-path", "", "path where every text and binary message is echoed verbatim, e.g. /echo, with the same admission and message rate as /ws (off when empty)")
	fs.IntVar(&c.MaxConns, "max-conns", netcore.DefaultMaxConns, "maximum upgraded connections; more get 503 before the upgrade")
	fs.IntVar(&c.MaxPending, "max-pending", netcore.DefaultMaxPending, "connections still in the handshake at once; more are closed at accept (near the open-file limit the oldest are shed)")
	fs.IntVar(&c.MaxPendingPerIP, "max-pending-per-ip", netcore.DefaultMaxPendingPerIP, "connections still in the handshake from one address (--trusted-proxies exempt)")
	fs.IntVar(&c.MaxMessageSize, "max-message-size", netcore.DefaultMaxMessageSize, "maximum message size in bytes, after reassembly and inflating (over it: close 1009)")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", netcore.DefaultMaxHeaderBytes, "maximum size of the upgrade request head (over it: 431)")
	fs.DurationVar(&c.HandshakeTimeout, "handshake-timeout", netcore.DefaultHandshakeTimeout, "time from TCP accept to a complete upgrade request")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", netcore.DefaultIdleTimeout, "close a connection that sent nothing (not even a pong) for this long; 0 disables")
	fs.DurationVar(&c.PingInterval, "ping-interval", netcore.DefaultPingInterval, "server ping interval; keep it under the proxy's read timeout (nginx: 60s); 0 disables")
	fs.IntVar(&c.WriteQueueBytes, "write-queue-bytes", netcore.DefaultWriteQueueBytes, "per-connection outbound queue cap; a slow consumer over it is closed with 1008")
	fs.IntVar(&c.OutboundBudget, "outbound-budget", netcore.DefaultOutboundBudget, "bytes queued for slow readers by all connections together; past it, connections with a backlog are closed as slow consumers (1008); 0 disables")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", netcore.DefaultWriteTimeout, "how long one flush may wait for a peer that does not read")
	fs.DurationVar(&c.CloseTimeout, "close-timeout", netcore.DefaultCloseTimeout, "how long to wait for the peer's close frame after sending ours")
	fs.DurationVar(&c.LingerTimeout, "linger-timeout", netcore.DefaultLingerTimeout, "lingering close: after our close frame or refusal, read and drop the peer's input until it closes, at most this long")
	fs.IntVar(&c.LingerBytes, "linger-bytes", netcore.DefaultLingerBytes, "lingering close: ... and at most this many bytes")
	fs.DurationVar(&c.DrainDelay, "drain-delay", netcore.DefaultDrainDelay, "on SIGTERM: wait this long with readiness off before closing connections (skipped when no client is connected)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", netcore.DefaultShutdownTimeout, "on SIGTERM: the whole drain finishes within this")
	fs.StringVar(&f.writeCoalescing, "write-coalescing", "on", "on: a fan-out flushes each member once with every frame queued for it by then (one write for several messages); off: one write per message")
	fs.StringVar(&f.pollerRescue, "poller-rescue", "on", "on: netpoll's pollers rescue one another, so a poller the kernel preempts (on cores shared with other processes) holds up only the batch it is in. off: each poller serves only its own connections (for comparing)")
	fs.StringVar(&f.pollerServe, "poller-serve", "on", "on: input that is only complete frames of an open connection is served on the netpoll poller that read it, with no hand-off to a worker goroutine; off: every input goes to a worker")
	fs.BoolVar(&f.compression, "compression", true, "negotiate permessage-deflate (no context takeover)")
	fs.IntVar(&c.CompressionThreshold, "compression-threshold", netcore.DefaultCompressionThreshold, "messages smaller than this many bytes are sent uncompressed")
	fs.BoolVar(&p.RequireAuth, "require-auth", false, "refuse clients without a valid token (401); the client secret comes from $SOCKMON_JWT_SECRET")
	fs.StringVar(&p.JWTAudience, "jwt-audience", "", "aud every client and admin token must carry (off when empty)")
	fs.StringVar(&p.JWTIssuer, "jwt-issuer", "", "iss every client and admin token must carry (off when empty)")
	fs.DurationVar(&p.JWTMaxTTL, "jwt-max-ttl", 0, "longest lifetime of a client or admin token (exp - iat, and exp - now); 0: no maximum")
	fs.StringVar(&f.allowedOrigins, "allowed-origins", "", "comma-separated Origins browsers may connect from (https://app.example.com, https://*.example.com); empty allows all")
	fs.StringVar(&f.trustedProxies, "trusted-proxies", "", "comma-separated CIDRs of the load balancers in front of the WebSocket port: their PROXY header or X-Forwarded-For names the client, and their own address is never banned")
	fs.StringVar(&f.proxyProtocol, "proxy-protocol", "off", "PROXY protocol v1/v2 on the WebSocket port: off, optional or on (accepted from --trusted-proxies only)")
	fs.StringVar(&f.controlTrusted, "control-trusted-proxies", "", "comma-separated CIDRs of proxies in front of the control port whose X-Forwarded-For names the admin's address (default: none, the peer's address is used)")
	fs.IntVar(&p.ConnRate, "conn-rate", protocol.DefaultConnRate, "new connections per second per client IP (429 over it); 0 disables")
	fs.IntVar(&p.ConnBurst, "conn-burst", protocol.DefaultConnBurst, "burst of new connections per client IP")
	fs.IntVar(&p.MessageRate, "message-rate", protocol.DefaultMessageRate, "messages per second per connection (rate_limited error over it); 0 disables")
	fs.IntVar(&p.MessageBurst, "message-burst", protocol.DefaultMessageBurst, "burst of messages per connection")
	fs.IntVar(&p.MessageBytesRate, "message-bytes-rate", protocol.DefaultMessageBytesRate, "bytes of messages per second per connection, counted after inflating (rate_limited over it); 0 disables")
	fs.IntVar(&p.MessageBytesBurst, "message-bytes-burst", protocol.DefaultMessageBytesBurst, "burst of message bytes per connection; at least --max-message-size")
	fs.IntVar(&p.BanAfter, "ban-after", protocol.DefaultBanAfter, "rate-limited messages within --ban-window that close a connection (1008) and ban its IP or user")
	fs.DurationVar(&p.BanWindow, "ban-window", protocol.DefaultBanWindow, "window for --ban-after and --max-bad-messages")
	fs.DurationVar(&p.BanDuration, "ban-duration", protocol.DefaultBanDuration, "first ban; a repeat after a ban has run out doubles it (offences while banned do not)")
	fs.DurationVar(&p.BanMax, "ban-max", protocol.DefaultBanMax, "longest ban")
	fs.DurationVar(&p.BanDecay, "ban-decay", protocol.DefaultBanDecay, "quiet time that undoes one doubling")
	fs.IntVar(&p.MaxBadMessages, "max-bad-messages", protocol.DefaultMaxBadMessages, "malformed messages within --ban-window that close a connection with 1008")
	fs.IntVar(&p.MaxRoomsPerConn, "max-rooms", protocol.DefaultMaxRoomsPerConn, "rooms one connection may join")
	fs.BoolVar(&p.PublishWithoutJoin, "publish-without-join", false, "let connections publish to rooms they have not joined (off: publishing needs membership)")
	fs.IntVar(&p.RoomPublishRate, "room-publish-rate", protocol.DefaultRoomPublishRate, "publishes per second to one room, all publishers together (rate_limited over it); 0 disables")
	fs.IntVar(&p.RoomPublishBurst, "room-publish-burst", protocol.DefaultRoomPublishBurst, "burst of publishes to one room")
	fs.Var(&f.upstreams, "upstream", "an upstream service for the rpc envelope, NAME=URL (repeatable; defaults for its timeout, pool and breaker)")
	fs.StringVar(&f.upstreamsFile, "upstreams-file", "", "YAML or JSON file of upstream services with their settings; re-read on SIGHUP")
	fs.IntVar(&p.MaxRPCInFlight, "max-rpc-in-flight", protocol.DefaultMaxRPCInFlight, "rpc calls one connection may have open; more get too_many_requests")
	fs.IntVar(&f.redisQueueSize, "redis-queue-size", backplane.DefaultQueueSize, "publishes waiting for Redis at most; past it the newest are dropped and counted")
	fs.DurationVar(&f.historyInterval, "history-interval", metrics.DefaultHistoryInterval, "metrics history sampling period")
	fs.StringVar(&f.controlAddr, "control-addr", control.DefaultAddr, "control listen address: health, readiness, /metrics and the admin API (admin secret from $SOCKMON_ADMIN_SECRET)")
	fs.BoolVar(&f.clientHealth, "client-port-health", true, "also answer GET/HEAD /api/health/socket, /livez and /readyz on the WebSocket port (never the admin API or /metrics), so a load balancer can check the listener it balances")
	fs.BoolVar(&f.pprof, "pprof", false, "serve the Go runtime's profiles (net/http/pprof) under "+control.PathPprof+"/ on the control port, to ADMIN tokens only (never on the WebSocket port)")
	fs.StringVar(&f.agentAddr, "agent-addr", "", "HAProxy agent-check listen address, e.g. 127.0.0.1:8082: answers up ready NN%, drain, down#reason or maint (off when empty)")
	fs.StringVar(&f.dataDir, "data-dir", control.DefaultDataDir, "directory of the control store: audit log, alert rules, rate-limit overrides, maintenance state")
	fs.Int64Var(&f.memoryLimit, "memory-limit", 0, "process memory (bytes) over which health reports unhealthy (degraded over 90%); 0: GOMEMLIMIT when set, else the container's cgroup limit, else no check; negative: no check")
	f.alerts.register(fs)
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFile, "log-file", "", "also write every log line to this file, e.g. logs/combined.log (directory created, mode 0640, rotated by size and age); off when empty")
	fs.StringVar(&f.errorLogFile, "error-log-file", "", "also write warn and error lines to this file, e.g. logs/error.log; off when empty")
	fs.IntVar(&f.logMaxSize, "log-max-size", logs.DefaultMaxSizeMB, "rotate a log file when it reaches this many megabytes")
	fs.IntVar(&f.logMaxAge, "log-max-age", logs.DefaultMaxAgeDays, "delete rotated log files older than this many days; 0 keeps them")
	fs.IntVar(&f.logMaxBackups, "log-max-backups", logs.DefaultMaxBackups, "rotated files kept per log file; 0 keeps them all")
	fs.BoolVar(&f.logCompress, "log-compress", false, "gzip rotated log files")
	fs.DurationVar(&f.statsLogInterval, "stats-log-interval", logs.DefaultStatsInterval, "period of the connection_stats log line; 0 disables")
	fs.IntVar(&f.closeLogRate, "close-log-rate", logs.DefaultCloseLogRate, "connection-closed log lines per second at most (the rest are counted in connection_stats); 0: no limit")
	fs.DurationVar(&f.dashboardInterval, "dashboard-interval", dashboard.DefaultInterval, "how often an open dashboard ("+dashboard.DefaultPrefix+" on the control port) gets the status; at most "+dashboard.MaxInterval.String())
	fs.IntVar(&f.dashboardMaxClients, "dashboard-max-clients", dashboard.DefaultMaxClients, "live dashboard streams at once; more get 503")
	fs.StringVar(&f.redisURL, "redis-url", "", "Redis backplane joining several nodes (rooms, broadcasts, admin commands, bans): redis://host:port, rediss://, redis://host:port?master_name=NAME (Sentinel) or redis+cluster://; password from $"+backplane.PasswordEnv+"; off when empty")
	fs.StringVar(&f.nodeID, "node-id", "", "this node's name in the cluster (get_cluster); default hostname:port of --addr")
	fs.DurationVar(&f.nodeHeartbeat, "node-heartbeat", cluster.DefaultInterval, "how often a node refreshes its registration in Redis; a node that stops refreshing leaves get_cluster after 3 times this")
	fs.BoolVar(&f.dev, "dev", false, "development set-up (make run): without $SOCKMON_ADMIN_SECRET, generate an admin secret into --data-dir (reused next time) and print an admin token and the URLs")
	return fs, f
}

// serveUsage prints the flags of `sockmon serve` with the values in force
// (their defaults, or what the environment sets).
func serveUsage(w io.Writer, fs *flag.FlagSet, getenv func(string) string) {
	envFlagUsage(w, fs, "sockmon serve [flags]", getenv)
}

// The command line's one rule for zero: a 0 given to --idle-timeout,
// --ping-interval, --drain-delay, --conn-rate, --message-rate,
// --message-bytes-rate, --room-publish-rate, --outbound-budget,
// --stats-log-interval, --close-log-rate, --log-max-age or
// --log-max-backups switches that timer or limit off. The packages' Configs read 0 as "the default"
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

// offSwitch reads an on|off flag: whether it is off.
func offSwitch(name, v string) (bool, error) {
	switch v {
	case "on":
		return false, nil
	case "off":
		return true, nil
	}
	return false, fmt.Errorf("%s %q: want on or off", name, v)
}

// configs turns the flags into the engine's and the protocol's Configs.
func (f *serveFlags) configs(logger *slog.Logger, getenv func(string) string) (netcore.Config, protocol.Config, error) {
	c, p := f.cfg, f.proto
	offWhenZero([]*time.Duration{&c.IdleTimeout, &c.PingInterval, &c.DrainDelay}, []*int{&p.ConnRate, &p.MessageRate, &p.MessageBytesRate, &p.RoomPublishRate, &c.OutboundBudget})
	c.DisableCompression = !f.compression
	var err error
	if c.DisableWriteCoalescing, err = offSwitch("--write-coalescing", f.writeCoalescing); err != nil {
		return c, p, err
	}
	if c.DisablePollerServe, err = offSwitch("--poller-serve", f.pollerServe); err != nil {
		return c, p, err
	}
	if c.DisablePollerRescue, err = offSwitch("--poller-rescue", f.pollerRescue); err != nil {
		return c, p, err
	}
	c.Logger = logger
	if p.JWTMaxTTL < 0 {
		return c, p, fmt.Errorf("--jwt-max-ttl %s: want a positive duration, or 0 for no maximum", p.JWTMaxTTL)
	}
	p.JWTSecret = []byte(getenv("SOCKMON_JWT_SECRET"))
	p.AllowedOrigins = splitList(f.allowedOrigins)
	if c.TrustedProxies, err = parsePrefixes("--trusted-proxies", f.trustedProxies); err != nil {
		return c, p, err
	}
	if c.ProxyProtocol, err = netcore.ParseProxyMode(f.proxyProtocol); err != nil {
		return c, p, fmt.Errorf("--proxy-protocol: %v", err)
	}
	m, err := metrics.New(metrics.Options{HistoryInterval: f.historyInterval, Version: version, Revision: revision})
	if err != nil {
		return c, p, err
	}
	c.Metrics = m
	return c, p, nil
}

// parsePrefixes parses a comma-separated list of CIDRs (a bare address is
// its /32 or /128).
func parsePrefixes(flag, list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range splitList(list) {
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", flag, err)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", flag, err)
		}
		out = append(out, pfx)
	}
	return out, nil
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

// logOptions turns the log flags into logs.Options; secrets are scrubbed
// from every line.
func (f *serveFlags) logOptions(level slog.Level, stderr io.Writer, secrets ...string) (logs.Options, error) {
	if f.logMaxSize <= 0 {
		return logs.Options{}, fmt.Errorf("--log-max-size %d: want a positive number of megabytes", f.logMaxSize)
	}
	o := logs.Options{Level: level, Stderr: stderr, File: f.logFile, ErrorFile: f.errorLogFile,
		MaxSizeMB: f.logMaxSize, MaxAgeDays: f.logMaxAge, MaxBackups: f.logMaxBackups, Compress: f.logCompress, Secrets: secrets}
	offWhenZero(nil, []*int{&o.MaxAgeDays, &o.MaxBackups})
	return o, nil
}

func serveCommand(args []string, stdout, stderr io.Writer) int {
	// SIGHUP's default action ends the process: take it over before
	// anything else (the reloader handles it once the logs are open).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	fs, f := newServeFlagSet()
	if err := parseWithEnv(fs, args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			serveUsage(stdout, fs, os.Getenv)
			return 0
		}
		badFlags(stderr, fs, err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		fmt.Fprintf(stderr, "sockmon serve: --log-level: %v\n", err)
		return 2
	}
	if d := f.dashboardInterval; d < dashboard.MinInterval || d > dashboard.MaxInterval {
		fmt.Fprintf(stderr, "sockmon serve: --dashboard-interval %s: want between %s and %s\n", d, dashboard.MinInterval, dashboard.MaxInterval)
		return 2
	}
	if f.dashboardMaxClients < 1 {
		fmt.Fprintf(stderr, "sockmon serve: --dashboard-max-clients %d: want at least 1\n", f.dashboardMaxClients)
		return 2
	}
	adminSecret := os.Getenv("SOCKMON_ADMIN_SECRET")
	var dev devSetup
	if f.dev && adminSecret == "" {
		secret, path, created, err := devAdminSecret(f.dataDir)
		if err != nil {
			fmt.Fprintf(stderr, "sockmon serve: %v\n", err)
			return 2
		}
		adminSecret, dev.secretPath, dev.created = secret, path, created
		ttl := devTokenTTL
		if f.proto.JWTMaxTTL > 0 {
			ttl = min(ttl, f.proto.JWTMaxTTL)
		}
		dev.token, err = control.MintAdminToken([]byte(secret), control.TokenClaims{Sub: "dev", TTL: ttl,
			Audience: f.proto.JWTAudience, Issuer: f.proto.JWTIssuer})
		if err != nil {
			fmt.Fprintf(stderr, "sockmon serve: --dev: %v\n", err)
			return 2
		}
	}
	lopts, err := f.logOptions(level, stderr, os.Getenv("SOCKMON_JWT_SECRET"), adminSecret, os.Getenv(backplane.PasswordEnv))
	if err != nil {
		fmt.Fprintf(stderr, "sockmon serve: %v\n", err)
		return 2
	}
	lg, err := logs.Open(lopts)
	if err != nil {
		fmt.Fprintf(stderr, "sockmon serve: %v\n", err)
		return 2
	}
	defer lg.Close()
	logger := lg.Logger
	reload := newReloader(logger)
	reload.add("logs", lg.Rotate)
	switch {
	case dev.secretPath != "":
		// The attribute's name must not look like a secret's, or the
		// redaction removes the path.
		logger.Warn("development set-up (--dev): not for production; the admin secret is generated", "file", dev.secretPath)
	case f.dev:
		logger.Warn("development set-up (--dev): not for production; the admin secret is SOCKMON_ADMIN_SECRET")
	}

	cfg, pcfg, err := f.configs(logger, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "sockmon serve: %v\n", err)
		return 2
	}
	controlTrusted, err := parsePrefixes("--control-trusted-proxies", f.controlTrusted)
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
	// At SIGHUP a bad file keeps the upstreams in force (the step fails and
	// says why in the log).
	reload.add("upstreams", func() error {
		if err := loadUpstreams(ups, f.upstreams, f.upstreamsFile); err != nil {
			return fmt.Errorf("the previous upstreams stay in force: %w", err)
		}
		return nil
	})
	pcfg.RPC = ups
	proto, err := protocol.New(srv, pcfg)
	if err != nil {
		fmt.Fprintf(stderr, "sockmon serve: %v\n", err)
		return 2
	}
	closeRate := f.closeLogRate
	offWhenZero(nil, []*int{&closeRate})
	closes := logs.NewCloseLog(logger, closeRate)
	srv.OnDisconnect(closes.OnDisconnect)

	// Listen first: a port in use fails before the store is opened. Until
	// the servers run, a failed start closes the listeners opened so far.
	var opened []io.Closer
	fail := func(code int, format string, a ...any) int {
		for _, l := range opened {
			_ = l.Close()
		}
		fmt.Fprintf(stderr, "sockmon serve: "+format+"\n", a...)
		return code
	}
	ln, err := netpoll.CreateListener("tcp", f.cfg.Addr)
	if err != nil {
		return fail(1, "listen on %s: %v", f.cfg.Addr, err)
	}
	opened = append(opened, ln)
	cln, err := net.Listen("tcp", f.controlAddr)
	if err != nil {
		return fail(1, "listen on %s: %v", f.controlAddr, err)
	}
	opened = append(opened, cln)
	alertsCfg, err := f.alerts.config(os.Getenv)
	if err != nil {
		return fail(2, "%v", err)
	}
	var aln net.Listener
	if f.agentAddr != "" {
		if aln, err = net.Listen("tcp", f.agentAddr); err != nil {
			return fail(1, "listen on %s: %v", f.agentAddr, err)
		}
		opened = append(opened, aln)
	}
	// The Redis backplane: one client for the whole process. A bad URL
	// stops the start; an unreachable Redis does not (the node is degraded
	// and retries). Its goroutines stop when serve returns, after the drain.
	var (
		rdb  redis.UniversalClient
		node *cluster.Node
		deps []control.Dependency
	)
	if f.redisURL != "" {
		if rdb, err = backplane.NewClient(f.redisURL); err != nil {
			return fail(2, "--redis-url: %v", err)
		}
		// go-redis's own lines (a failed dial, per attempt) go to the log
		// as JSON at debug: the node logs Redis failures itself, once.
		redis.SetLogger(redisLogger{logger.With("component", "go-redis")})
		defer rdb.Close()
		bp, err := backplane.NewRooms(rdb, backplane.Options{QueueSize: f.redisQueueSize, Metrics: cfg.Metrics, Logger: logger})
		if err != nil {
			return fail(2, "--redis-queue-size: %v", err)
		}
		bp.Start(proto.UseBroker(bp))
		defer bp.Close()
		if node, err = newClusterNode(f, rdb, srv, ln.Addr().String(), cln.Addr().String(), logger); err != nil {
			return fail(2, "%v", err)
		}
		// Bans of this node are shared; those of the others are kept here.
		proto.SetBanShare(node)
		node.OnBan(proto.ImportBan)
		deps = append(deps, bp, node)
		logger.Info("redis backplane", "url", backplane.Redact(f.redisURL), "node_id", node.ID(), "instance", bp.ID())
	}
	emergency := make(chan string, 1)
	ctl, err := control.New(control.Config{
		Cluster:        node,
		Alerts:         alertsCfg,
		Addr:           f.controlAddr,
		DataDir:        f.dataDir,
		AdminSecret:    []byte(adminSecret),
		ClientSecret:   pcfg.JWTSecret,
		Engine:         srv,
		Protocol:       proto,
		Upstreams:      ups,
		Dependencies:   deps,
		Logger:         logger,
		MemoryLimit:    f.memoryLimit,
		TrustedProxies: controlTrusted,
		JWTAudience:    pcfg.JWTAudience,
		JWTIssuer:      pcfg.JWTIssuer,
		JWTMaxTTL:      pcfg.JWTMaxTTL,
		OnEmergencyShutdown: func(reason string) {
			select {
			case emergency <- reason:
			default:
			}
		},
	})
	if err != nil {
		return fail(2, "%v", err)
	}
	// The store closes on every way out. On a signal this runs after the
	// WebSocket side has drained: the control side keeps answering (health
	// says draining) until then.
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ctl.Shutdown(ctx)
	}()
	if node != nil {
		// Registered once control handles other nodes' commands; gone
		// from the cluster before control stops (deferred calls run last
		// first).
		node.Start()
		defer node.Close()
	}
	// The rules file wins at start; a bad one stops the start, and at
	// SIGHUP keeps the rules in force.
	if f.alerts.file != "" {
		n, err := loadAlertsFile(ctl.Alerts(), f.alerts.file, os.Getenv)
		if err != nil {
			return fail(2, "%v", err)
		}
		logger.Info("alerts file loaded", "file", f.alerts.file, "rules", n)
		reload.add("alerts file", func() error {
			if _, err := loadAlertsFile(ctl.Alerts(), f.alerts.file, os.Getenv); err != nil {
				return fmt.Errorf("the previous rules stay in force: %w", err)
			}
			return nil
		})
	}
	dash, err := dashboard.New(dashboard.Options{Control: ctl, Interval: f.dashboardInterval, MaxClients: f.dashboardMaxClients,
		Version: version, Logger: logger})
	if err == nil {
		err = ctl.Mount(dash.Prefix(), dash.Handler)
	}
	if err == nil && f.pprof {
		err = ctl.EnableProfiling()
	}
	if err != nil {
		return fail(2, "%v", err)
	}
	// The live streams close before the control server stops (deferred
	// calls run last first).
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = dash.Shutdown(ctx)
	}()
	// Every step is in: reloads may start (a SIGHUP before this waits in
	// the channel; signal.Notify at the top keeps it from ending the
	// process).
	defer reload.watch(hup)()
	// Signals are caught before anything serves (and before the address is
	// logged): a SIGTERM during start-up drains like any other.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	if f.statsLogInterval > 0 {
		stats := logs.NewStatsReporter(logs.StatsOptions{Metrics: cfg.Metrics, Logger: logger, Interval: f.statsLogInterval, Closes: closes})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { stats.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
	}
	if f.clientHealth {
		for _, p := range control.PublicHealthPaths() {
			err := srv.HandleHTTP(p, func(*netcore.Request) (int, string, []byte) {
				status, body, _ := ctl.PublicHealth(p)
				return status, "application/json", body
			})
			if err != nil {
				fmt.Fprintf(stderr, "sockmon serve: %v\n", err)
				return 2
			}
		}
	}
	// The WebSocket side's end, and the control side's failures, arrive
	// apart: a control failure drains the clients before the exit, a
	// WebSocket failure has no one left to drain.
	errc := make(chan error, 1)
	ctlErr := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() {
		if err := ctl.Serve(cln); err != nil && !errors.Is(err, control.ErrServerClosed) {
			ctlErr <- fmt.Errorf("control: %w", err)
		}
	}()
	attrs := []any{"addr", ln.Addr().String(), "control_addr", cln.Addr().String()}
	if aln != nil {
		// The agent answers from the control server: during a drain it
		// says "drain" until the process exits.
		go func() {
			if err := ctl.ServeAgent(aln); err != nil && !errors.Is(err, control.ErrServerClosed) {
				ctlErr <- err
			}
		}()
		attrs = append(attrs, "agent_addr", aln.Addr().String())
	}
	if files := lg.Files(); len(files) > 0 {
		attrs = append(attrs, "log_files", files)
	}
	logger.Info("sockmon serving", append(attrs, "version", version, "revision", revision)...)
	if f.dev {
		printDevBanner(stdout, dev, ln.Addr(), cln.Addr())
	}

	exit := 0
wait:
	for {
		select {
		case err := <-errc:
			logger.Error("server stopped", "err", err)
			return 1
		case err := <-ctlErr:
			// Never take the clients down without a drain because the
			// control side failed.
			logger.Error("control side stopped; draining the WebSocket side", "err", err)
			exit = 1
			break wait
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
	return exit
}

// newClusterNode is this process in the cluster of --redis-url: its id
// (--node-id, or hostname:port), what it reports at each heartbeat.
func newClusterNode(f *serveFlags, rdb redis.UniversalClient, srv *netcore.Server, addr, ctlAddr string, logger *slog.Logger) (*cluster.Node, error) {
	id := f.nodeID
	if id == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(addr)
		id = host + ":" + port
	}
	return cluster.New(cluster.Options{Client: rdb, ID: id, Address: addr, ControlAddress: ctlAddr, Version: version,
		Interval: f.nodeHeartbeat, Logger: logger, Local: func() cluster.Local {
			st := srv.Stats()
			l := cluster.Local{Connections: st.Open, Status: cluster.StatusHealthy}
			switch {
			case st.Draining:
				l.Status = cluster.StatusDraining
			case srv.Maintenance() != nil:
				l.Status = cluster.StatusMaintenance
			}
			return l
		}})
}

// redisLogger hands go-redis's log lines to slog at debug.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.DebugContext(ctx, fmt.Sprintf(format, v...))
}
