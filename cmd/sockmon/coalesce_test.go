package main

import (
	"log/slog"
	"strings"
	"testing"
)

// --write-coalescing: on by default, off for comparison, anything else
// refused with the flag's name.
func TestWriteCoalescingFlag(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		off     bool
		wantErr bool
	}{
		{nil, false, false},
		{[]string{"--write-coalescing", "on"}, false, false},
		{[]string{"--write-coalescing", "off"}, true, false},
		{[]string{"--write-coalescing", "sometimes"}, false, true},
	} {
		fs, f := newServeFlagSet()
		if err := parseWithEnv(fs, tc.args, func(string) string { return "" }); err != nil {
			t.Fatal(err)
		}
		c, _, err := f.configs(slog.New(slog.DiscardHandler), func(string) string { return "" })
		if tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), "--write-coalescing") {
				t.Errorf("%v: error %v, want one naming --write-coalescing", tc.args, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if c.DisableWriteCoalescing != tc.off {
			t.Errorf("%v: DisableWriteCoalescing %v, want %v", tc.args, c.DisableWriteCoalescing, tc.off)
		}
		if c.Metrics != nil {
			c.Metrics.Close()
		}
	}
}
