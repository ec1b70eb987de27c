package upstream

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sockmon/sockmon/netcore/breaker"
)

// env is an injectable lookupEnv (Options.LookupEnv).
type env map[string]string

func (e env) lookup(name string) (string, bool) {
	v, ok := e[name]
	return v, ok
}

func TestParseFlag(t *testing.T) {
	tests := []struct {
		in       string
		name     string
		url      string
		wantErrs []string
	}{
		{in: "ai=http://127.0.0.1:9000/rpc", name: "ai", url: "http://127.0.0.1:9000/rpc"},
		{in: "db.read=https://db.internal/rpc?x=1", name: "db.read", url: "https://db.internal/rpc?x=1"},
		{in: "ai", wantErrs: []string{"want NAME=URL"}},
		{in: "=http://x", wantErrs: []string{"want NAME=URL"}},
		{in: "ai=", wantErrs: []string{"want NAME=URL"}},
		{in: "a b=ftp://x", wantErrs: []string{"name:", `scheme "ftp"`}},
		{in: "*=http://x", wantErrs: []string{"reserved"}},
		{in: "ai=http://user:pw@x/rpc", wantErrs: []string{"user info"}},
		{in: "ai=http:///rpc", wantErrs: []string{"no host"}},
		{in: "ai=127.0.0.1:9000", wantErrs: []string{"scheme"}},
	}
	for _, tt := range tests {
		sp, err := ParseFlag(tt.in)
		if len(tt.wantErrs) == 0 {
			if err != nil || sp.Name != tt.name || sp.URL != tt.url || sp.Source != "--upstream "+tt.name {
				t.Errorf("ParseFlag(%q) = %+v, %v", tt.in, sp, err)
			}
			if err := Validate([]Spec{sp}, env{}.lookup); err != nil {
				t.Errorf("ParseFlag(%q): the short form does not validate: %v", tt.in, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseFlag(%q) = %+v, want an error", tt.in, sp)
			continue
		}
		for _, w := range tt.wantErrs {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParseFlag(%q) = %v, want it to say %q", tt.in, err, w)
			}
		}
	}
}

func TestResolveDefaults(t *testing.T) {
	r, ps := resolve(Spec{Name: "ai", URL: "http://x/rpc", Fallback: []byte(`{ "a" : [1, 2] }`)}, nil)
	if len(ps) != 0 {
		t.Fatal(ps)
	}
	if r.Timeout != 10*time.Second || r.MaxConcurrent != 32 || r.MaxQueued != 128 || r.Retries != 0 || r.Critical {
		t.Errorf("defaults = %+v", r.Spec)
	}
	if string(r.Fallback) != `{"a":[1,2]}` {
		t.Errorf("fallback = %s, want it compacted", r.Fallback)
	}
}

// TestValidateReportsEveryProblem: one Validate names every bad field of
// every Spec, with its source, and never a header value.
func TestValidateReportsEveryProblem(t *testing.T) {
	const secret = "s3cr3t-value"
	specs := []Spec{
		{
			Name: "ai", URL: "ftp://x", Source: "--upstream ai",
			Timeout: -time.Second, MaxConcurrent: -1, MaxQueued: -2, Retries: 9,
			Fallback: []byte(`{nope`),
			Headers: map[string]string{
				"Authorization": "Bearer ${AI_KEY}",
				"X-Missing":     "${NOT_SET}",
				"X-Bad-Ref":     "${1X}",
				"X-Unclosed":    "${OPEN",
				"Content-Type":  "text/plain",
				"Bad Name":      "x",
				"X-Split":       "${SPLIT}",
			},
			Breaker: breaker.Config{FailureRatio: 2, OpenMax: time.Millisecond, OpenBase: time.Second},
		},
		{Name: "ai", URL: "http://y", Source: "upstreams.yaml"},
		{Name: "", URL: ""},
	}
	lookup := env{"AI_KEY": secret, "SPLIT": "a\r\nInjected: " + secret}.lookup
	err := Validate(specs, lookup)
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("Validate = %v, want a *ConfigError", err)
	}
	msg := err.Error()
	for _, w := range []string{
		`--upstream ai: upstream "ai": url: scheme "ftp"`,
		"timeout: -1s",
		"maxConcurrent: -1",
		"maxQueued: -2",
		"retries: 9",
		"fallback: not valid JSON",
		"headers.X-Missing: environment variable NOT_SET is not set",
		"headers.X-Bad-Ref: ${1X}: not an environment variable name",
		"headers.X-Unclosed: unclosed ${",
		"headers.Content-Type: header Content-Type is set by sockmon",
		`headers.Bad Name: header name "Bad Name"`,
		"headers.X-Split: environment variable SPLIT holds a control character",
		"breaker.failureRatio: 2",
		"breaker.openMax: 1ms: below OpenBase 1s",
		`upstreams.yaml: upstream "ai": defined twice (also in --upstream ai)`,
		"name: \"\": want 1 to 64",
		"url: required",
	} {
		if !strings.Contains(msg, w) {
			t.Errorf("error does not say %q:\n%s", w, msg)
		}
	}
	if strings.Contains(msg, secret) {
		t.Errorf("error shows a header value:\n%s", msg)
	}
}

func TestExpand(t *testing.T) {
	lookup := env{"KEY": "k1", "OTHER": "o2"}.lookup
	tests := []struct {
		in, want, problem string
	}{
		{"plain", "plain", ""},
		{"Bearer ${KEY}", "Bearer k1", ""},
		{"${KEY}-${OTHER}", "k1-o2", ""},
		{"cost $5 and ${KEY}", "cost $5 and k1", ""},
		{"${}", "", "not an environment variable name"},
		{"${KEY", "", "unclosed"},
		{"${NOPE}", "", "NOPE is not set"},
		{"a\nb", "", "control character"},
	}
	for _, tt := range tests {
		got, problem := expand(tt.in, lookup)
		if got != tt.want || !strings.Contains(problem, tt.problem) || (tt.problem == "") != (problem == "") {
			t.Errorf("expand(%q) = %q, %q; want %q, %q", tt.in, got, problem, tt.want, tt.problem)
		}
	}
	if _, problem := expand("${EMPTY}", env{"EMPTY": ""}.lookup); !strings.Contains(problem, "EMPTY is empty") {
		t.Errorf("empty variable: %q", problem)
	}
}

func FuzzParseFlag(f *testing.F) {
	for _, s := range []string{"ai=http://127.0.0.1:9000/rpc", "=", "a=b=c", "x=https://[::1]:80/p?q#f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseFlag(s)
		if err != nil {
			return
		}
		if err := Validate([]Spec{sp}, env{}.lookup); err != nil {
			t.Fatalf("ParseFlag(%q) accepted a spec that does not validate: %v", s, err)
		}
	})
}
