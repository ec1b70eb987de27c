package control

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/protocol"
)

func mustPrefixes(t testing.TB, cidrs ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// Every configuration error is reported at once.
func TestConfigErrorsAllAtOnce(t *testing.T) {
	_, err := New(Config{
		DataDir:           t.TempDir(),
		AdminSecret:       []byte("short"),
		MaxBodyBytes:      10,
		ReadTimeout:       -time.Second,
		DegradedErrorRate: 2,
		AuthFailures:      -1,
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"engine", "protocol", "admin secret is 5 bytes", "max body bytes", "read timeout", "degraded error rate", "auth failures"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	eng, proto := newEngine(t, netcore.Config{}, protocol.Config{})
	same := []byte(strings.Repeat("s", 40))
	_, err = New(Config{DataDir: t.TempDir(), Engine: eng, Protocol: proto, AdminSecret: same, ClientSecret: same})
	if err == nil || !strings.Contains(err.Error(), "equals the client") {
		t.Fatalf("admin secret = client secret: %v", err)
	}
}

// Zero fields take the defaults.
func TestConfigDefaults(t *testing.T) {
	eng, proto := newEngine(t, netcore.Config{}, protocol.Config{})
	s, err := New(Config{DataDir: t.TempDir(), Engine: eng, Protocol: proto, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	c := s.Config()
	if c.Addr != DefaultAddr || c.MaxBodyBytes != 1<<20 || c.DegradedErrorRate != 0.1 || c.AuthFailures != DefaultAuthFailures ||
		c.AuditMaxEntries != DefaultAuditMaxEntries || c.LivenessTimeout < DefaultMinLivenessTimeout || c.ReadTimeout != DefaultReadTimeout {
		t.Fatalf("defaults not filled: %+v", c)
	}
}
