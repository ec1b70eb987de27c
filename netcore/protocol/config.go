package protocol

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Config is the protocol's configuration. A zero field means "use the
// default" (see setDefaults); a negative rate switches that limit off. A
// Config is read once by New and never changed afterwards.
type Config struct {
	// Path is the upgrade path of the sockmon protocol. Default "/ws".
	Path string
	// EchoPath, when set, is a path where every text and binary message is
	// echoed back verbatim (conformance suites, benchmarks), with the same
	// admission and message rate limit as Path. Off by default.
	EchoPath string

	// JWTSecret verifies client tokens (HS256) from ?token= or
	// Authorization: Bearer. Without it, every client is anonymous and a
	// token is refused with 401.
	JWTSecret []byte
	// JWTAudience and JWTIssuer, when set, are the aud and iss a client
	// token must carry; JWTMaxTTL, when positive, is the longest lifetime
	// accepted (exp - iat, and exp - now). A token that fails them is
	// refused with 401.
	JWTAudience string
	JWTIssuer   string
	JWTMaxTTL   time.Duration
	// RequireAuth refuses clients without a valid token (401).
	RequireAuth bool
	// AllowedOrigins lists the Origin values browsers may connect from
	// ("https://app.example.com", "https://*.example.com" or "*"). Empty
	// allows every origin. Requests without Origin (non-browser clients)
	// are always allowed.
	AllowedOrigins []string
	// IPv6Prefix is the prefix length an IPv6 client is limited and banned
	// by (an IPv4 client by its address). Default 64.
	IPv6Prefix int

	// ConnRate and ConnBurst limit new connections per client IP: ConnRate
	// per second with bursts of ConnBurst (429 + Retry-After).
	ConnRate  int
	ConnBurst int
	// MessageRate and MessageBurst limit messages per connection: an error
	// reply with code rate_limited and retryAfterMs.
	MessageRate  int
	MessageBurst int
	// MessageBytesRate and MessageBytesBurst limit the bytes of the
	// messages per connection, counted after inflating (a 124-byte deflated
	// frame can inflate to 64 KiB: this bounds that work as well as the
	// traffic). The burst must hold the largest message. Over it: a
	// rate_limited reply, counted as a strike like the message rate.
	MessageBytesRate  int
	MessageBytesBurst int
	// BanAfter is how many rate-limited messages in one BanWindow close the
	// connection with 1008 and ban its IP, or its user when authenticated.
	BanAfter  int
	BanWindow time.Duration
	// BanDuration is the first ban; each repeat after a ban has run out
	// doubles it up to BanMax (offences while banned, such as the other
	// connections of the same flood, count for nothing), and the doubling
	// decays one step per BanDecay of quiet time after a ban ends.
	BanDuration time.Duration
	BanMax      time.Duration
	BanDecay    time.Duration
	// MaxBadMessages is how many malformed messages in one BanWindow close a
	// connection with 1008.
	MaxBadMessages int
	// MaxRoomsPerConn caps the rooms one connection may join.
	MaxRoomsPerConn int
	// PublishWithoutJoin lets a connection publish to a room it is not in.
	// Off by default: publishing needs membership, so an outsider cannot
	// make a room's members receive (and the server queue) its messages.
	PublishWithoutJoin bool
	// RoomPublishRate and RoomPublishBurst limit the publishes to one room,
	// all publishers together (rate_limited with retryAfterMs over it).
	// Defaults 200 per second, bursts of 400; negative disables.
	RoomPublishRate  int
	RoomPublishBurst int

	// RPC answers the rpc envelope (a *upstream.Set). Nil: every rpc gets
	// not_found.
	RPC RPC
	// MaxRPCInFlight caps the rpc calls one connection may have open; more
	// get too_many_requests.
	MaxRPCInFlight int

	// Logger receives the protocol's logs. Default: the engine's.
	Logger *slog.Logger
}

// Defaults, in one place.
const (
	DefaultPath              = "/ws"
	DefaultConnRate          = 20
	DefaultConnBurst         = 100
	DefaultMessageRate       = 100
	DefaultMessageBurst      = 200
	DefaultMessageBytesRate  = 1 << 20
	DefaultMessageBytesBurst = 4 << 20
	DefaultBanAfter          = 50
	DefaultBanWindow         = 10 * time.Second
	DefaultBanDuration       = time.Minute
	DefaultBanMax            = time.Hour
	DefaultBanDecay          = 10 * time.Minute
	DefaultMaxBadMessages    = 20
	DefaultMaxRoomsPerConn   = 64
	DefaultRoomPublishRate   = 200
	DefaultRoomPublishBurst  = 400
	DefaultMaxRPCInFlight    = 16
	DefaultIPv6Prefix        = 64
)

// setDefaults fills every zero field with its default.
func (c *Config) setDefaults(engineLog *slog.Logger) {
	if c.Path == "" {
		c.Path = DefaultPath
	}
	for _, d := range []struct {
		p *int
		v int
	}{
		{&c.ConnRate, DefaultConnRate}, {&c.ConnBurst, DefaultConnBurst},
		{&c.MessageRate, DefaultMessageRate}, {&c.MessageBurst, DefaultMessageBurst},
		{&c.MessageBytesRate, DefaultMessageBytesRate}, {&c.MessageBytesBurst, DefaultMessageBytesBurst},
		{&c.BanAfter, DefaultBanAfter}, {&c.MaxBadMessages, DefaultMaxBadMessages},
		{&c.MaxRoomsPerConn, DefaultMaxRoomsPerConn}, {&c.MaxRPCInFlight, DefaultMaxRPCInFlight},
		{&c.IPv6Prefix, DefaultIPv6Prefix},
		{&c.RoomPublishRate, DefaultRoomPublishRate}, {&c.RoomPublishBurst, DefaultRoomPublishBurst},
	} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{
		{&c.BanWindow, DefaultBanWindow}, {&c.BanDuration, DefaultBanDuration},
		{&c.BanMax, DefaultBanMax}, {&c.BanDecay, DefaultBanDecay},
	} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	if c.Logger == nil {
		c.Logger = engineLog
	}
}

// validate reports every configuration error at once.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("protocol: "+format, args...))
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
	if c.ConnRate > 0 && c.ConnBurst < 1 {
		bad("conn-burst must be at least 1, got %d", c.ConnBurst)
	}
	if c.MessageRate > 0 && c.MessageBurst < 1 {
		bad("message-burst must be at least 1, got %d", c.MessageBurst)
	}
	for name, v := range map[string]int{"ban-after": c.BanAfter, "max-bad-messages": c.MaxBadMessages, "max-rooms": c.MaxRoomsPerConn, "max-rpc-in-flight": c.MaxRPCInFlight} {
		if v < 0 {
			bad("%s must be positive, got %d", name, v)
		}
	}
	for name, d := range map[string]time.Duration{"ban-window": c.BanWindow, "ban-duration": c.BanDuration, "ban-max": c.BanMax, "ban-decay": c.BanDecay} {
		if d < 0 {
			bad("%s must be positive, got %s", name, d)
		}
	}
	if c.IPv6Prefix < 1 || c.IPv6Prefix > 128 {
		bad("ipv6-prefix %d: want 1 to 128", c.IPv6Prefix)
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
	return errors.Join(errs...)
}

// banPolicy collects the escalation settings.
func (c *Config) banPolicy() banPolicy {
	return banPolicy{base: c.BanDuration, max: c.BanMax, decay: c.BanDecay}
}
