package loadtest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The JSON report's schema: every key and its JSON type. Scripts rely on
// it; a change here needs a new ReportSchema.
var reportSchema = map[string]string{
	"schema": "string", "started_at": "string", "target": "string", "mode": "string",
	"interrupted": "bool", "ramp_seconds": "number", "duration_seconds": "number", "slos": "array",
	"settings.conns": "number", "settings.ramp_per_second": "number", "settings.rate_per_second": "number",
	"settings.closed_loop": "bool", "settings.duration_seconds": "number", "settings.size_bytes": "number",
	"settings.timeout_seconds": "number", "settings.sources": "number",
	"connections.attempted": "number", "connections.established": "number", "connections.held_at_end": "number",
	"connections.dropped": "number", "connections.connect_ms": "percentiles",
	"messages.sent": "number", "messages.received": "number", "messages.requested_rate": "number",
	"messages.achieved_rate": "number", "messages.received_rate": "number", "messages.rate_ratio": "number",
	"messages.backlog": "number", "messages.pings_answered": "number",
	"latency_ms.corrected": "percentiles", "latency_ms.uncorrected": "percentiles", "latency_ms.schedule_lag": "percentiles",
	"errors.total": "number", "errors.ratio": "number", "errors.by_class": "object",
	"client.cpu_seconds": "number", "client.cpu_per_message_us": "number", "client.utilization": "number",
	"client.gomaxprocs": "number", "warnings": "array",
}

var percentileKeys = []string{"count", "min", "mean", "p50", "p90", "p99", "p99_9", "max"}

func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "bool"
	case float64:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "null"
}

// flatten maps every leaf key of v to its JSON type, stopping at
// percentile objects and at by_class.
func flatten(prefix string, v map[string]any, out map[string]string) {
	for k, x := range v {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		m, isObj := x.(map[string]any)
		switch {
		case isObj && isPercentiles(m):
			out[key] = "percentiles"
		case isObj && k != "by_class":
			flatten(key, m, out)
		default:
			out[key] = jsonType(x)
		}
	}
}

func isPercentiles(m map[string]any) bool {
	if len(m) != len(percentileKeys) {
		return false
	}
	for _, k := range percentileKeys {
		if _, ok := m[k].(float64); !ok {
			return false
		}
	}
	return true
}

func TestReportJSONSchema(t *testing.T) {
	rep := sampleReport()
	rep.Mode = ModeEchoBinary
	slos, _ := ParseSLOs([]string{"p99<30ms"})
	rep.EvaluateSLOs(slos)
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	flatten("", doc, got)
	var problems []string
	for k, want := range reportSchema {
		if got[k] != want {
			problems = append(problems, k+": got "+got[k]+", want "+want)
		}
	}
	for k := range got {
		if _, ok := reportSchema[k]; !ok {
			problems = append(problems, k+": not in the schema")
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Errorf("report JSON differs from the schema:\n%s", strings.Join(problems, "\n"))
	}
	if doc["schema"] != ReportSchema {
		t.Errorf("schema %v, want %s", doc["schema"], ReportSchema)
	}
	slo := doc["slos"].([]any)[0].(map[string]any)
	for _, k := range []string{"expr", "ok", "observed", "unit", "detail"} {
		if _, ok := slo[k]; !ok {
			t.Errorf("slo result lacks %q", k)
		}
	}
	// A publish run and a --metrics-url run add their sections.
	rep.Publish = &PublishReport{}
	rep.Server = &ServerReport{}
	buf.Reset()
	rep.WriteJSON(&buf)
	doc = nil
	json.Unmarshal(buf.Bytes(), &doc)
	for _, k := range []string{"publish", "server"} {
		if _, ok := doc[k].(map[string]any); !ok {
			t.Errorf("%s section missing", k)
		}
	}
}

func TestWriteHgrmAndPlot(t *testing.T) {
	e := &echoServer{}
	url := startEcho(t, e)
	rep := runOrFail(t, Config{URL: url, Conns: 20, Rate: 2000, Duration: 500 * 1e6})
	var buf bytes.Buffer
	if err := rep.WriteHgrm(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "Percentile") || !strings.Contains(buf.String(), "#[Max") {
		t.Errorf("hgrm output:\n%s", buf.String())
	}
	dir := t.TempDir()
	for _, name := range []string{"lat.svg", "lat.png"} {
		path := filepath.Join(dir, name)
		if err := rep.WritePlot(path); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() < 1000 {
			t.Errorf("%s: %v, %d bytes", name, err, fi.Size())
		}
	}
	if err := rep.WritePlot(filepath.Join(dir, "lat.pdf")); err == nil {
		t.Error("plot to .pdf accepted")
	}
}

// Every row of percentiles comes under its column header: the connect
// times too, which used to come before the first header.
func TestReportTextHeadersComeFirst(t *testing.T) {
	rep := sampleReport()
	var buf bytes.Buffer
	if err := rep.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	header := strings.Index(text, "p50")
	for _, row := range []string{"  connect ", "  corrected "} {
		at := strings.Index(text, row)
		if at < 0 || header < 0 || header > at {
			t.Errorf("row %q (at %d) is not under a header (first at %d):\n%s", row, at, header, text)
		}
	}
	// Columns line up: each header's p50 ends where its rows' first number ends.
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if !strings.Contains(l, " p50 ") || i+1 >= len(lines) {
			continue
		}
		end := strings.Index(l, "p50") + len("p50")
		row := lines[i+1]
		if len(row) < end || row[end-1] == ' ' || (len(row) > end && row[end] != ' ') {
			t.Errorf("header %q and row %q do not line up", l, row)
		}
	}
}
