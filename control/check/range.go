package check

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrRange is wrapped by every error ParseRange returns.
var ErrRange = errors.New("check: bad range")

// Range is a Monitoring Plugins threshold range (the Monitoring Plugins development guidelines):
// [@]start:end, inclusive at both ends. A value alerts when it lies outside
// [Start, End], or inside it when Inside is set (the leading "@"). Start
// may be -Inf ("~") and End +Inf ("start:"). The zero Range is "0", which
// alerts on any value other than 0.
type Range struct {
	Start, End float64
	Inside     bool
}

// ParseRange parses the range syntax of the Monitoring Plugins guidelines:
//
//	10      alert if x < 0 or x > 10
//	10:     alert if x < 10
//	~:10    alert if x > 10
//	10:20   alert if x < 10 or x > 20
//	@10:20  alert if 10 <= x <= 20
//
// Numbers are plain decimals (digits, one ".", an optional sign); start
// must not exceed end.
func ParseRange(s string) (Range, error) {
	r := Range{End: math.Inf(1)}
	rest := strings.TrimSpace(s)
	if rest == "" {
		return r, fmt.Errorf("%w: empty", ErrRange)
	}
	if strings.HasPrefix(rest, "@") {
		r.Inside = true
		rest = rest[1:]
	}
	start, end, hasColon := strings.Cut(rest, ":")
	if !hasColon {
		start, end = "", rest
	}
	switch start {
	case "":
		r.Start = 0
	case "~":
		r.Start = math.Inf(-1)
	default:
		v, err := parseNumber(start)
		if err != nil {
			return r, fmt.Errorf("%w %q: start %v", ErrRange, s, err)
		}
		r.Start = v
	}
	if end == "" {
		if !hasColon {
			return r, fmt.Errorf("%w %q: no end", ErrRange, s)
		}
	} else {
		v, err := parseNumber(end)
		if err != nil {
			return r, fmt.Errorf("%w %q: end %v", ErrRange, s, err)
		}
		r.End = v
	}
	if r.Start > r.End {
		return r, fmt.Errorf("%w %q: start %s is above end %s", ErrRange, s, exactNumber(r.Start), exactNumber(r.End))
	}
	return r, nil
}

// MustParseRange is ParseRange for constants; it panics on a bad range.
func MustParseRange(s string) Range {
	r, err := ParseRange(s)
	if err != nil {
		panic(err)
	}
	return r
}

func parseNumber(s string) (float64, error) {
	if s == "" || strings.Trim(s, "+-0123456789.") != "" {
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	return v, nil
}

// Alert reports whether x raises the threshold r stands for.
func (r Range) Alert(x float64) bool {
	in := x >= r.Start && x <= r.End
	if r.Inside {
		return in
	}
	return !in
}

// String is the range in its shortest form ("10", "10:", "~:10",
// "@10:20"); ParseRange(r.String()) == r.
func (r Range) String() string {
	var b strings.Builder
	if r.Inside {
		b.WriteByte('@')
	}
	switch {
	case math.IsInf(r.Start, -1):
		b.WriteString("~:")
	case r.Start != 0 || math.IsInf(r.End, 1):
		b.WriteString(exactNumber(r.Start))
		b.WriteByte(':')
	}
	if !math.IsInf(r.End, 1) {
		b.WriteString(exactNumber(r.End))
	}
	return b.String()
}

// violation says how x breaks r, for problem texts: "> 1000", "< 10",
// "in @10:20".
func (r Range) violation(x float64) string {
	switch {
	case r.Inside:
		return "in " + r.String()
	case x > r.End:
		return "> " + exactNumber(r.End)
	default:
		return "< " + exactNumber(r.Start)
	}
}

// Thresholds are the warning and critical ranges of one measure; a nil
// range is not checked.
type Thresholds struct {
	Warning, Critical *Range
}

// State is Critical when x alerts on the critical range, else Warning when
// it alerts on the warning range, else OK.
func (t Thresholds) State(x float64) State {
	switch {
	case t.Critical != nil && t.Critical.Alert(x):
		return Critical
	case t.Warning != nil && t.Warning.Alert(x):
		return Warning
	}
	return OK
}

// exactNumber writes v in plain decimal notation with every digit needed
// to read it back.
func exactNumber(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// formatNumber writes v in plain decimal notation (the [-0-9.] that
// perfdata and ranges allow), with at most 3 decimals and no trailing
// zeros.
func formatNumber(v float64) string {
	return formatDecimal(v, 3)
}

// formatDecimal is formatNumber with prec decimals at most.
func formatDecimal(v float64, prec int) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}
