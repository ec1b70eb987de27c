package metrics

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSnapshotContent(t *testing.T) {
	m, clk := newTestMetrics(t, Options{})
	sh := m.Shard(2)
	for i := range 200 {
		sh.ObserveMessage(KindPing, time.Duration(i+1)*10*time.Microsecond)
		sh.MessageReceived(8)
	}
	sh.ObserveHandshake(4 * time.Millisecond)
	sh.MessageError(ErrRateLimited)
	clk.Advance(10 * time.Second)
	s := m.Snapshot()

	if !s.Time.Equal(clk.Now()) || s.UptimeMs != 10_000 {
		t.Errorf("time %v uptime %d", s.Time, s.UptimeMs)
	}
	if len(s.Kinds) != int(numKinds) || s.Kinds[KindPing].Kind != "ping" || s.Kinds[KindPing].Latency.Count != 200 {
		t.Errorf("kinds %+v", s.Kinds)
	}
	if got := s.Kinds[KindPing].Latency.P99Ms; got != 1.98 {
		t.Errorf("ping p99 %v ms, want 1.98", got)
	}
	if s.Handshake.Count != 1 || s.Handshake.MaxMs < 4 || s.Handshake.MaxMs > 4.004 {
		t.Errorf("handshake %+v", s.Handshake)
	}
	for i, w := range s.Windows {
		if w.Name != windowNames[i] || w.Latency.Count != 200 || w.MessagesReceivedPerSec != 20 {
			t.Errorf("window %d: %+v", i, w)
		}
		if w.ErrorRate != 1.0/200 {
			t.Errorf("window %s error rate %v", w.Name, w.ErrorRate)
		}
	}
	if s.Totals.ErrorsByCode["rate_limited"] != 1 || len(s.Totals.ErrorsByCode) != int(numErrorCodes) {
		t.Errorf("errors by code %v", s.Totals.ErrorsByCode)
	}
}

func TestSnapshotJSON(t *testing.T) {
	m, _ := newTestMetrics(t, Options{})
	b, err := json.Marshal(m.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"connections":{"total":0`, `"windows":[{"name":"1m"`, `"p99Ms":`, `"process":{`, `"cpuFraction":`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON lacks %s: %s", key, b)
		}
	}
	h, err := json.Marshal(m.History(time.Time{}, time.Time{}, 0))
	if err != nil || !strings.Contains(string(h), `"resolutionMs":5000`) || !strings.Contains(string(h), `"points":[]`) {
		t.Errorf("history JSON %s, %v", h, err)
	}
}
