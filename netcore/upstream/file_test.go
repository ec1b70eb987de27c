package upstream

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockmon/sockmon/netcore/breaker"
)

const goodYAML = `# upstreams of the test
upstreams:
  ai:
    url: http://127.0.0.1:9000/rpc
    timeout: 5s
    maxConcurrent: 8
    maxQueued: 16
    retries: 1
    critical: true
    fallback:
      text: The assistant is unavailable.
      codes: [1, 2]
    headers:
      Authorization: Bearer ${AI_API_KEY}
    breaker:
      window: 30s
      buckets: 30
      minCalls: 10
      failureRatio: 0.25
      consecutiveFailures: 3
      openBase: 2s
      openMax: 1m
      jitter: 0.1
      halfOpenProbes: 2
      successStreak: 5
  db:
    url: https://db.internal/rpc
`

const goodJSON = `{
  "upstreams": {
    "db": {"url": "https://db.internal/rpc"},
    "ai": {
      "url": "http://127.0.0.1:9000/rpc",
      "timeout": "5s", "maxConcurrent": 8, "maxQueued": 16, "retries": 1, "critical": true,
      "fallback": {"text": "The assistant is unavailable.", "codes": [1, 2]},
      "headers": {"Authorization": "Bearer ${AI_API_KEY}"},
      "breaker": {"window": "30s", "buckets": 30, "minCalls": 10, "failureRatio": 0.25,
                  "consecutiveFailures": 3, "openBase": "2s", "openMax": "1m", "jitter": 0.1,
                  "halfOpenProbes": 2, "successStreak": 5}
    }
  }
}`

func TestParseFileGood(t *testing.T) {
	for name, src := range map[string]string{"upstreams.yaml": goodYAML, "upstreams.json": goodJSON} {
		t.Run(name, func(t *testing.T) {
			specs, err := ParseFile(name, []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if len(specs) != 2 || specs[0].Name != "ai" || specs[1].Name != "db" {
				t.Fatalf("specs = %+v", specs)
			}
			ai := specs[0]
			want := Spec{
				Name: "ai", URL: "http://127.0.0.1:9000/rpc", Timeout: 5 * time.Second,
				MaxConcurrent: 8, MaxQueued: 16, Retries: 1, Critical: true,
				Headers: map[string]string{"Authorization": "Bearer ${AI_API_KEY}"},
				Breaker: breaker.Config{Window: 30 * time.Second, Buckets: 30, MinCalls: 10, FailureRatio: 0.25,
					ConsecutiveFailures: 3, OpenBase: 2 * time.Second, OpenMax: time.Minute, Jitter: 0.1,
					HalfOpenProbes: 2, SuccessStreak: 5},
				Source: name,
			}
			got := ai
			got.Fallback, got.lines = nil, nil
			if !sameSpec(resolved{Spec: got}, resolved{Spec: want}) || got.Source != name {
				t.Errorf("ai =\n%+v\nwant\n%+v", got, want)
			}
			r, ps := resolve(ai, nil)
			if len(ps) != 0 || string(r.Fallback) != `{"text":"The assistant is unavailable.","codes":[1,2]}` {
				t.Errorf("fallback = %s, %v", r.Fallback, ps)
			}
			if err := Validate(specs, env{"AI_API_KEY": "k"}.lookup); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestParseFileBad(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"unknown field", "upstreams:\n  ai:\n    url: http://x\n    tmeout: 5s\n",
			[]string{`u.yaml:4:5: unknown field "tmeout"`}},
		{"unknown top-level key", "upstream:\n  ai:\n    url: http://x\n",
			[]string{`u.yaml:1:1: unknown field "upstream"`}},
		{"unknown breaker field", "upstreams:\n  ai:\n    url: http://x\n    breaker:\n      ratio: 0.5\n",
			[]string{`u.yaml:5:7: unknown field "ratio"`}},
		{"wrong type", "upstreams:\n  ai:\n    url: http://x\n    maxQueued: lots\n",
			[]string{"u.yaml:4:", "maxQueued", "lots"}},
		{"syntax", "upstreams:\n  ai:\n    url: [\n", []string{"u.yaml:3:"}},
		{"duplicate upstream", "upstreams:\n  ai:\n    url: http://x\n  ai:\n    url: http://y\n",
			[]string{`u.yaml:4:3:`, `"ai" already defined`}},
		{"json unknown field", `{"upstreams": {"ai": {"url": "http://x", "bogus": 1}}}`,
			[]string{`u.yaml:1:`, `unknown field "bogus"`}},
		{"bad values, every one with its line",
			"upstreams:\n" +
				"  ai:\n" +
				"    url: ftp://x\n" + // 3
				"    timeout: five\n" + // 4
				"    retries: 7\n" + // 5
				"    headers:\n" +
				"      Host: x\n" + // 7
				"    breaker:\n" +
				"      openMax: 1ms\n" + // 9
				"      failureRatio: 3\n" + // 10
				"  b:\n" + // 11
				"  c d:\n" + // 12
				"    url: http://x\n",
			[]string{
				`u.yaml:3: upstream "ai": url: scheme "ftp"`,
				`u.yaml:4: upstream "ai": timeout: "five": want a duration`,
				`u.yaml:5: upstream "ai": retries: 7`,
				`u.yaml:7: upstream "ai": headers.Host: header Host is set by sockmon`,
				`u.yaml:9: upstream "ai": breaker.openMax: 1ms`,
				`u.yaml:10: upstream "ai": breaker.failureRatio: 3`,
				`u.yaml:11: upstream "b": empty`,
				`u.yaml:12: upstream "c d": name:`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, err := ParseFile("u.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("ParseFile = %+v, want an error", specs)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestParseFileEmpty(t *testing.T) {
	for _, src := range []string{"", "# nothing\n", "upstreams:\n", "upstreams: {}\n"} {
		specs, err := ParseFile("u.yaml", []byte(src))
		if err != nil || len(specs) != 0 {
			t.Errorf("ParseFile(%q) = %v, %v; want no upstreams", src, specs, err)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "upstreams.yaml")
	if err := os.WriteFile(path, []byte(goodYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	specs, err := LoadFile(path)
	if err != nil || len(specs) != 2 || specs[0].Source != "upstreams.yaml" {
		t.Fatalf("LoadFile = %+v, %v", specs, err)
	}
	// A problem found at Reload time (an unset variable) names the line.
	err = Validate(specs, env{}.lookup)
	if err == nil || !strings.Contains(err.Error(), `upstreams.yaml:14: upstream "ai": headers.Authorization: environment variable AI_API_KEY is not set`) {
		t.Errorf("Validate = %v", err)
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// FuzzParseFile: no input panics, and what parses validates the same way
// again.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte(goodYAML))
	f.Add([]byte(goodJSON))
	f.Add([]byte("upstreams:\n  ai:\n    url: http://x\n    tmeout: 5s\n"))
	f.Add([]byte("upstreams: {a: {url: 'http://x', breaker: {window: 1h}}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		specs, err := ParseFile("f.yaml", data)
		if err != nil {
			return
		}
		for _, sp := range specs {
			if _, ps := resolve(sp, nil); len(ps) != 0 {
				t.Fatalf("ParseFile accepted %q with problems %v", sp.Name, ps)
			}
		}
	})
}
