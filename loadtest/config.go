package loadtest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Mode selects what each connection does once it is upgraded.
type Mode string

// The modes of `sockmon load --mode`.
const (
	// ModeEchoBinary sends binary frames and expects them back verbatim; it
	// works against any echo server.
	ModeEchoBinary Mode = "echo-binary"
	// ModeEchoJSON sends sockmon's {"type":"echo","id":N,"data":...} and
	// expects the same envelope back.
	ModeEchoJSON Mode = "echo-json"
	// ModePublish joins every connection to one room and publishes into it;
	// latency is measured per delivery.
	ModePublish Mode = "publish"
	// ModeConnectOnly upgrades the connections and holds them idle, answering
	// server pings, for Duration.
	ModeConnectOnly Mode = "connect-only"
)

// Modes lists the valid modes in the order the help text shows them.
var Modes = []Mode{ModeEchoBinary, ModeEchoJSON, ModePublish, ModeConnectOnly}

// Limits that keep every run bounded.
const (
	MaxConns    = 1_000_000
	MaxDuration = 24 * time.Hour
	MaxSize     = 16 << 20
	MaxRate     = 10_000_000
)

// Config describes one load run. The zero value of every optional field means
// the default that applyDefaults sets; URL is required. A Config is read-only
// once passed to Run.
type Config struct {
	URL      string // ws:// or wss://
	Insecure bool   // skip TLS certificate verification for wss://

	Conns    int           // connections to open (default 100)
	Ramp     float64       // connections per second; 0 means as fast as DialConcurrency allows
	Rate     float64       // messages per second in total; 0 means closed loop
	Duration time.Duration // length of the measured phase after the ramp (default 10s)
	Size     int           // payload bytes (default 64)
	Mode     Mode          // default ModeEchoBinary
	Timeout  time.Duration // dial+handshake timeout and reply timeout (default 5s)

	// Sources are the local addresses dials are spread over, round robin.
	// Empty means the kernel chooses.
	Sources []netip.Addr
	// Header is added to every upgrade request.
	Header http.Header
	// Token is sent as "Authorization: Bearer" on every upgrade request.
	Token string
	// JWTSecret, when set, mints an HS256 token per connection (sub
	// "load-<n>") instead of Token.
	JWTSecret []byte

	// Room and Publishers configure ModePublish (defaults "sockmon-load" and 1).
	Room       string
	Publishers int

	// DialConcurrency bounds the dials in progress at once (default 64).
	DialConcurrency int

	// MetricsURL, when set, is scraped before and after the measured phase
	// (Prometheus text format) for the server-side view.
	MetricsURL string

	// Progress receives progress output while the run goes on; nil means
	// none. With ProgressTTY a single line is redrawn every second,
	// otherwise a plain line is written every ProgressInterval (default 5s).
	Progress         io.Writer
	ProgressTTY      bool
	ProgressInterval time.Duration

	// Clock is the time source; nil means the real monotonic clock. Tests
	// inject their own.
	Clock Clock
}

func (c *Config) applyDefaults() {
	if c.Conns == 0 {
		c.Conns = 100
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Size == 0 {
		c.Size = 64
	}
	if c.Mode == "" {
		c.Mode = ModeEchoBinary
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Room == "" {
		c.Room = "sockmon-load"
	}
	if c.Publishers == 0 {
		c.Publishers = 1
	}
	if c.DialConcurrency == 0 {
		c.DialConcurrency = 64
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = 5 * time.Second
	}
	if c.Clock == nil {
		c.Clock = NewClock()
	}
}

// Validate applies the defaults and reports every problem with c at once.
func (c *Config) Validate() error {
	c.applyDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("loadtest: "+format, args...)) }

	if c.URL == "" {
		bad("url is required (ws://host:port/path or wss://...)")
	} else if u, err := url.Parse(c.URL); err != nil {
		bad("url %q: %v", c.URL, err)
	} else if u.Scheme != "ws" && u.Scheme != "wss" {
		bad("url %q: scheme %q, want ws or wss", c.URL, u.Scheme)
	} else if u.Host == "" {
		bad("url %q has no host", c.URL)
	}
	if c.Conns < 1 || c.Conns > MaxConns {
		bad("conns %d, want 1..%d", c.Conns, MaxConns)
	}
	if c.Ramp < 0 {
		bad("ramp %g, want >= 0 connections per second", c.Ramp)
	}
	if c.Rate < 0 || c.Rate > MaxRate {
		bad("rate %g, want 0 (closed loop) .. %d messages per second", c.Rate, MaxRate)
	}
	if c.Duration < 0 || c.Duration > MaxDuration {
		bad("duration %v, want > 0 and <= %v", c.Duration, MaxDuration)
	}
	if c.Size < 1 || c.Size > MaxSize {
		bad("size %d, want 1..%d bytes", c.Size, MaxSize)
	}
	if c.Timeout < 0 {
		bad("timeout %v, want > 0", c.Timeout)
	}
	switch c.Mode {
	case ModeEchoBinary, ModeEchoJSON, ModeConnectOnly:
	case ModePublish:
		if c.Publishers < 1 || c.Publishers > c.Conns {
			bad("publishers %d, want 1..conns (%d)", c.Publishers, c.Conns)
		}
	default:
		bad("mode %q, want one of %s", c.Mode, joinModes())
	}
	if c.Token != "" && len(c.JWTSecret) > 0 {
		bad("token and jwt-secret are exclusive: give one")
	}
	if c.DialConcurrency < 1 {
		bad("dial concurrency %d, want >= 1", c.DialConcurrency)
	}
	if c.MetricsURL != "" {
		if u, err := url.Parse(c.MetricsURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			bad("metrics-url %q, want http(s)://host:port/metrics", c.MetricsURL)
		}
	}
	for _, a := range c.Sources {
		if !a.Is4() && !a.Is6() {
			bad("source %v is not an IP address", a)
		}
	}
	return errors.Join(errs...)
}

func joinModes() string {
	s := make([]string, len(Modes))
	for i, m := range Modes {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}

// ParseSources parses a list of source addresses: comma-separated addresses
// or inclusive IPv4 ranges such as "127.0.0.2-127.0.0.9". At most 65536
// addresses are accepted.
func ParseSources(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := netip.ParseAddr(strings.TrimSpace(lo))
		if err != nil {
			return nil, fmt.Errorf("loadtest: source %q: %v", part, err)
		}
		if !isRange {
			out = append(out, first)
			continue
		}
		last, err := netip.ParseAddr(strings.TrimSpace(hi))
		if err != nil {
			return nil, fmt.Errorf("loadtest: source range %q: %v", part, err)
		}
		if !first.Is4() || !last.Is4() || last.Less(first) {
			return nil, fmt.Errorf("loadtest: source range %q: want FIRST-LAST, IPv4, FIRST <= LAST", part)
		}
		for a := first; ; a = a.Next() {
			out = append(out, a)
			if len(out) > 65536 {
				return nil, fmt.Errorf("loadtest: sources %q: more than 65536 addresses", s)
			}
			if a == last {
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("loadtest: sources %q: no address", s)
	}
	return out, nil
}

// ParseHeader parses "Name: value" as given to --header.
func ParseHeader(h http.Header, s string) error {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") || strings.ContainsAny(value, "\r\n") {
		return fmt.Errorf("loadtest: header %q, want \"Name: value\"", s)
	}
	h.Add(name, strings.TrimSpace(value))
	return nil
}
