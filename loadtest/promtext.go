package loadtest

import (
	"bufio"
	"io"
	"math"
	"strconv"
	"strings"
)

// promSamples is what a scrape needs from a Prometheus text exposition
// (format 0.0.4): per metric name, the sum of its samples over every label
// set, and per histogram the cumulative bucket counts by upper bound.
type promSamples struct {
	sums    map[string]float64
	buckets map[string]map[float64]float64 // histogram name (without _bucket) -> le -> count
}

// parsePromText reads the text format. Comment lines, blank lines and lines
// it cannot read (such as UTF-8 quoted names) are skipped: the scrape is a
// best-effort second view, never a reason to fail a run.
func parsePromText(r io.Reader) (*promSamples, error) {
	p := &promSamples{sums: map[string]float64{}, buckets: map[string]map[float64]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, labels, value, ok := parsePromLine(sc.Text())
		if !ok {
			continue
		}
		p.sums[name] += value
		if h, isBucket := strings.CutSuffix(name, "_bucket"); isBucket {
			le, ok := promLabel(labels, "le")
			if !ok {
				continue
			}
			bound, err := strconv.ParseFloat(le, 64)
			if err != nil {
				continue
			}
			if p.buckets[h] == nil {
				p.buckets[h] = map[float64]float64{}
			}
			p.buckets[h][bound] += value
		}
	}
	return p, sc.Err()
}

// parsePromLine splits one sample line into name, raw label set (without
// braces) and value; the optional timestamp is ignored.
func parsePromLine(line string) (name, labels string, value float64, ok bool) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", "", 0, false
	}
	i := 0
	for i < len(line) && isPromNameByte(line[i], i == 0) {
		i++
	}
	if i == 0 {
		return "", "", 0, false
	}
	name, rest := line[:i], line[i:]
	if strings.HasPrefix(rest, "{") {
		end, ok := promLabelsEnd(rest)
		if !ok {
			return "", "", 0, false
		}
		labels, rest = rest[1:end], rest[end+1:]
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 || len(fields) > 2 {
		return "", "", 0, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil || math.IsNaN(v) {
		return "", "", 0, false
	}
	return name, labels, v, true
}

func isPromNameByte(c byte, first bool) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9')
}

// promLabelsEnd returns the index of the '}' closing the label set that s
// starts with, skipping quoted values with escapes.
func promLabelsEnd(s string) (int, bool) {
	inQuote := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '}':
			return i, true
		}
	}
	return 0, false
}

// promLabel returns the unescaped value of label key in a raw label set.
func promLabel(labels, key string) (string, bool) {
	for labels != "" {
		labels = strings.TrimLeft(labels, " ,")
		eq := strings.IndexByte(labels, '=')
		if eq < 0 || eq+1 >= len(labels) || labels[eq+1] != '"' {
			return "", false
		}
		k := strings.TrimSpace(labels[:eq])
		var b strings.Builder
		j := eq + 2
		for ; j < len(labels) && labels[j] != '"'; j++ {
			if labels[j] == '\\' && j+1 < len(labels) {
				j++
				switch labels[j] {
				case 'n':
					b.WriteByte('\n')
				default:
					b.WriteByte(labels[j])
				}
				continue
			}
			b.WriteByte(labels[j])
		}
		if j >= len(labels) {
			return "", false
		}
		if k == key {
			return b.String(), true
		}
		labels = labels[j+1:]
	}
	return "", false
}
