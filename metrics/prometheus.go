package metrics

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"

	vm "github.com/VictoriaMetrics/metrics"
)

// Prometheus exposition. Every series lives in a VictoriaMetrics Set owned by
// the Metrics: per-connection counters are vm.Counters, everything read from
// the shards or from atomics is a vm.Gauge callback, and the histograms, the
// window quantiles and the go_*/process_* metrics are metrics writers of the
// same Set. The Set writes no metadata of its own (VictoriaMetrics only
// offers a global switch and empty HELP lines), so WritePrometheus inserts
// `# HELP` and `# TYPE` before each family from the table filled at
// registration. A scrape does work proportional to the number of series and
// shards, never to the number of connections.

// ContentType is the Content-Type of what WritePrometheus writes: the text
// format 0.0.4. From Prometheus 3.0 a scrape without a parsable
// Content-Type fails, so it is always set.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Metric types of the text format.
const (
	typeCounter   = "counter"
	typeGauge     = "gauge"
	typeHistogram = "histogram"
	typeSummary   = "summary"
)

type family struct {
	name, typ, help string
	extra           bool // added by RegisterGauge, RegisterCounter or RegisterHistogram
}

type exposition struct {
	set *vm.Set

	mu   sync.RWMutex // guards meta against RegisterGauge
	meta map[string]*family
	bufs sync.Pool // *bytes.Buffer
}

// promBucketsMicros are the `le` bounds of the latency histograms, in µs.
// Each is the lower edge of an HDR sub-bucket, so the count at `le` is the
// exact number of recorded durations <= le (see hdr.go); a test checks it.
// Above 10 ms they double, because HDR sub-buckets widen with the value and
// 10ms·2^n stays on an edge where 25 ms, 50 ms... would not.
var promBucketsMicros = []uint64{
	25, 50, 100, 250, 500,
	1_000, 2_500, 5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 640_000,
	1_280_000, 2_560_000, 5_120_000, 10_240_000,
}

// promBuckets is the flat HDR index of each bound, and promLe its label.
var promBuckets, promLe = func() ([]uint, []string) {
	idx := make([]uint, len(promBucketsMicros))
	le := make([]string, len(promBucketsMicros))
	for i, us := range promBucketsMicros {
		idx[i] = flatIndex(us)
		le[i] = strconv.FormatFloat(float64(us)/1e6, 'f', -1, 64)
	}
	return idx, le
}()

// describe adds a family to the metadata table.
func (e *exposition) describe(name, typ, help string) {
	e.meta[name] = &family{name: name, typ: typ, help: help}
}

// register creates the Set with every series at zero and the metadata.
func (m *Metrics) register() {
	e := &m.expo
	e.set = vm.NewSet()
	e.meta = make(map[string]*family)
	e.bufs.New = func() any { return new(bytes.Buffer) }
	s := e.set

	e.describe("sockmon_build_info", typeGauge, "Build of the running server; always 1.")
	s.NewGauge(fmt.Sprintf(`sockmon_build_info{version=%s,revision=%s,goversion=%s}`,
		quoteLabel(m.opts.Version), quoteLabel(m.opts.Revision), quoteLabel(runtime.Version())), func() float64 { return 1 })

	e.describe("sockmon_connections", typeGauge, "Open WebSocket connections by authentication state.")
	e.describe("sockmon_connections_accepted_total", typeCounter, "WebSocket connections upgraded, by authentication state.")
	for a := range numAuths {
		s.NewGauge(`sockmon_connections{auth="`+a.String()+`"}`, func() float64 { return float64(m.conns[a].Load()) })
		m.accepted[a] = s.NewCounter(`sockmon_connections_accepted_total{auth="` + a.String() + `"}`)
	}
	e.describe("sockmon_connections_rejected_total", typeCounter, "Connections refused before the upgrade, by reason.")
	for r := range numRejectReasons {
		m.rejected[r] = s.NewCounter(`sockmon_connections_rejected_total{reason="` + r.String() + `"}`)
	}
	e.describe("sockmon_connection_attempts_total", typeCounter, "Connections accepted plus connections rejected.")
	s.NewGauge("sockmon_connection_attempts_total", func() float64 {
		var n uint64
		for _, c := range m.accepted {
			n += c.Get()
		}
		for _, c := range m.rejected {
			n += c.Get()
		}
		return float64(n)
	})
	e.describe("sockmon_disconnections_total", typeCounter, "Connections ended, by the side that ended them and reason.")
	for i := range numInitiators {
		for r := range numDisconnectReasons {
			m.disconnects[i][r] = s.NewCounter(`sockmon_disconnections_total{initiator="` + i.String() + `",reason="` + r.String() + `"}`)
		}
	}

	sharded := func(name, help string, get func(*Shard) uint64) {
		e.describe(name, typeCounter, help)
		s.NewGauge(name, func() float64 { return float64(m.sumShards(get)) })
	}
	sharded("sockmon_messages_received_total", "Messages received from clients.", func(sh *Shard) uint64 { return sh.received.Load() })
	sharded("sockmon_messages_sent_total", "Messages sent to clients.", func(sh *Shard) uint64 { return sh.sent.Load() })
	sharded("sockmon_received_bytes_total", "Payload bytes of the messages received from clients.", func(sh *Shard) uint64 { return sh.bytesReceived.Load() })
	sharded("sockmon_sent_bytes_total", "Payload bytes of the messages sent to clients.", func(sh *Shard) uint64 { return sh.bytesSent.Load() })
	sharded("sockmon_messages_dropped_total", "Outbound messages dropped because the client was too slow.", func(sh *Shard) uint64 { return sh.dropped.Load() })

	e.describe("sockmon_message_errors_total", typeCounter, "Error replies sent to clients, by error code.")
	for c := range numErrorCodes {
		s.NewGauge(`sockmon_message_errors_total{code="`+c.String()+`"}`, func() float64 {
			return float64(m.sumShards(func(sh *Shard) uint64 { return sh.errors[c].Load() }))
		})
	}
	e.describe("sockmon_rate_limited_total", typeCounter, "Requests refused by a rate limit, by scope.")
	for sc := range numScopes {
		s.NewGauge(`sockmon_rate_limited_total{scope="`+sc.String()+`"}`, func() float64 {
			return float64(m.sumShards(func(sh *Shard) uint64 { return sh.rateLimited[sc].Load() }))
		})
	}

	e.describe("sockmon_ready", typeGauge, "1 while the server accepts new clients, else 0.")
	s.NewGauge("sockmon_ready", func() float64 { return b2f(m.ready.Load()) })
	e.describe("sockmon_lingering_connections", typeGauge,
		"Connections in their lingering close: the close frame or refusal sent, the peer's input read and dropped until it closes.")
	s.NewGauge("sockmon_lingering_connections", func() float64 { return float64(m.lingering.Load()) })
	e.describe("sockmon_maintenance_mode", typeGauge, "1 while maintenance mode is on, else 0.")
	s.NewGauge("sockmon_maintenance_mode", func() float64 { return b2f(m.maintenance.Load()) })

	e.describe("sockmon_message_duration_seconds", typeHistogram, "Time to handle a client message, by message kind.")
	e.describe("sockmon_handshake_duration_seconds", typeHistogram, "Time from accepting a connection to the end of the WebSocket upgrade.")
	e.describe("sockmon_message_duration_window_seconds", typeGauge,
		"Exact HDR statistic (stat = p50, p95, p99, p999 or max) of the time to handle a message of any kind over the trailing window; NaN when the window is empty.")
	s.RegisterMetricsWriter(m.writeLatency)

	m.describeRuntime()
	s.RegisterMetricsWriter(m.writeRuntime)
}

func (m *Metrics) sumShards(get func(*Shard) uint64) uint64 {
	var n uint64
	for _, sh := range m.shards {
		n += get(sh)
	}
	return n
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// quoteLabel quotes a label value as the text format wants it: only \, "
// and newline are escaped.
func quoteLabel(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// writeLatency writes the latency histograms and the window statistics.
func (m *Metrics) writeLatency(w io.Writer) {
	var cum [20]uint64
	b := make([]byte, 0, 16<<10)

	m.mu.Lock()
	m.collectLocked(m.now())
	for k := range numKinds {
		b = appendHistogram(b, "sockmon_message_duration_seconds", `kind="`+k.String()+`"`, &m.col.total[k], cum[:])
	}
	b = appendHistogram(b, "sockmon_handshake_duration_seconds", "", &m.col.total[recHandshake], cum[:])
	for i, win := range m.windows {
		l := m.q.latency(&win.sum.msgs)
		stats := [...]struct {
			name string
			ms   float64
		}{{"p50", l.P50Ms}, {"p95", l.P95Ms}, {"p99", l.P99Ms}, {"p999", l.P999Ms}, {"max", l.MaxMs}}
		for _, st := range stats {
			v := st.ms / 1e3
			if l.Count == 0 {
				v = math.NaN()
			}
			b = append(b, `sockmon_message_duration_window_seconds{window="`...)
			b = append(b, windowNames[i]...)
			b = append(b, `",stat="`...)
			b = append(b, st.name...)
			b = append(b, `"} `...)
			b = appendFloat(b, v)
			b = append(b, '\n')
		}
	}
	m.mu.Unlock()
	w.Write(b)
}

// appendHistogram appends the _bucket, _sum and _count lines of c.
func appendHistogram(b []byte, name, labels string, c *counts, cum []uint64) []byte {
	c.cumulative(promBuckets, cum)
	for i, le := range promLe {
		b = appendSample(b, name+"_bucket", labels, `le="`+le+`"`)
		b = strconv.AppendUint(b, cum[i], 10)
		b = append(b, '\n')
	}
	b = appendSample(b, name+"_bucket", labels, `le="+Inf"`)
	b = strconv.AppendUint(b, c.n, 10)
	b = append(b, '\n')
	b = appendSample(b, name+"_sum", labels, "")
	b = appendFloat(b, float64(c.sum)/1e9)
	b = append(b, '\n')
	b = appendSample(b, name+"_count", labels, "")
	b = strconv.AppendUint(b, c.n, 10)
	return append(b, '\n')
}

// appendSample appends `name{labels,extra} ` (without braces when both are
// empty).
func appendSample(b []byte, name, labels, extra string) []byte {
	b = append(b, name...)
	if labels != "" || extra != "" {
		b = append(b, '{')
		b = append(b, labels...)
		if labels != "" && extra != "" {
			b = append(b, ',')
		}
		b = append(b, extra...)
		b = append(b, '}')
	}
	return append(b, ' ')
}

func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// cumulative sets out[i] to the number of values at flat indexes below
// idx[i]; idx must be ascending. One pass over the blocks.
func (c *counts) cumulative(idx []uint, out []uint64) {
	var run uint64
	e := 0
	for b := uint(0); b < numBlocks && e < len(idx); b++ {
		start := b << subBits
		for e < len(idx) && idx[e] <= start {
			out[e] = run
			e++
		}
		cb := c.blocks[b]
		if cb == nil {
			continue
		}
		i := uint(0)
		for e < len(idx) && idx[e] < start+blockLen {
			for end := idx[e] - start; i < end; i++ {
				run += cb[i]
			}
			out[e] = run
			e++
		}
		for ; i < blockLen; i++ {
			run += cb[i]
		}
	}
	for ; e < len(idx); e++ {
		out[e] = run
	}
}

// WritePrometheus writes every metric in the Prometheus text format 0.0.4
// (serve it with ContentType).
// It builds the whole page in memory and writes it with one Write, outside
// any lock, so a slow client never holds up another reader, and writers are
// never held up at all.
func (m *Metrics) WritePrometheus(w io.Writer) {
	e := &m.expo
	raw := e.bufs.Get().(*bytes.Buffer)
	out := e.bufs.Get().(*bytes.Buffer)
	raw.Reset()
	out.Reset()
	e.set.WritePrometheus(raw)
	e.annotate(out, raw.Bytes())
	w.Write(out.Bytes())
	e.bufs.Put(raw)
	e.bufs.Put(out)
}

// annotate copies the samples of raw to out with the HELP and TYPE lines of
// each family before its first sample.
func (e *exposition) annotate(out *bytes.Buffer, raw []byte) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var prev *family
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i+1], raw[i+1:]
		} else {
			raw = nil
		}
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		end := bytes.IndexAny(line, "{ ")
		if end < 0 {
			continue
		}
		f := e.family(line[:end])
		if f != nil && f != prev {
			out.WriteString("# HELP ")
			out.WriteString(f.name)
			out.WriteByte(' ')
			out.WriteString(escapeHelp(f.help))
			out.WriteString("\n# TYPE ")
			out.WriteString(f.name)
			out.WriteByte(' ')
			out.WriteString(f.typ)
			out.WriteByte('\n')
			prev = f
		}
		out.Write(line)
		if line[len(line)-1] != '\n' {
			out.WriteByte('\n')
		}
	}
}

// family finds the family of a sample name, looking through the _bucket,
// _sum and _count suffixes of histograms and summaries.
func (e *exposition) family(name []byte) *family {
	if f := e.meta[string(name)]; f != nil {
		return f
	}
	for _, suf := range [...]string{"_bucket", "_sum", "_count"} {
		base, ok := bytes.CutSuffix(name, []byte(suf))
		if !ok {
			continue
		}
		if f := e.meta[string(base)]; f != nil && (f.typ == typeHistogram || f.typ == typeSummary && suf != "_bucket") {
			return f
		}
	}
	return nil
}

func escapeHelp(s string) string {
	if !strings.ContainsAny(s, "\\\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

var gaugeNameRE = regexp.MustCompile(`^sockmon_[a-z][a-z0-9_]*$`)

// RegisterGauge adds a gauge family to the exposition: name (with the
// sockmon_ prefix, snake_case, base units) read by calling f at each scrape.
// labels, when not empty, is a list of label pairs in the text format, such
// as `breaker="ai",state="open"`; register each label combination once. f
// must be safe for concurrent use and must not block. Register before
// serving scrapes or at any time later; a series cannot be removed.
func (m *Metrics) RegisterGauge(name, labels, help string, f func() float64) (err error) {
	if !gaugeNameRE.MatchString(name) {
		return fmt.Errorf("metrics: gauge name %q: want sockmon_ followed by lower-case snake_case", name)
	}
	if strings.HasSuffix(name, "_total") || strings.HasSuffix(name, "_bucket") || strings.HasSuffix(name, "_count") || strings.HasSuffix(name, "_sum") {
		return fmt.Errorf("metrics: gauge name %q: a gauge must not end in _total, _bucket, _count or _sum", name)
	}
	if help == "" {
		return fmt.Errorf("metrics: gauge %q: help text is required", name)
	}
	if f == nil {
		return fmt.Errorf("metrics: gauge %q: nil function", name)
	}
	series := name
	if labels != "" {
		series = name + "{" + labels + "}"
	}
	if err := vm.ValidateMetric(series); err != nil {
		return fmt.Errorf("metrics: gauge %q: %w", series, err)
	}
	e := &m.expo
	e.mu.Lock()
	defer e.mu.Unlock()
	if old := e.meta[name]; old != nil && (!old.extra || old.typ != typeGauge || old.help != help) {
		return fmt.Errorf("metrics: gauge %q: family already registered as %s %q", name, old.typ, old.help)
	}
	for _, n := range e.set.ListMetricNames() {
		if n == series {
			return fmt.Errorf("metrics: gauge %q: already registered", series)
		}
	}
	e.meta[name] = &family{name: name, typ: typeGauge, help: help, extra: true}
	e.set.NewGauge(series, f)
	return nil
}
