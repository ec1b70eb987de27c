package netcore

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/sockmon/sockmon/metrics"
)

// Config is the server's configuration. A zero field means "use the
// default" (see setDefaults); negative durations switch a timer off where the
// field says so. A Config is read once by New and never changed afterwards.
type Config struct {
	// Addr is the TCP address of the WebSocket listener. Default ":8080".
	Addr string
	// Path is the upgrade path of the sockmon protocol. Default "/ws".
	Path string
	// EchoPath, when set, is a path where every text and binary message is
	// echoed back verbatim (conformance suites, benchmarks). Off by default.
	EchoPath string

	// MaxConns caps upgraded connections; the next upgrade gets 503.
	// Default 10000.
	MaxConns int
	// MaxMessageSize caps a message in bytes, after reassembly of fragments
	// and after inflating; a larger one closes the connection with 1009.
	// Default 65536.
	MaxMessageSize int
	// MaxHeaderBytes caps the upgrade request head; over it: 431. Default 8192.
	MaxHeaderBytes int
	// HandshakeTimeout is how long a client has from TCP accept to a
	// complete upgrade request (slowloris guard). Default 5s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that sent nothing (not even a pong) for
	// this long. Default 75s; negative disables.
	IdleTimeout time.Duration
	// PingInterval is how often the server pings each connection. It must
	// stay below a proxy's read timeout (nginx: 60s). Default 25s; negative
	// disables.
	PingInterval time.Duration
	// WriteQueueBytes caps a connection's outbound queue: the bytes waiting
	// while an earlier write to a slow reader is still in flight. Over it the
	// connection is closed with 1008. Default 1 MiB.
	WriteQueueBytes int
	// WriteTimeout is how long one flush may wait for a socket that does not
	// drain before the connection is dropped. Default 10s.
	WriteTimeout time.Duration
	// CloseTimeout is how long the server waits for the peer's close frame
	// after sending its own. Default 3s.
	CloseTimeout time.Duration

	// Compression enables permessage-deflate (RFC 7692) negotiation, without
	// context takeover in either direction. Default on; see
	// DisableCompression.
	DisableCompression bool
	// CompressionThreshold is the payload size below which messages are sent
	// uncompressed. Default 512.
	CompressionThreshold int

	// DrainDelay is the wait between flipping readiness off and closing the
	// first connections, so load balancers stop sending new clients.
	// Default 5s; negative means no wait.
	DrainDelay time.Duration
	// ShutdownTimeout bounds a whole drain. Default 25s (Kubernetes' 30s
	// grace period minus a margin).
	ShutdownTimeout time.Duration

	// Handler handles the messages of Path. Default: the sockmon protocol
	// (JSON envelopes on text frames, binary frames echoed).
	Handler Handler
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
	// Metrics records every message. Default: a new metrics.Metrics owned
	// and closed by the server.
	Metrics *metrics.Metrics

	// JWTSecret verifies client tokens (HS256) from ?token= or
	// Authorization: Bearer. Without it, every client is anonymous and a
	// token is refused with 401.
	JWTSecret []byte
	// RequireAuth refuses clients without a valid token (401).
	RequireAuth bool
	// AllowedOrigins lists the Origin values browsers may connect from
	// ("https://app.example.com", "https://*.example.com" or "*"). Empty
	// allows every origin. Requests without Origin (non-browser clients)
	// are always allowed.
	AllowedOrigins []string
	// TrustedProxies are the networks (CIDR) whose X-Forwarded-For is
	// believed: the client IP is the rightmost address not in them.
	TrustedProxies []netip.Prefix

	// ConnRate and ConnBurst limit new connections per client IP: ConnRate
	// per second with bursts of ConnBurst (429 + Retry-After). Defaults 20
	// and 100; a negative ConnRate disables the limit.
	ConnRate  int
	ConnBurst int
	// MessageRate and MessageBurst limit messages per connection: an error
	// reply with code rate_limited and retryAfterMs. Defaults 100 per
	// second, bursts of 200; a negative MessageRate disables the limit.
	MessageRate  int
	MessageBurst int
	// BanAfter is how many rate-limited messages in one BanWindow close the
	// connection with 1008 and ban its IP, or its user when authenticated.
	// Defaults 50 and 10s.
	BanAfter  int
	BanWindow time.Duration
	// BanDuration is the first ban; each repeat doubles it up to BanMax,
	// and the doubling decays one step per BanDecay without an offence.
	// Defaults 1m, 1h and 10m.
	BanDuration time.Duration
	BanMax      time.Duration
	BanDecay    time.Duration
	// MaxBadMessages is how many malformed messages in one BanWindow close a
	// connection with 1008. Default 20.
	MaxBadMessages int
	// MaxRoomsPerConn caps the rooms one connection may join. Default 64.
	MaxRoomsPerConn int
}

// Defaults, in one place.
const (
	DefaultAddr                 = ":8080"
	DefaultPath                 = "/ws"
	DefaultMaxConns             = 10000
	DefaultMaxMessageSize       = 64 << 10
	DefaultMaxHeaderBytes       = 8 << 10
	DefaultHandshakeTimeout     = 5 * time.Second
	DefaultIdleTimeout          = 75 * time.Second
	DefaultPingInterval         = 25 * time.Second
	DefaultWriteQueueBytes      = 1 << 20
	DefaultWriteTimeout         = 10 * time.Second
	DefaultCloseTimeout         = 3 * time.Second
	DefaultCompressionThreshold = 512
	DefaultDrainDelay           = 5 * time.Second
	DefaultShutdownTimeout      = 25 * time.Second
	DefaultConnRate             = 20
	DefaultConnBurst            = 100
	DefaultMessageRate          = 100
	DefaultMessageBurst         = 200
	DefaultBanAfter             = 50
	DefaultBanWindow            = 10 * time.Second
	DefaultBanDuration          = time.Minute
	DefaultBanMax               = time.Hour
	DefaultBanDecay             = 10 * time.Minute
	DefaultMaxBadMessages       = 20
	DefaultMaxRoomsPerConn      = 64
)

// setDefaults fills every zero field with its default.
func (c *Config) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.Addr, DefaultAddr)
	def(&c.Path, DefaultPath)
	defInt(&c.MaxConns, DefaultMaxConns)
	defInt(&c.MaxMessageSize, DefaultMaxMessageSize)
	defInt(&c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	defInt(&c.WriteQueueBytes, DefaultWriteQueueBytes)
	defInt(&c.CompressionThreshold, DefaultCompressionThreshold)
	defDur(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	defDur(&c.IdleTimeout, DefaultIdleTimeout)
	defDur(&c.PingInterval, DefaultPingInterval)
	defDur(&c.WriteTimeout, DefaultWriteTimeout)
	defDur(&c.CloseTimeout, DefaultCloseTimeout)
	defDur(&c.DrainDelay, DefaultDrainDelay)
	defDur(&c.ShutdownTimeout, DefaultShutdownTimeout)
	defInt(&c.ConnRate, DefaultConnRate)
	defInt(&c.ConnBurst, DefaultConnBurst)
	defInt(&c.MessageRate, DefaultMessageRate)
	defInt(&c.MessageBurst, DefaultMessageBurst)
	defInt(&c.BanAfter, DefaultBanAfter)
	defInt(&c.MaxBadMessages, DefaultMaxBadMessages)
	defInt(&c.MaxRoomsPerConn, DefaultMaxRoomsPerConn)
	defDur(&c.BanWindow, DefaultBanWindow)
	defDur(&c.BanDuration, DefaultBanDuration)
	defDur(&c.BanMax, DefaultBanMax)
	defDur(&c.BanDecay, DefaultBanDecay)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// validate reports every configuration error at once.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("netcore: "+format, args...))
	}
	if !strings.HasPrefix(c.Path, "/") {
		bad("path %q must start with /", c.Path)
	}
	if c.EchoPath != "" && !strings.HasPrefix(c.EchoPath, "/") {
		bad("echo path %q must start with /", c.EchoPath)
	}
	if c.EchoPath == c.Path {
		bad("echo path and protocol path are both %q", c.Path)
	}
	positive := map[string]int{
		"max-conns": c.MaxConns, "max-message-size": c.MaxMessageSize,
		"max-header-bytes": c.MaxHeaderBytes, "write-queue-bytes": c.WriteQueueBytes,
		"compression-threshold": c.CompressionThreshold,
	}
	for name, v := range positive {
		if v < 0 {
			bad("%s must be positive, got %d", name, v)
		}
	}
	if c.MaxHeaderBytes < 256 {
		bad("max-header-bytes %d is too small for any real handshake (want >= 256)", c.MaxHeaderBytes)
	}
	for name, d := range map[string]time.Duration{
		"handshake-timeout": c.HandshakeTimeout, "write-timeout": c.WriteTimeout,
		"close-timeout": c.CloseTimeout, "shutdown-timeout": c.ShutdownTimeout,
	} {
		if d < 0 {
			bad("%s must be positive, got %s", name, d)
		}
	}
	if c.PingInterval > 0 && c.IdleTimeout > 0 && c.IdleTimeout <= c.PingInterval {
		bad("idle-timeout %s must be longer than ping-interval %s, or pings cannot keep a quiet client alive", c.IdleTimeout, c.PingInterval)
	}
	if c.BanMax < c.BanDuration {
		bad("ban-max %s is shorter than ban-duration %s", c.BanMax, c.BanDuration)
	}
	if c.RequireAuth && len(c.JWTSecret) == 0 {
		bad("require-auth needs a client secret (SOCKMON_JWT_SECRET)")
	}
	if len(c.JWTSecret) > 0 && len(c.JWTSecret) < 32 {
		bad("the client JWT secret is %d bytes; HS256 wants at least 32", len(c.JWTSecret))
	}
	for _, o := range c.AllowedOrigins {
		if o != "*" && !strings.Contains(o, "://") {
			bad("allowed origin %q must be a scheme://host[:port] (or *)", o)
		}
	}
	if c.DrainDelay > 0 && c.DrainDelay >= c.ShutdownTimeout {
		bad("drain-delay %s must be shorter than shutdown-timeout %s", c.DrainDelay, c.ShutdownTimeout)
	}
	return errors.Join(errs...)
}
