package netcore

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/sockmon/sockmon/metrics"
)

// Config is the server's configuration. A zero field means "use the
// default" (see setDefaults); negative durations switch a timer off where the
// field says so. A Config is read once by New and never changed afterwards.
type Config struct {
	// Addr is the TCP address of the WebSocket listener. Default ":8080".
	Addr string
	// MaxConns caps upgraded connections; the next upgrade gets 503.
	// Default 10000.
	MaxConns int
	// MaxPending caps the connections still in the handshake (accepted,
	// not yet upgraded or refused), and MaxPendingPerIP those from one peer
	// address (a trusted proxy's is exempt); a connection over either is
	// closed at once. Defaults 1000 and 50. See pending.go.
	MaxPending      int
	MaxPendingPerIP int
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
	// OutboundBudget caps the bytes queued for slow readers by all
	// connections together (each is also capped by WriteQueueBytes): past
	// it, a connection with a backlog (64 KiB or more) that would queue
	// more is closed as a slow consumer (1008), so a fan-out to many
	// members that stopped reading cannot exhaust memory, while clients
	// that read keep their messages. Default 256 MiB; negative disables.
	OutboundBudget int
	// WriteTimeout is how long one flush may wait for a socket that does not
	// drain before the connection is dropped. Default 10s.
	WriteTimeout time.Duration
	// DisableWriteCoalescing sends every frame of a fan-out in a system
	// call of its own. By default (coalescing on) a fan-out writes all its
	// frames before flushing, and a flush sends everything queued for the
	// connection by then in one sendmsg: several publishes to a busy room
	// cost one write per member instead of one per message. Nothing is
	// held back to wait for company (no timer, nothing like Nagle): a lone
	// message leaves at once. Off is for comparing (sockmon serve
	// --write-coalescing off).
	DisableWriteCoalescing bool
	// DisablePollerServe hands every input to a worker goroutine. By
	// default input that is nothing but complete frames of an open
	// connection is served on netpoll's poller that read it, with no
	// hand-off (inline.go). Off is for comparing (sockmon serve
	// --poller-serve off).
	DisablePollerServe bool
	// DisablePollerRescue has each netpoll poller serve only the
	// connections registered with it. By default the pollers rescue one
	// another (netpoll patch 8): what is ready for a poller that has been
	// inside one batch, or blocked, for over 250 µs (its thread
	// preempted by the kernel, on cores the server shares with other
	// processes) is served by another, so such a poller holds up only the
	// batch it is in rather than every connection registered with it; see
	// bench/RESULTS.md. The pollers are the process's: the first Server's
	// setting holds, and New fails for a later one that asks otherwise.
	// Off is for comparing (sockmon serve --poller-rescue off).
	DisablePollerRescue bool
	// CloseTimeout is how long the server waits for the peer's close frame
	// after sending its own. Default 3s.
	CloseTimeout time.Duration
	// LingerTimeout and LingerBytes bound a lingering close. Every close the
	// server ends (a ban, a limit, a protocol error, an operator's or the
	// drain's close once the peer answered, a refused upgrade) shuts the
	// write side once its last frame or response is flushed, then reads and
	// drops the peer's input until the peer closes, for at most
	// LingerTimeout or LingerBytes, as nginx's lingering_close does: closing
	// with unread input makes the kernel send a reset, and the peer would
	// drop what it had not read yet, the close frame included. Defaults 5s
	// and 1 MiB.
	LingerTimeout time.Duration
	LingerBytes   int

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

	// TrustedProxies are the networks (CIDR) of the load balancers in
	// front: only they may send a PROXY header, and admitters may believe
	// the X-Forwarded-For they send (the sockmon protocol does).
	TrustedProxies []netip.Prefix
	// ProxyProtocol says whether connections start with a PROXY protocol
	// header (v1 or v2) naming the client. Default ProxyOff.
	ProxyProtocol ProxyMode

	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
	// Metrics records every message. Default: a new metrics.Metrics owned
	// and closed by the server.
	Metrics *metrics.Metrics
}

// Defaults, in one place.
const (
	DefaultAddr                 = ":8080"
	DefaultMaxConns             = 10000
	DefaultMaxPending           = 1000
	DefaultMaxPendingPerIP      = 50
	DefaultMaxMessageSize       = 64 << 10
	DefaultMaxHeaderBytes       = 8 << 10
	DefaultHandshakeTimeout     = 5 * time.Second
	DefaultIdleTimeout          = 75 * time.Second
	DefaultPingInterval         = 25 * time.Second
	DefaultWriteQueueBytes      = 1 << 20
	DefaultOutboundBudget       = 256 << 20
	DefaultWriteTimeout         = 10 * time.Second
	DefaultCloseTimeout         = 3 * time.Second
	DefaultLingerTimeout        = 5 * time.Second
	DefaultLingerBytes          = 1 << 20
	DefaultCompressionThreshold = 512
	DefaultDrainDelay           = 5 * time.Second
	DefaultShutdownTimeout      = 25 * time.Second
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
	defInt(&c.MaxConns, DefaultMaxConns)
	defInt(&c.MaxPending, DefaultMaxPending)
	defInt(&c.MaxPendingPerIP, DefaultMaxPendingPerIP)
	defInt(&c.MaxMessageSize, DefaultMaxMessageSize)
	defInt(&c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	defInt(&c.WriteQueueBytes, DefaultWriteQueueBytes)
	defInt(&c.OutboundBudget, DefaultOutboundBudget)
	defInt(&c.CompressionThreshold, DefaultCompressionThreshold)
	defDur(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	defDur(&c.IdleTimeout, DefaultIdleTimeout)
	defDur(&c.PingInterval, DefaultPingInterval)
	defDur(&c.WriteTimeout, DefaultWriteTimeout)
	defDur(&c.CloseTimeout, DefaultCloseTimeout)
	defDur(&c.LingerTimeout, DefaultLingerTimeout)
	defInt(&c.LingerBytes, DefaultLingerBytes)
	defDur(&c.DrainDelay, DefaultDrainDelay)
	defDur(&c.ShutdownTimeout, DefaultShutdownTimeout)
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
	positive := map[string]int{
		"max-conns": c.MaxConns, "max-message-size": c.MaxMessageSize,
		"max-pending": c.MaxPending, "max-pending-per-ip": c.MaxPendingPerIP,
		"max-header-bytes": c.MaxHeaderBytes, "write-queue-bytes": c.WriteQueueBytes,
		"compression-threshold": c.CompressionThreshold, "linger-bytes": c.LingerBytes,
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
		"close-timeout": c.CloseTimeout, "shutdown-timeout": c.ShutdownTimeout, "linger-timeout": c.LingerTimeout,
	} {
		if d < 0 {
			bad("%s must be positive, got %s", name, d)
		}
	}
	if c.PingInterval > 0 && c.IdleTimeout > 0 && c.IdleTimeout <= c.PingInterval {
		bad("idle-timeout %s must be longer than ping-interval %s, or pings cannot keep a quiet client alive", c.IdleTimeout, c.PingInterval)
	}
	if c.ProxyProtocol > ProxyOn {
		bad("proxy protocol mode %d: want off, optional or on", c.ProxyProtocol)
	}
	if c.ProxyProtocol != ProxyOff && len(c.TrustedProxies) == 0 {
		bad("proxy-protocol %s needs --trusted-proxies: only the balancers listed there may send a PROXY header", c.ProxyProtocol)
	}
	if c.DrainDelay > 0 && c.DrainDelay >= c.ShutdownTimeout {
		bad("drain-delay %s must be shorter than shutdown-timeout %s", c.DrainDelay, c.ShutdownTimeout)
	}
	return errors.Join(errs...)
}
