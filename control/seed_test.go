package control

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// Scripts written against the system sockmon replaces keep working: every
// field of its README's JSON examples (testdata/seed) is in sockmon's answer
// at the same place, with the same JSON type. sockmon's own fields may sit
// beside them; a circuit breaker map's keys are the example's upstream
// names, so only the shape of one entry is compared.
func TestSeedShapes(t *testing.T) {
	f := newFixture(t)
	f.dial("")
	for _, tc := range []struct {
		file, method, path string
		body               []byte
	}{
		{"health_get.json", "GET", PathHealth, nil},
		{"health_post.json", "POST", PathHealth, []byte(`{}`)},
		{"admin_get.json", "GET", PathAdmin, nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "seed", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			// The seed's examples elide array entries and fields with
			// /* ... */ comments; drop them so the rest parses as JSON.
			raw = regexp.MustCompile(`/\*[^*]*\*/`).ReplaceAll(raw, nil)
			var want any
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatalf("%s: %v", tc.file, err)
			}
			tok := ""
			if tc.path == PathAdmin || tc.method == "POST" {
				tok = f.token()
			}
			r := f.do(tc.method, tc.path, tok, tc.body)
			var got any
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatalf("%s %s: %d %s", tc.method, tc.path, r.status, r.body)
			}
			for _, problem := range sameShape("", want, got) {
				t.Error(problem)
			}
		})
	}
}

// sameShape lists where got lacks a field of want or has another JSON type.
func sameShape(path string, want, got any) []string {
	kind := func(v any) string { return fmt.Sprintf("%T", v) }
	if kind(want) != kind(got) {
		return []string{fmt.Sprintf("%s: %s in sockmon's answer, %s in the seed's", orRoot(path), kind(got), kind(want))}
	}
	var out []string
	switch w := want.(type) {
	case map[string]any:
		g := got.(map[string]any)
		if path == ".details.circuitBreakers" {
			return nil // keyed by upstream name; the entries' shape is BreakerHealth's
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				out = append(out, fmt.Sprintf("%s.%s: missing from sockmon's answer", path, k))
				continue
			}
			out = append(out, sameShape(path+"."+k, wv, gv)...)
		}
	case []any:
		if g := got.([]any); len(w) > 0 && len(g) > 0 {
			out = append(out, sameShape(path+"[0]", w[0], g[0])...)
		}
	}
	return out
}

func orRoot(p string) string {
	if p == "" {
		return "the answer"
	}
	return p
}
