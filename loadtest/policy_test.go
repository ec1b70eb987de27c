package loadtest

import (
	"bytes"
	"strings"
	"testing"
)

// The server's refusals and closes by policy, read from the error classes:
// a warning in words when it rate-limits this client, and ExitRefused when
// most connections were refused or closed by policy, whatever the SLOs say.
func TestPolicyWarningsAndExitStatus(t *testing.T) {
	tests := []struct {
		name     string
		byClass  map[string]int64
		warn     []string // substrings of the rate-limiting warning; nil for none
		refused  bool
		wantExit int
	}{
		{"clean", map[string]int64{ErrClassTimeout: 5}, nil, false, ExitOK},
		{"a few 429s", map[string]int64{"handshake_429": 10}, []string{"10 upgrades refused with 429", "--message-rate 0 --conn-rate 0", "--sources"}, false, ExitOK},
		{"most refused with 429", map[string]int64{"handshake_429": 51}, []string{"51 upgrades refused with 429"}, true, ExitRefused},
		{"rate_limited replies only", map[string]int64{"server_error_rate_limited": 700}, []string{"700 messages answered rate_limited"}, false, ExitOK},
		{"most closed with 1008", map[string]int64{"server_error_rate_limited": 5000, "close_1008": 60},
			[]string{"5000 messages answered rate_limited", "60 connections closed with 1008"}, true, ExitRefused},
		{"refused and closed, half each", map[string]int64{"handshake_429": 25, "close_1008": 26}, []string{"25 upgrades", "26 connections"}, true, ExitRefused},
		{"most refused with 503 (maintenance)", map[string]int64{"handshake_503": 100}, nil, true, ExitRefused},
		{"TLS failures are not refusals", map[string]int64{"handshake_tls": 100, "dial": 100}, nil, false, ExitOK},
	}
	for _, tt := range tests {
		rep := sampleReport() // 100 attempted, SLOs not evaluated (all pass)
		rep.Errors.ByClass = tt.byClass
		rep.Warnings = rep.policyWarnings()
		warning := countPolicy(tt.byClass).warning()
		if tt.warn == nil && warning != "" {
			t.Errorf("%s: warning %q, want none", tt.name, warning)
		}
		for _, w := range tt.warn {
			if !strings.Contains(warning, w) || !strings.HasPrefix(warning, "the server is rate-limiting this client") {
				t.Errorf("%s: warning %q, want it to say %q", tt.name, warning, w)
			}
		}
		if got := rep.RefusedByPolicy(); got != tt.refused {
			t.Errorf("%s: RefusedByPolicy %v, want %v", tt.name, got, tt.refused)
		}
		if got := rep.ExitCode(); got != tt.wantExit {
			t.Errorf("%s: exit %d, want %d", tt.name, got, tt.wantExit)
		}
		var text bytes.Buffer
		if err := rep.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		if tt.warn != nil && !strings.Contains(text.String(), "warning: "+warning+"\n") {
			t.Errorf("%s: the text report does not carry the warning:\n%s", tt.name, text.String())
		}
		if tt.refused && !strings.Contains(text.String(), "refused at the upgrade or closed by the server's policy (1008): exit status 3") {
			t.Errorf("%s: the text report does not say why the exit status is 3:\n%s", tt.name, text.String())
		}
	}
	// An interrupted run still exits 130; a refused one with a failing SLO
	// exits 3 (the SLO measured the server's limits, not its capacity).
	rep := sampleReport()
	rep.Errors.ByClass = map[string]int64{"handshake_429": 90}
	slos, _ := ParseSLOs([]string{"p99<1ms"})
	if rep.EvaluateSLOs(slos); rep.ExitCode() != ExitRefused {
		t.Errorf("refused with a failing SLO: exit %d, want %d", rep.ExitCode(), ExitRefused)
	}
	rep.Interrupted = true
	if rep.ExitCode() != ExitInterrupted {
		t.Errorf("interrupted: exit %d, want %d", rep.ExitCode(), ExitInterrupted)
	}
}
