package protocol

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Every message is recorded: counts by kind, bytes, errors by code,
// connections by auth state, refusals by reason.
func TestMessagesAreRecorded(t *testing.T) {
	srv, addr := testServer(t, Config{ConnRate: -1, AllowedOrigins: []string{"https://ok.example"}})
	c := dialWS(t, "ws://"+addr+"/ws", nil)
	for _, m := range []string{
		`{"type":"echo","data":1}`, `{"type":"echo","data":2}`, `{"type":"ping"}`,
		`{"type":"join","room":"a"}`, `{"type":"publish","room":"a","data":0}`, `{"type":"leave","room":"a"}`, `nonsense`,
	} {
		c.Send(m)
		c.recv()
		if strings.Contains(m, "publish") {
			c.recv() // the publisher is a member: its own message
		}
	}
	dialStatus(t, "ws://"+addr+"/ws", http.Header{"Origin": {"https://evil.example"}})
	snap := srv.Metrics().Snapshot()
	counts := map[string]uint64{}
	for _, k := range snap.Kinds {
		counts[k.Kind] = k.Latency.Count
	}
	want := map[string]uint64{"echo": 2, "ping": 1, "join": 1, "publish": 1, "leave": 1, "invalid": 1}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("kind %s: %d recorded, want %d (all: %v)", k, counts[k], n, counts)
		}
	}
	if snap.Totals.MessagesReceived != 7 || snap.Totals.ErrorsByCode["bad_request"] != 1 {
		t.Errorf("totals %+v", snap.Totals)
	}
	if snap.Connections.Anonymous != 1 || snap.Totals.ConnectionsRejected != 1 {
		t.Errorf("connections %+v, rejected %d", snap.Connections, snap.Totals.ConnectionsRejected)
	}

	// The exposition parses and lints clean with the engine's series in it.
	var b bytes.Buffer
	srv.Metrics().WritePrometheus(&b)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := parser.TextToMetricFamilies(bytes.NewReader(b.Bytes())); err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	problems, err := promlint.New(bytes.NewReader(b.Bytes())).Lint()
	if err != nil || len(problems) != 0 {
		t.Fatalf("promlint: %v %v", problems, err)
	}
	if !strings.Contains(b.String(), `sockmon_connections_rejected_total{reason="origin"} 1`) {
		t.Error("the origin refusal is not in the exposition")
	}
}
