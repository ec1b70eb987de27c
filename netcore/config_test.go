package netcore

import (
	"strings"
	"testing"
	"time"
)

// Zero fields take the defaults; negative timers stay off.
func TestConfigDefaults(t *testing.T) {
	c := Config{IdleTimeout: -1, PingInterval: -1}
	c.setDefaults()
	if c.Addr != DefaultAddr || c.MaxConns != DefaultMaxConns || c.MaxMessageSize != DefaultMaxMessageSize ||
		c.HandshakeTimeout != DefaultHandshakeTimeout || c.DrainDelay != DefaultDrainDelay || c.Logger == nil {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if c.IdleTimeout != -1 || c.PingInterval != -1 {
		t.Fatalf("negative (off) timers changed: idle %v ping %v", c.IdleTimeout, c.PingInterval)
	}
	if err := c.validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

// Every configuration error is reported at once, naming the flag.
func TestConfigValidateReportsEveryError(t *testing.T) {
	c := Config{
		MaxConns:         -1,
		MaxHeaderBytes:   100,
		HandshakeTimeout: -time.Second,
		PingInterval:     time.Minute,
		IdleTimeout:      time.Second,
		DrainDelay:       time.Minute,
		ShutdownTimeout:  time.Second,
	}
	c.setDefaults()
	err := c.validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"max-conns", "max-header-bytes", "handshake-timeout", "idle-timeout", "drain-delay"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	if _, err := New(c); err == nil {
		t.Fatal("New accepted a bad Config")
	}
}
