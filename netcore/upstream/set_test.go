package upstream

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sockmon/sockmon/netcore/breaker"
)

func TestNewOptions(t *testing.T) {
	if _, err := New(Options{MaxReplyBytes: -1, IdleConnTimeout: -time.Second}); err == nil ||
		!strings.Contains(err.Error(), "MaxReplyBytes") || !strings.Contains(err.Error(), "IdleConnTimeout") {
		t.Errorf("New with bad options = %v, want both named", err)
	}
}

func TestReload(t *testing.T) {
	srv := newServer(t, "500")
	other := newServer(t, "ok")
	s, _ := newTestSet(t, Options{})
	ai := Spec{Name: "ai", URL: srv.URL, Source: "--upstream ai"}
	db := Spec{Name: "db", URL: other.URL}
	mustReload(t, s, db, ai)
	if got := strings.Join(s.Names(), ","); got != "ai,db" {
		t.Fatalf("Names = %s", got)
	}
	for range 5 {
		call(t, s, "ai", `1`)
	}
	u0 := s.cur.Load().byName["ai"]
	if u0.br.State() != breaker.Open {
		t.Fatal("breaker not open")
	}

	// Same specs from elsewhere: nothing changes.
	ai.Source = "upstreams.yaml"
	mustReload(t, s, ai, db)
	if s.cur.Load().byName["ai"] != u0 {
		t.Error("an unchanged spec replaced its upstream")
	}

	// A new timeout replaces the upstream but keeps its breaker.
	ai.Timeout = 3 * time.Second
	mustReload(t, s, ai, db)
	u1 := s.cur.Load().byName["ai"]
	if u1 == u0 || u1.br != u0.br || u1.r.Timeout != 3*time.Second {
		t.Error("a changed timeout did not replace the upstream, or lost its breaker")
	}
	wantErr(t, call(t, s, "ai", `1`), CodeUnavailable) // still open

	// A new URL gets a fresh breaker.
	ai.URL = other.URL
	mustReload(t, s, ai, db)
	if s.cur.Load().byName["ai"].br == u0.br {
		t.Error("a new URL kept the old breaker")
	}
	wantOK(t, call(t, s, "ai", `1`))

	// A bad set keeps the old one and says why.
	err := s.Reload([]Spec{{Name: "ai", URL: "nope"}, db})
	var ce *ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].Field != "url" {
		t.Fatalf("bad Reload = %v", err)
	}
	if got := strings.Join(s.Names(), ","); got != "ai,db" {
		t.Errorf("after a bad Reload: %s", got)
	}
	wantOK(t, call(t, s, "ai", `1`))

	// A removed upstream is not found; its old calls were answered.
	mustReload(t, s, db)
	wantErr(t, call(t, s, "ai", `1`), CodeNotFound)
	if got := strings.Join(s.Names(), ","); got != "db" {
		t.Errorf("Names = %s", got)
	}

	// An environment change is a spec change.
	vals := env{"K": "one"}
	s2, _ := newTestSet(t, Options{LookupEnv: vals.lookup})
	withHeader := Spec{Name: "ai", URL: other.URL, Headers: map[string]string{"X-Key": "${K}"}}
	mustReload(t, s2, withHeader)
	before := s2.cur.Load().byName["ai"]
	vals["K"] = "two"
	mustReload(t, s2, withHeader)
	if s2.cur.Load().byName["ai"] == before {
		t.Error("a new environment value kept the old upstream")
	}
	wantOK(t, call(t, s2, "ai", `1`))
	if h, _ := other.lastRequest(); h.Get("X-Key") != "two" {
		t.Errorf("X-Key = %q", h.Get("X-Key"))
	}
}

func TestReset(t *testing.T) {
	srv := newServer(t, "500")
	s, _ := newTestSet(t, Options{})
	var unknown *UnknownServiceError
	if err := s.Reset("*"); !errors.As(err, &unknown) || len(unknown.Known) != 0 ||
		!strings.Contains(err.Error(), "no upstream services are configured") {
		t.Errorf("Reset(*) with none = %v", err)
	}
	mustReload(t, s, Spec{Name: "ai", URL: srv.URL}, Spec{Name: "db", URL: srv.URL})
	trip := func() {
		for range 5 {
			call(t, s, "ai", `1`)
			call(t, s, "db", `1`)
		}
	}
	states := func() string {
		var out []string
		for _, st := range s.Snapshot() {
			out = append(out, st.Name+"="+st.Breaker.State.String())
		}
		return strings.Join(out, " ")
	}
	trip()
	if got := states(); got != "ai=open db=open" {
		t.Fatalf("states = %s", got)
	}
	if err := s.Reset("ai"); err != nil {
		t.Fatal(err)
	}
	if got := states(); got != "ai=closed db=open" {
		t.Errorf("after Reset(ai): %s", got)
	}
	if err := s.Reset("*"); err != nil {
		t.Fatal(err)
	}
	if got := states(); got != "ai=closed db=closed" {
		t.Errorf("after Reset(*): %s", got)
	}
	err := s.Reset("nope")
	if !errors.As(err, &unknown) || strings.Join(unknown.Known, ",") != "ai,db" || unknown.Name != "nope" ||
		err.Error() != `upstream: no service "nope"; known: ai, db` {
		t.Errorf("Reset(nope) = %v", err)
	}
}

func TestSnapshot(t *testing.T) {
	srv := newServer(t, "500")
	s, clk := newTestSet(t, Options{})
	mustReload(t, s, Spec{Name: "ai", URL: srv.URL, Critical: true}, Spec{Name: "db", URL: srv.URL})
	for range 5 {
		call(t, s, "ai", `1`)
	}
	snap := s.Snapshot()
	if len(snap) != 2 || snap[0].Name != "ai" || snap[1].Name != "db" {
		t.Fatalf("snapshot = %+v", snap)
	}
	ai := snap[0]
	b := ai.Breaker
	if !ai.Critical || !ai.Down() || b.State != breaker.Open || b.Failures != 5 || b.LastErrorClass != "http_5xx" ||
		!b.OpenedAt.Equal(clk.Now()) || !b.NextAttemptAt.Equal(clk.Now().Add(5*time.Second)) || b.Counts.Calls != 5 {
		t.Errorf("ai = %+v", ai)
	}
	if snap[1].Down() || snap[1].Critical {
		t.Errorf("db = %+v", snap[1])
	}
}
