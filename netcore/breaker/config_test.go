package breaker

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Window != 10*time.Second || c.Buckets != 10 || c.MinCalls != 20 || c.FailureRatio != 0.5 ||
		c.ConsecutiveFailures != 5 || c.OpenBase != 5*time.Second || c.OpenMax != 60*time.Second ||
		c.Jitter != 0.2 || c.HalfOpenProbes != 1 || c.SuccessStreak != 10 || c.Now == nil || c.Rand == nil {
		t.Errorf("defaults = %+v", c)
	}
	c, err = Config{OpenBase: 2 * time.Minute}.withDefaults()
	if err != nil || c.OpenMax != 2*time.Minute {
		t.Errorf("OpenBase 2m: OpenMax = %v, err %v; want the default max raised to the base", c.OpenMax, err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	bad := Config{
		Window:              -time.Second,
		Buckets:             2000,
		MinCalls:            -1,
		FailureRatio:        1.5,
		ConsecutiveFailures: -3,
		OpenBase:            time.Microsecond,
		OpenMax:             -time.Second,
		Jitter:              1,
		HalfOpenProbes:      -1,
		SuccessStreak:       -1,
	}
	err := bad.Validate()
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("Validate = %v, want a *ConfigError", err)
	}
	want := []string{"Window", "Buckets", "MinCalls", "ConsecutiveFailures", "HalfOpenProbes", "SuccessStreak",
		"FailureRatio", "OpenBase", "OpenMax", "Jitter"}
	got := map[string]bool{}
	for _, p := range ce.Problems {
		got[p.Field] = true
	}
	for _, f := range want {
		if !got[f] {
			t.Errorf("no problem reported for %s; got %v", f, ce.Problems)
		}
	}
	if _, err := New("x", bad); !errors.As(err, &ce) {
		t.Errorf("New = %v, want the same *ConfigError", err)
	}

	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"NaN ratio", Config{FailureRatio: math.NaN()}},
		{"slices under 1ms", Config{Window: 10 * time.Millisecond, Buckets: 100}},
		{"max below base", Config{OpenBase: 10 * time.Second, OpenMax: 5 * time.Second}},
	} {
		if err := tc.cfg.Validate(); err == nil {
			t.Errorf("%s: Validate = nil, want an error", tc.name)
		}
	}
	if err := (Config{Window: time.Second, Buckets: 4, OpenBase: time.Second, OpenMax: time.Second}).Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}
