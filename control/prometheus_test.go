package control

import (
	"bytes"
	"compress/gzip"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/sockmon/sockmon/metrics"
)

// /metrics: the exact content type, plain or gzipped on request, lint-clean;
// WriteMetrics (the Go side) writes the same families.
func TestMetricsEndpoint(t *testing.T) {
	f := newFixture(t)
	f.dial("")
	r := f.do("GET", PathMetrics, "", nil)
	if r.status != 200 || r.header.Get("Content-Type") != metrics.ContentType || r.header.Get("Content-Encoding") != "" {
		t.Fatalf("status %d, type %q, encoding %q", r.status, r.header.Get("Content-Type"), r.header.Get("Content-Encoding"))
	}
	page := string(r.body)
	for _, name := range []string{"sockmon_connections{", "sockmon_messages_received_total", "sockmon_maintenance_mode", "go_goroutines", "process_"} {
		if !strings.Contains(page, name) {
			t.Errorf("no %s in /metrics", name)
		}
	}
	problems, err := promlint.New(strings.NewReader(page)).Lint()
	if err != nil || len(problems) > 0 {
		t.Fatalf("promlint: %v %v", err, problems)
	}

	gz := f.do("GET", PathMetrics, "", nil, "Accept-Encoding: gzip")
	if gz.header.Get("Content-Encoding") != "gzip" || gz.header.Get("Content-Type") != metrics.ContentType {
		t.Fatalf("gzip: encoding %q type %q", gz.header.Get("Content-Encoding"), gz.header.Get("Content-Type"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz.body))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || !strings.Contains(string(plain), "sockmon_connections{") {
		t.Fatalf("gunzip: %v", err)
	}
	if len(gz.body) >= len(r.body) {
		t.Errorf("gzipped %d bytes, plain %d", len(gz.body), len(r.body))
	}
	if r := f.do("HEAD", PathMetrics, "", nil); r.status != 200 || len(r.body) != 0 {
		t.Fatalf("HEAD: %d, %d bytes", r.status, len(r.body))
	}
	if r := f.do("POST", PathMetrics, "", nil); r.status != 405 {
		t.Fatalf("POST /metrics: %d", r.status)
	}

	var buf bytes.Buffer
	f.ctl.WriteMetrics(&buf, false)
	if !strings.Contains(buf.String(), "sockmon_connections{") {
		t.Fatal("WriteMetrics wrote no sockmon_connections")
	}
	buf.Reset()
	f.ctl.WriteMetrics(&buf, true)
	if _, err := gzip.NewReader(&buf); err != nil {
		t.Fatalf("WriteMetrics gzip: %v", err)
	}
}
