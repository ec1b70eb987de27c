package metrics

import (
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/sockmon/sockmon/netcore/wstest"
)

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Now == nil || o.HistoryInterval != 5*time.Second || o.Version != "unknown" || o.Revision != "unknown" {
		t.Errorf("defaults %+v", o)
	}
	if o.Shards < runtime.GOMAXPROCS(0) || o.Shards&(o.Shards-1) != 0 {
		t.Errorf("default shards %d: want a power of two >= GOMAXPROCS", o.Shards)
	}
}

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		name       string
		o          Options
		wantShards int
		wantErrs   []string
	}{
		{"rounds shards up", Options{Shards: 5}, 8, nil},
		{"one shard", Options{Shards: 1}, 1, nil},
		{"negative shards", Options{Shards: -1}, 0, []string{"Shards -1"}},
		{"too many shards", Options{Shards: 5000}, 0, []string{"Shards 5000"}},
		{"interval too long", Options{HistoryInterval: time.Hour}, 0, []string{"HistoryInterval 1h0m0s"}},
		{"every error at once", Options{Shards: -3, HistoryInterval: -time.Second}, 0, []string{"Shards -3", "HistoryInterval -1s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := tt.o.withDefaults()
			if len(tt.wantErrs) == 0 {
				if err != nil || o.Shards != tt.wantShards {
					t.Errorf("got shards %d, err %v; want %d", o.Shards, err, tt.wantShards)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.wantErrs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, err := New(tt.o); err == nil {
				t.Error("New accepted invalid options")
			}
		})
	}
}

func samplerRunning() bool {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
	return strings.Contains(b.String(), "metrics.(*Metrics).run")
}

func TestStartCloseNoLeak(t *testing.T) {
	m, err := New(Options{HistoryInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	m.Start() // idempotent
	wstest.WaitFor(t, "a sample from the sampler", func() bool { return len(m.History(time.Time{}, time.Time{}, 0).Points) > 0 })
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	wstest.WaitFor(t, "the sampler to exit", func() bool { return !samplerRunning() })
	m.Start() // after Close: no-op
	if samplerRunning() {
		t.Error("Start after Close started the sampler")
	}
	m.Shard(0).ObserveMessage(KindEcho, time.Millisecond) // still recordable
	if m.Snapshot().Kinds[KindEcho].Latency.Count != 1 {
		t.Error("recording after Close was lost")
	}
}

func TestCloseWithoutStart(t *testing.T) {
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConnectionAccounting(t *testing.T) {
	m, _ := newTestMetrics(t, Options{})
	for range 3 {
		m.ConnectionOpened(Authenticated)
	}
	m.ConnectionOpened(Anonymous)
	m.ConnectionOpened(Auth(9)) // out of range: anonymous
	m.ConnectionClosed(Authenticated, InitiatorServer, ReasonSlowConsumer)
	m.ConnectionClosed(Auth(9), Initiator(9), DisconnectReason(200))
	m.ConnectionRejected(RejectLimit)
	m.ConnectionRejected(RejectReason(99))
	auth, anon := m.Connections()
	if auth != 2 || anon != 1 {
		t.Errorf("connections %d authenticated, %d anonymous; want 2, 1", auth, anon)
	}
	if m.disconnects[InitiatorServer][ReasonSlowConsumer].Get() != 1 || m.disconnects[InitiatorServer][ReasonOther].Get() != 1 {
		t.Error("disconnections not counted by initiator and reason")
	}
	if m.rejected[RejectLimit].Get() != 1 || m.rejected[RejectHandshake].Get() != 1 {
		t.Error("rejections not counted by reason")
	}
	s := m.Snapshot()
	if s.Connections != (ConnectionCounts{Total: 3, Authenticated: 2, Anonymous: 1}) ||
		s.Totals.ConnectionsAccepted != 5 || s.Totals.ConnectionsRejected != 2 || s.Totals.Disconnections != 2 {
		t.Errorf("snapshot %+v %+v", s.Connections, s.Totals)
	}
	if by := s.Totals.RejectedByReason; len(by) != int(numRejectReasons) || by["limit"] != 1 || by["handshake"] != 1 || by["rate"] != 0 {
		t.Errorf("rejected by reason %v, want every reason with limit 1 and handshake 1", by)
	}
}

func TestReadyAndMaintenance(t *testing.T) {
	m, _ := newTestMetrics(t, Options{})
	if s := m.Snapshot(); !s.Ready || s.Maintenance {
		t.Errorf("new Metrics: ready %v, maintenance %v; want true, false", s.Ready, s.Maintenance)
	}
	m.SetReady(false)
	m.SetMaintenance(true)
	if s := m.Snapshot(); s.Ready || !s.Maintenance {
		t.Errorf("after set: ready %v, maintenance %v", s.Ready, s.Maintenance)
	}
}

func TestNanotimeIsMonotonic(t *testing.T) {
	m, _ := newTestMetrics(t, Options{})
	a := m.Nanotime()
	b := m.Shard(0).Nanotime()
	if a < 0 || b < a {
		t.Errorf("Nanotime went from %d to %d", a, b)
	}
}

func TestShardSpread(t *testing.T) {
	m, _ := newTestMetrics(t, Options{Shards: 4})
	seen := map[*Shard]bool{}
	for id := range uint64(4) {
		seen[m.Shard(id)] = true
	}
	if len(seen) != 4 {
		t.Errorf("4 consecutive ids use %d shards, want 4", len(seen))
	}
	if m.Shard(5) != m.Shard(1) {
		t.Error("shard choice must be stable for a hint")
	}
}
