package control

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/sockmon/sockmon/control/alerts"
	"github.com/sockmon/sockmon/control/cluster"
)

// Defaults, in one place.
const (
	DefaultAddr                  = ":8081"
	DefaultDataDir               = "./data"
	DefaultMaxBodyBytes          = 1 << 20
	DefaultReadTimeout           = 10 * time.Second
	DefaultWriteTimeout          = 10 * time.Second
	DefaultIdleTimeout           = 60 * time.Second
	DefaultDegradedErrorRate     = 0.1
	DefaultDegradedP99           = 250 * time.Millisecond
	DefaultDegradedMinMessages   = 100
	DefaultMemoryDegradedRatio   = 0.9
	DefaultMinLivenessTimeout    = 3 * time.Second
	DefaultAuthFailures          = 10
	DefaultAuthFailureWindow     = time.Minute
	DefaultAuditMaxEntries       = 100_000
	DefaultAuditMaxAge           = 90 * 24 * time.Hour
	DefaultAuditMaxBytes         = 64 << 20
	DefaultAuditRefusedEntries   = 1000
	DefaultRefusalLogRate        = 10
	DefaultCommandHistoryLimit   = 50
	DefaultDetailConnectionLimit = 100
	DefaultAgentMaxConns         = 8
	DefaultAgentTimeout          = 2 * time.Second
	DefaultAgentWeightKnee       = 0.5

	// MinAdminSecretBytes is the shortest admin secret accepted: an HS256
	// key should carry at least 256 bits.
	MinAdminSecretBytes = 32
)

// Config configures the control server. A zero field means "use the
// default" (see setDefaults); New reads it once and keeps a copy.
type Config struct {
	// Addr is the TCP address ListenAndServe listens on. Default ":8081".
	Addr string
	// DataDir holds the store (control.db): audit log, alert configs,
	// rate-limit overrides and maintenance state. Created (0700) if
	// missing. Default "./data".
	DataDir string

	// AdminSecret verifies admin tokens (HS256). Empty switches the admin
	// endpoints off: they answer 503 rather than run unauthenticated. When
	// set it must be at least MinAdminSecretBytes long.
	AdminSecret []byte
	// ClientSecret is the secret client tokens are signed with
	// (SOCKMON_JWT_SECRET). It is never accepted for admin tokens; New
	// refuses an AdminSecret equal to it, and a client token presented to
	// the admin API is refused and logged as such.
	ClientSecret []byte

	// Engine is the WebSocket engine the control side reads and drives
	// (a *netcore.Server). Required.
	Engine Engine
	// Protocol is the client protocol served on the engine (a
	// *protocol.Service). Required.
	Protocol Protocol
	// Upstreams are the rpc envelope's upstream services (an
	// *upstream.Set), shown in health with their circuit breakers and reset
	// by reset_circuit_breaker. Nil: no upstreams, no breakers.
	Upstreams Upstreams
	// Cluster is this node in the cluster of the Redis backplane
	// (--redis-url): get_cluster, the scope of the fleet-wide actions,
	// per-user rate limits shared by every node. New sets its Handler and
	// OnRateLimit; the caller starts it after New and closes it before
	// Shutdown. Nil: a node on its own.
	Cluster *cluster.Node
	// Dependencies are checked by health: each degraded one makes the node
	// "degraded" with its reason. Nil: none.
	Dependencies []Dependency
	// Logger receives structured logs (audit records included). Default: a
	// JSON handler on standard error.
	Logger *slog.Logger
	// OnEmergencyShutdown is called once, on a goroutine of its own, after
	// an accepted emergency_shutdown command has been recorded and answered.
	// It may call Shutdown on this server and on the engine; the control
	// server does not wait for it. Nil means: the control server shuts the
	// engine down itself (clients are drained and the engine stops) and
	// stays up so the operator can see the state.
	OnEmergencyShutdown func(reason string)

	// JWTAudience and JWTIssuer, when set, are the aud and iss an admin
	// token must carry (the same settings as the client side's). JWTMaxTTL,
	// when positive, is the longest lifetime accepted: a token minted for
	// longer (exp - iat), or valid for longer from now, is refused.
	JWTAudience string
	JWTIssuer   string
	JWTMaxTTL   time.Duration

	// TrustedProxies are the networks (CIDR) whose X-Forwarded-For is
	// believed for the audit log's source IP and the auth-failure limit.
	TrustedProxies []netip.Prefix

	// MaxBodyBytes caps a request body; over it the answer is 413.
	// Default 1 MiB.
	MaxBodyBytes int
	// ReadTimeout, WriteTimeout and IdleTimeout bound a request read, a
	// response write and an idle keep-alive connection. Defaults 10s, 10s,
	// 60s.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration

	// DegradedErrorRate is the error replies per message received over the
	// last minute above which health says "degraded". Default 0.1 (the
	// seed's error_rate alert).
	DegradedErrorRate float64
	// DegradedP99 is the message-handling p99 over the last minute above
	// which health says "degraded". Default 250ms.
	DegradedP99 time.Duration
	// DegradedMinMessages is how many messages the last minute must hold
	// before the error rate and p99 are judged, so one failed message on an
	// idle node does not flap health. Default 100.
	DegradedMinMessages int
	// MemoryLimit is the resident memory (heap when /proc is unavailable)
	// above which health says "unhealthy"; above MemoryDegradedRatio of it,
	// "degraded". Default: the Go runtime's memory limit (GOMEMLIMIT) when
	// one is set, else the container's (cgroup v2 memory.max, or v1
	// memory.limit_in_bytes), else no memory check. Negative disables.
	// MemoryLimitSource says which one applies (the Memory* constants).
	MemoryLimit       int64
	MemoryLimitSource string
	// CgroupRoot is where the cgroup file systems are mounted, for the
	// default MemoryLimit. Default /sys/fs/cgroup.
	CgroupRoot string
	// MemoryDegradedRatio is the fraction of MemoryLimit that makes health
	// "degraded". Default 0.9 (the seed's memory_usage alert).
	MemoryDegradedRatio float64
	// LivenessTimeout is the age of the engine's heartbeat above which
	// /livez fails and health says "unhealthy" (event loops stalled).
	// Default: ten sweeper ticks, at least 3s.
	LivenessTimeout time.Duration

	// AuthFailures failed admin authentications from one IP (an IPv6 /64)
	// within AuthFailureWindow lock that IP out until the window has passed:
	// its requests without a valid admin token get 429 and are neither
	// recorded nor logged; a valid admin token is still admitted. Defaults
	// 10 and 1 minute.
	AuthFailures      int
	AuthFailureWindow time.Duration

	// AuditMaxEntries, AuditMaxAge and AuditMaxBytes bound the audit log of
	// authenticated requests: the oldest records are pruned as new ones are
	// written while there are more than AuditMaxEntries, any older than
	// AuditMaxAge, or their JSON passes AuditMaxBytes. Defaults 100000, 90
	// days and 64 MiB.
	AuditMaxEntries int
	AuditMaxAge     time.Duration
	AuditMaxBytes   int64
	// AuditRefusedEntries bounds the records of admin POSTs refused before
	// a token verified (401, 403, 429, 503 and bodies too large): they are
	// kept apart from the operators' records, at most this many, the oldest
	// going first. Default 1000.
	AuditRefusedEntries int
	// RefusalLogRate bounds the lines logged for requests refused before a
	// token verified, per second (in bursts of as many); the rest are
	// counted in the next line. Default 10; negative: no limit.
	RefusalLogRate int

	// AgentMaxConns bounds the HAProxy agent-check connections answered at
	// once (ServeAgent); more are closed unanswered. Default 8.
	AgentMaxConns int
	// AgentTimeout bounds one agent-check connection, reply and close.
	// Default 2s.
	AgentTimeout time.Duration
	// AgentWeightKnee is the load (connections' share of --max-conns, or
	// CPU) up to which the agent sends weight 100%; above it the weight
	// falls in a straight line to 0 at full load. Default 0.5.
	AgentWeightKnee float64
	// Alerts configures the alerts engine: interval, group wait, channels,
	// routes, history bounds... (zero fields: its defaults). New fills in
	// its store, metrics, sources (heartbeat, slow consumers, open
	// breakers, memory limit), remediator and logger, so those fields are
	// ignored here. Its rules are the store's (configure_alert, the
	// defaults) and those of a rules file applied with
	// Server.Alerts().ApplyFile.
	Alerts alerts.Config
}

// setDefaults fills every zero field.
func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.DegradedErrorRate == 0 {
		c.DegradedErrorRate = DefaultDegradedErrorRate
	}
	if c.DegradedP99 == 0 {
		c.DegradedP99 = DefaultDegradedP99
	}
	if c.DegradedMinMessages == 0 {
		c.DegradedMinMessages = DefaultDegradedMinMessages
	}
	if c.CgroupRoot == "" {
		c.CgroupRoot = DefaultCgroupRoot
	}
	c.MemoryLimit, c.MemoryLimitSource = resolveMemoryLimit(c.MemoryLimit, c.CgroupRoot, "/proc/self/cgroup")
	if c.MemoryDegradedRatio == 0 {
		c.MemoryDegradedRatio = DefaultMemoryDegradedRatio
	}
	if c.LivenessTimeout == 0 && c.Engine != nil {
		c.LivenessTimeout = max(DefaultMinLivenessTimeout, 10*c.Engine.SweepInterval())
	}
	if c.AuthFailures == 0 {
		c.AuthFailures = DefaultAuthFailures
	}
	if c.AuthFailureWindow == 0 {
		c.AuthFailureWindow = DefaultAuthFailureWindow
	}
	if c.AuditMaxEntries == 0 {
		c.AuditMaxEntries = DefaultAuditMaxEntries
	}
	if c.AuditMaxAge == 0 {
		c.AuditMaxAge = DefaultAuditMaxAge
	}
	if c.AuditMaxBytes == 0 {
		c.AuditMaxBytes = DefaultAuditMaxBytes
	}
	if c.AuditRefusedEntries == 0 {
		c.AuditRefusedEntries = DefaultAuditRefusedEntries
	}
	if c.RefusalLogRate == 0 {
		c.RefusalLogRate = DefaultRefusalLogRate
	}
	if c.AgentMaxConns == 0 {
		c.AgentMaxConns = DefaultAgentMaxConns
	}
	if c.AgentTimeout == 0 {
		c.AgentTimeout = DefaultAgentTimeout
	}
	if c.AgentWeightKnee == 0 {
		c.AgentWeightKnee = DefaultAgentWeightKnee
	}
}

// validate reports every configuration error at once.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("control: "+format, args...))
	}
	if c.Engine == nil {
		bad("an engine (netcore.Server) is required")
	}
	if c.Protocol == nil {
		bad("a protocol (protocol.Service) is required")
	}
	if n := len(c.AdminSecret); n > 0 && n < MinAdminSecretBytes {
		bad("admin secret is %d bytes, want at least %d", n, MinAdminSecretBytes)
	}
	if len(c.AdminSecret) > 0 && string(c.AdminSecret) == string(c.ClientSecret) {
		bad("admin secret equals the client (JWT) secret: client tokens would be admin tokens")
	}
	if c.MaxBodyBytes < 1024 {
		bad("max body bytes %d is too small (want >= 1024)", c.MaxBodyBytes)
	}
	for name, d := range map[string]time.Duration{
		"read timeout": c.ReadTimeout, "write timeout": c.WriteTimeout, "idle timeout": c.IdleTimeout,
		"degraded p99": c.DegradedP99, "liveness timeout": c.LivenessTimeout,
		"auth failure window": c.AuthFailureWindow, "audit max age": c.AuditMaxAge,
		"agent timeout": c.AgentTimeout, "jwt max ttl": c.JWTMaxTTL,
	} {
		if d < 0 {
			bad("%s must be positive, got %s", name, d)
		}
	}
	if c.DegradedErrorRate < 0 || c.DegradedErrorRate > 1 {
		bad("degraded error rate %g is not a ratio in [0,1]", c.DegradedErrorRate)
	}
	if c.MemoryDegradedRatio <= 0 || c.MemoryDegradedRatio > 1 {
		bad("memory degraded ratio %g is not in (0,1]", c.MemoryDegradedRatio)
	}
	if c.DegradedMinMessages < 0 {
		bad("degraded min messages must be positive, got %d", c.DegradedMinMessages)
	}
	if c.AuthFailures < 0 {
		bad("auth failures must be positive, got %d", c.AuthFailures)
	}
	if c.AgentMaxConns < 0 {
		bad("agent max conns must be positive, got %d", c.AgentMaxConns)
	}
	if c.AgentWeightKnee < 0 || c.AgentWeightKnee >= 1 {
		bad("agent weight knee %g is not in [0,1)", c.AgentWeightKnee)
	}
	if c.AuditMaxEntries < 0 {
		bad("audit max entries must be positive, got %d", c.AuditMaxEntries)
	}
	if c.AuditMaxBytes < 0 {
		bad("audit max bytes must be positive, got %d", c.AuditMaxBytes)
	}
	if c.AuditRefusedEntries < 0 {
		bad("audit refused entries must be positive, got %d", c.AuditRefusedEntries)
	}
	return errors.Join(errs...)
}
