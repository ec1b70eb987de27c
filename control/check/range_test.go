package check

import (
	"errors"
	"math"
	"testing"
)

func TestParseRange(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		in   string
		want Range
		str  string
	}{
		{"10", Range{0, 10, false}, "10"},
		{"10:", Range{10, inf, false}, "10:"},
		{"~:10", Range{math.Inf(-1), 10, false}, "~:10"},
		{"10:20", Range{10, 20, false}, "10:20"},
		{"@10:20", Range{10, 20, true}, "@10:20"},
		{"@10", Range{0, 10, true}, "@10"},
		{":10", Range{0, 10, false}, "10"},
		{"0:", Range{0, inf, false}, "0:"},
		{"~:", Range{math.Inf(-1), inf, false}, "~:"},
		{"-5:-1", Range{-5, -1, false}, "-5:-1"},
		{"0.5:2.25", Range{0.5, 2.25, false}, "0.5:2.25"},
		{"0.12345", Range{0, 0.12345, false}, "0.12345"},
		{" 1000 ", Range{0, 1000, false}, "1000"},
	} {
		got, err := ParseRange(tc.in)
		if err != nil {
			t.Errorf("ParseRange(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseRange(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if s := got.String(); s != tc.str {
			t.Errorf("ParseRange(%q).String() = %q, want %q", tc.in, s, tc.str)
		}
	}
}

func TestParseRangeRejects(t *testing.T) {
	for _, in := range []string{"", "@", "~", "abc", "10:abc", "20:10", "1e3", "Inf", "NaN", "1.2.3", "10:20:30", "--1", "0x10", "@~"} {
		if r, err := ParseRange(in); err == nil || !errors.Is(err, ErrRange) {
			t.Errorf("ParseRange(%q) = %+v, %v; want an ErrRange", in, r, err)
		}
	}
}

// The examples of the Monitoring Plugins development guidelines, value by value.
func TestRangeAlert(t *testing.T) {
	for _, tc := range []struct {
		rng    string
		alerts []float64
		passes []float64
	}{
		{"10", []float64{-1, -0.001, 10.001, 11}, []float64{0, 5, 10}},
		{"10:", []float64{-1, 9.999}, []float64{10, 11, 1e9}},
		{"~:10", []float64{10.001, 11}, []float64{-1e9, 0, 10}},
		{"10:20", []float64{9, 21}, []float64{10, 15, 20}},
		{"@10:20", []float64{10, 15, 20}, []float64{9, 21}},
		{"0", []float64{-1, 1}, []float64{0}},
	} {
		r := MustParseRange(tc.rng)
		for _, x := range tc.alerts {
			if !r.Alert(x) {
				t.Errorf("range %s: %v should alert", tc.rng, x)
			}
		}
		for _, x := range tc.passes {
			if r.Alert(x) {
				t.Errorf("range %s: %v should not alert", tc.rng, x)
			}
		}
	}
}

func TestThresholdsState(t *testing.T) {
	w, c := MustParseRange("100"), MustParseRange("200")
	for _, tc := range []struct {
		t    Thresholds
		x    float64
		want State
	}{
		{Thresholds{}, 1e9, OK},
		{Thresholds{Warning: &w, Critical: &c}, 50, OK},
		{Thresholds{Warning: &w, Critical: &c}, 150, Warning},
		{Thresholds{Warning: &w, Critical: &c}, 250, Critical},
		{Thresholds{Critical: &c}, 150, OK},
		{Thresholds{Warning: &w}, 250, Warning},
	} {
		if got := tc.t.State(tc.x); got != tc.want {
			t.Errorf("%+v.State(%v) = %s, want %s", tc.t, tc.x, got, tc.want)
		}
	}
}

func TestRangeViolation(t *testing.T) {
	for _, tc := range []struct {
		rng  string
		x    float64
		want string
	}{
		{"1000", 1200, "> 1000"},
		{"10:", 3, "< 10"},
		{"@10:20", 15, "in @10:20"},
	} {
		if got := MustParseRange(tc.rng).violation(tc.x); got != tc.want {
			t.Errorf("range %s, %v: %q, want %q", tc.rng, tc.x, got, tc.want)
		}
	}
}

// Whatever parses prints back to a range that parses to the same value.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"10", "10:", "~:10", "10:20", "@10:20", ":5", "-1.5:2", "~:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			return
		}
		back, err := ParseRange(r.String())
		if err != nil {
			t.Fatalf("ParseRange(%q).String() = %q does not parse: %v", s, r.String(), err)
		}
		if back != r {
			t.Fatalf("round trip of %q: %+v, then %+v", s, r, back)
		}
	})
}

func TestFormatNumber(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 1000: "1000", 12.3456: "12.346", 0.1: "0.1", -0.0001: "0", 1e9: "1000000000", -2.5: "-2.5"} {
		if got := formatNumber(v); got != want {
			t.Errorf("formatNumber(%v) = %q, want %q", v, got, want)
		}
	}
}
