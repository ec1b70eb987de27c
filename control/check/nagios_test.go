package check

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// perfItem is one perfdata item, label=value[UOM];warn;crit;min;max.
type perfItem struct {
	label, value, uom, warn, crit, min, max string
}

var (
	perfValue = regexp.MustCompile(`^(U|-?[0-9.]+)(s|ms|us|%|B|KB|MB|TB|c)?$`)
	perfNum   = regexp.MustCompile(`^-?[0-9.]*$`)
	perfRange = regexp.MustCompile(`^@?((~|-?[0-9.]+)?:)?(-?[0-9.]+)?$`)
)

// parsePerfdata reads perfdata as the Monitoring Plugins development guidelines defines it, strictly.
func parsePerfdata(s string) ([]perfItem, error) {
	var items []perfItem
	s = strings.TrimSpace(s)
	for s != "" {
		var label string
		if strings.HasPrefix(s, "'") {
			end := 1
			for {
				i := strings.IndexByte(s[end:], '\'')
				if i < 0 {
					return nil, fmt.Errorf("unterminated quoted label in %q", s)
				}
				end += i
				if strings.HasPrefix(s[end:], "''") {
					end += 2
					continue
				}
				break
			}
			label, s = strings.ReplaceAll(s[1:end], "''", "'"), s[end+1:]
		} else {
			i := strings.IndexByte(s, '=')
			if i <= 0 {
				return nil, fmt.Errorf("no label= in %q", s)
			}
			label, s = s[:i], s[i:]
		}
		if !strings.HasPrefix(s, "=") {
			return nil, fmt.Errorf("label %q not followed by =", label)
		}
		item, rest, _ := strings.Cut(s[1:], " ")
		s = strings.TrimLeft(rest, " ")
		if strings.ContainsAny(label, "='") && !strings.Contains(label, "'") {
			return nil, fmt.Errorf("label %q has =", label)
		}
		f := strings.Split(item, ";")
		if len(f) > 5 {
			return nil, fmt.Errorf("%s: %d fields", label, len(f))
		}
		f = append(f, make([]string, 5-len(f))...)
		m := perfValue.FindStringSubmatch(f[0])
		if m == nil {
			return nil, fmt.Errorf("%s: value %q", label, f[0])
		}
		for _, r := range f[1:3] {
			if !perfRange.MatchString(r) {
				return nil, fmt.Errorf("%s: threshold %q is not a range", label, r)
			}
		}
		for _, n := range f[3:5] {
			if !perfNum.MatchString(n) {
				return nil, fmt.Errorf("%s: min/max %q", label, n)
			}
		}
		items = append(items, perfItem{label: label, value: m[1], uom: m[2], warn: f[1], crit: f[2], min: f[3], max: f[4]})
	}
	return items, nil
}

func TestParsePerfdataRejects(t *testing.T) {
	for _, s := range []string{"x=abc", "=1", "x=1;a", "x=1zz", "x=1;1;1;1;1;1", "'x=1"} {
		if _, err := parsePerfdata(s); err == nil {
			t.Errorf("parsePerfdata(%q) accepted it", s)
		}
	}
	items, err := parsePerfdata("'a b'=1ms;1000;5000;0; c=U;;;; 'it''s'=2%;~:5;@1:2;0;100")
	if err != nil || len(items) != 3 || items[0].label != "a b" || items[2].label != "it's" || items[1].value != "U" || items[2].warn != "~:5" {
		t.Errorf("parsePerfdata: %+v %v", items, err)
	}
}

// nagiosOutput splits plugin output into the first line's text and
// perfdata, the long-output lines, and the second perfdata part.
func nagiosOutput(t *testing.T, out string) (text, perf string, long []string, perf2 string) {
	t.Helper()
	if !strings.HasSuffix(out, "\n") {
		t.Fatalf("output does not end with a newline: %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	text, perf, _ = strings.Cut(lines[0], " | ")
	for i, l := range lines[1:] {
		if p, ok := strings.CutPrefix(l, "| "); ok {
			if i != len(lines)-2 {
				t.Fatalf("second perfdata part is not last: %q", out)
			}
			perf2 = p
			break
		}
		long = append(long, l)
	}
	return text, perf, long, perf2
}

func TestNagiosFormat(t *testing.T) {
	for name, r := range fixtures() {
		var all [4][]perfItem
		for v := 0; v <= 3; v++ {
			var b bytes.Buffer
			if err := WriteNagios(&b, r, v); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			text, perf, long, perf2 := nagiosOutput(t, out)
			if want := "SOCKMON " + r.State.String() + " - "; !strings.HasPrefix(text, want) {
				t.Errorf("%s -v%d: status line %q, want it to start with %q", name, v, text, want)
			}
			if strings.Contains(text, "|") || slices.ContainsFunc(long, func(l string) bool { return strings.Contains(l, "|") }) {
				t.Errorf("%s -v%d: a | in the text:\n%s", name, v, out)
			}
			if v == 0 && len(text) > statusLineLimit && len(r.Problems) == 0 {
				t.Errorf("%s: status line of %d chars with no problem to excuse it: %q", name, len(text), text)
			}
			if v < 2 && strings.Count(out, "\n") != 1 {
				t.Errorf("%s -v%d: %d lines, want 1:\n%s", name, v, strings.Count(out, "\n"), out)
			}
			if v >= 2 && (len(long) == 0 || perf2 == "") {
				t.Errorf("%s -v%d: no long output or second perfdata:\n%s", name, v, out)
			}
			if v == 3 && !strings.Contains(out, "\nconfig: timeout 10s") {
				t.Errorf("%s -v3: no configuration line:\n%s", name, out)
			}
			items, err := parsePerfdata(perf)
			if err != nil {
				t.Fatalf("%s -v%d: perfdata %q: %v", name, v, perf, err)
			}
			items2, err := parsePerfdata(perf2)
			if err != nil {
				t.Fatalf("%s -v%d: second perfdata %q: %v", name, v, perf2, err)
			}
			all[v] = append(items, items2...)
			seen := map[string]bool{}
			for _, it := range all[v] {
				key := it.label[:min(19, len(it.label))]
				if seen[key] {
					t.Errorf("%s -v%d: label %q not unique in its first 19 characters", name, v, it.label)
				}
				seen[key] = true
			}
			if items[0].label != "response_time" || items[0].warn != r.Measures[0].Warning.String() {
				t.Errorf("%s -v%d: first perfdata item %+v", name, v, items[0])
			}
		}
		// The verbosity moves perfdata between the parts, never drops it.
		for v := 1; v <= 3; v++ {
			if !slices.Equal(all[v], all[0]) {
				t.Errorf("%s: perfdata at -v%d differs from -v0:\n%+v\n%+v", name, v, all[v], all[0])
			}
		}
	}
}

func TestNagiosGolden(t *testing.T) {
	f := fixtures()
	for name, want := range map[string]string{
		"healthy": "SOCKMON OK - healthy, 150 connections, p99 1.1ms, health 4.2ms | response_time=4.2ms;1000;5000;0; connections=150;@10;;0; " +
			"error_rate=0.2%;;;0;100 p99_latency=1.1ms;;;0; authenticated=120;;;0; anonymous=30;;;0; avg_latency=0.2ms;;;0; p95_latency=0.6ms;;;0; " +
			"messages_per_minute=90000;;;0; uptime=60s;;;0; server_time=0.4ms;;;0;\n",
		"down": "SOCKMON CRITICAL - cannot reach http://n1:8081/api/health/socket: connect: connection refused | response_time=U;1000;5000;0; " +
			"connections=U;@10;;0; error_rate=U;;;0;100 p99_latency=U;;;0; authenticated=U;;;0; anonymous=U;;;0; avg_latency=U;;;0; " +
			"p95_latency=U;;;0; messages_per_minute=U;;;0; uptime=U;;;0; server_time=U;;;0;\n",
		"maintenance refusing the canary": "SOCKMON WARNING - maintenance; 150 connections, p99 1.1ms, health 2ms | response_time=2ms;1000;5000;0; " +
			"connections=150;@10;;0; error_rate=0.2%;;;0;100 p99_latency=1.1ms;;;0; authenticated=120;;;0; anonymous=30;;;0; avg_latency=0.2ms;;;0; " +
			"p95_latency=0.6ms;;;0; messages_per_minute=90000;;;0; uptime=60s;;;0; server_time=0.4ms;;;0; canary_connect=U;;;0; canary_echo=U;;;0; " +
			"canary_ping=U;;;0; canary_close=U;;;0; canary_total=U;;;0;\n",
		"timed out in the canary": "SOCKMON UNKNOWN - canary: no echo reply within the 10s timeout; healthy | ",
	} {
		var b bytes.Buffer
		_ = WriteNagios(&b, f[name], 0)
		if got := b.String(); got != want && !(strings.HasSuffix(want, " | ") && strings.HasPrefix(got, want)) {
			t.Errorf("%s:\n got %q\nwant %q", name, got, want)
		}
	}
}
