package main

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/sockmon/sockmon/netcore"
)

// The engine's on|off switches: their default (on), either value, and
// anything else refused with the flag's name.
func TestOnOffFlags(t *testing.T) {
	for _, sw := range []struct {
		flag string
		off  func(netcore.Config) bool
	}{
		{"--write-coalescing", func(c netcore.Config) bool { return c.DisableWriteCoalescing }},
		{"--poller-serve", func(c netcore.Config) bool { return c.DisablePollerServe }},
		{"--poller-rescue", func(c netcore.Config) bool { return c.DisablePollerRescue }},
	} {
		for _, tc := range []struct {
			args    []string
			off     bool
			wantErr bool
		}{
			{nil, false, false},
			{[]string{sw.flag, "on"}, false, false},
			{[]string{sw.flag, "off"}, true, false},
			{[]string{sw.flag, "sometimes"}, false, true},
		} {
			fs, f := newServeFlagSet()
			if err := parseWithEnv(fs, tc.args, func(string) string { return "" }); err != nil {
				t.Fatal(err)
			}
			c, _, err := f.configs(slog.New(slog.DiscardHandler), func(string) string { return "" })
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), sw.flag) {
					t.Errorf("%v: error %v, want one naming %s", tc.args, err, sw.flag)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%v: %v", tc.args, err)
			}
			if got := sw.off(c); got != tc.off {
				t.Errorf("%v: %s off = %v, want %v", tc.args, sw.flag, got, tc.off)
			}
			if c.Metrics != nil {
				c.Metrics.Close()
			}
		}
	}
}
