package netcore

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// Shedding load refuses new upgrades with 503 and Retry-After and turns
// readiness off, while a connected client keeps being served; turning it
// off admits clients again. Maintenance is not touched.
func TestShedLoad(t *testing.T) {
	srv, addr := testServer(t, Config{})
	c := wstest.Dial(t, addr, "/echo")
	srv.SetShedLoad(true, "alert high_load")
	if st := srv.ShedLoad(); st == nil || st.Reason != "alert high_load" {
		t.Fatalf("ShedLoad() = %+v", st)
	}
	if srv.Ready() || srv.Maintenance() != nil {
		t.Fatalf("shedding: ready %t, maintenance %+v; want not ready, no maintenance", srv.Ready(), srv.Maintenance())
	}
	if _, resp := wstest.DialResp(t, addr, "/echo"); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "30" {
		t.Fatalf("shedding: status %d, Retry-After %q; want 503 with Retry-After 30", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	c.Send(true, ws.OpBinary, []byte("still here"))
	c.ExpectEcho(ws.OpBinary, []byte("still here"))
	if got := srv.Metrics().Snapshot().Totals.ConnectionsRejected; got != 1 {
		t.Fatalf("rejected %d, want 1", got)
	}
	if s := metricsText(srv.Metrics()); !contains(s, `sockmon_connections_rejected_total{reason="shed"} 1`) || !contains(s, "sockmon_ready 0") {
		t.Fatalf("metrics while shedding:\n%s", s)
	}

	srv.SetShedLoad(false, "")
	if srv.ShedLoad() != nil || !srv.Ready() {
		t.Fatal("shedding off: not ready")
	}
	wstest.Dial(t, addr, "/echo")
	c.Send(true, ws.OpBinary, []byte("after"))
	c.ExpectEcho(ws.OpBinary, []byte("after"))
}

func metricsText(m *metrics.Metrics) string {
	var b strings.Builder
	m.WritePrometheus(&b)
	return b.String()
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
