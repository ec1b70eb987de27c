package check

import "testing"

func TestWorst(t *testing.T) {
	for _, tc := range []struct{ a, b, want State }{
		{OK, OK, OK},
		{OK, Unknown, Unknown},
		{Unknown, Warning, Warning},
		{Warning, Critical, Critical},
		{Critical, Unknown, Critical},
		{Warning, Unknown, Warning},
	} {
		if got := Worst(tc.a, tc.b); got != tc.want {
			t.Errorf("Worst(%s, %s) = %s, want %s", tc.a, tc.b, got, tc.want)
		}
		if got := Worst(tc.b, tc.a); got != tc.want {
			t.Errorf("Worst(%s, %s) = %s, want %s", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestParseState(t *testing.T) {
	for in, want := range map[string]State{"ok": OK, "WARNING": Warning, "Critical": Critical, "unknown": Unknown} {
		if got, err := ParseState(in); err != nil || got != want {
			t.Errorf("ParseState(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	if _, err := ParseState("warn"); err == nil {
		t.Error(`ParseState("warn") succeeded`)
	}
	if int(OK) != 0 || int(Warning) != 1 || int(Critical) != 2 || int(Unknown) != 3 {
		t.Error("states are not the plugin exit codes 0-3")
	}
}

func TestDefaultStatusState(t *testing.T) {
	for status, want := range map[string]State{StatusHealthy: OK, StatusDegraded: Warning, StatusMaintenance: Warning,
		StatusDraining: Warning, StatusUnhealthy: Critical, "exploded": Unknown} {
		if got := DefaultStatusState(status); got != want {
			t.Errorf("DefaultStatusState(%q) = %s, want %s", status, got, want)
		}
	}
}
