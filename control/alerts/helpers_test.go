package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore/breaker"
	bolt "go.etcd.io/bbolt"
)

// clock is an injectable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a bytes.Buffer safe for concurrent writers (the logger).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// remediator records the remediation calls.
type remediator struct {
	mu    sync.Mutex
	calls []remCall
}

func (r *remediator) Remediate(kind Remediation, on bool, rule, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, remCall{kind: kind, on: on, rule: rule, reason: reason})
	return nil
}

func (r *remediator) list() []remCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]remCall(nil), r.calls...)
}

// rig is an engine on an injected clock over a real metrics instance and
// a real bbolt file.
type rig struct {
	t    *testing.T
	clk  *clock
	m    *metrics.Metrics
	db   *bolt.DB
	e    *Engine
	rem  *remediator
	logs *syncBuffer
	cfg  Config
}

func newRig(t *testing.T, mod func(*Config)) *rig {
	t.Helper()
	r := &rig{t: t, clk: newClock(), rem: &remediator{}, logs: &syncBuffer{}}
	m, err := metrics.New(metrics.Options{Now: r.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	r.db = openDB(t, filepath.Join(t.TempDir(), "control.db"))
	r.cfg = Config{
		DB: r.db, Metrics: m, Remediator: r.rem, Now: r.clk.Now, Instance: "node1",
		Logger:    slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		GroupWait: -1,
		Notify:    NotifyOptions{RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, SendTimeout: 2 * time.Second, Breaker: breaker.Config{OpenBase: 20 * time.Millisecond, OpenMax: 50 * time.Millisecond}},
	}
	if mod != nil {
		mod(&r.cfg)
	}
	r.e, err = New(r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.e.Close(ctx)
	})
	return r
}

func openDB(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// step advances the clock by d and evaluates.
func (r *rig) step(d time.Duration) {
	r.clk.Advance(d)
	r.e.Evaluate()
}

// state is the state of rule name's alert.
func (r *rig) state(name string) State {
	for _, rs := range r.e.Rules() {
		if rs.Name == name {
			return rs.State
		}
	}
	r.t.Fatalf("no rule %q", name)
	return ""
}

func (r *rig) expect(name string, want State) {
	r.t.Helper()
	if got := r.state(name); got != want {
		r.t.Fatalf("%s at %s: %s, want %s", name, r.clk.Now().Format("15:04:05"), got, want)
	}
}

// kinds lists the history kinds of rule name, oldest first.
func (r *rig) kinds(name string) []string {
	r.t.Helper()
	h, err := r.e.History(HistoryQuery{Name: name, Limit: 1000})
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for i := len(h) - 1; i >= 0; i-- {
		out = append(out, h[i].Kind)
	}
	return out
}

func rule(name, metric, op string, threshold float64, forMs int64, level Level) Rule {
	return Rule{Name: name, Metric: metric, Operator: op, Threshold: threshold, ForMs: forMs, Level: level, Enabled: true}
}

// receiver is a local HTTP receiver that records every request body and
// answers with what fail says (nil: 200).
type receiver struct {
	srv *httptest.Server

	mu     sync.Mutex
	reqs   int
	bodies [][]byte
	heads  []http.Header
	fail   func(n int) int // status for the nth request (from 0), 0 = 200
	block  chan struct{}   // when set, requests wait on it
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		rc.mu.Lock()
		rc.reqs++
		n := len(rc.bodies)
		fail, block := rc.fail, rc.block
		rc.mu.Unlock()
		if block != nil {
			select {
			case <-block:
			case <-req.Context().Done():
				return
			}
		}
		status := 0
		if fail != nil {
			status = fail(n)
		}
		if status != 0 && status != 200 {
			rc.mu.Lock()
			rc.bodies = append(rc.bodies, nil) // an attempt that failed
			rc.heads = append(rc.heads, nil)
			rc.mu.Unlock()
			w.WriteHeader(status)
			return
		}
		rc.mu.Lock()
		rc.bodies = append(rc.bodies, body)
		rc.heads = append(rc.heads, req.Header.Clone())
		rc.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// delivered returns the bodies answered 200.
func (rc *receiver) delivered() [][]byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out [][]byte
	for _, b := range rc.bodies {
		if b != nil {
			out = append(out, b)
		}
	}
	return out
}

// attempts counts the requests that arrived, answered or not.
func (rc *receiver) attempts() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.reqs
}

func (rc *receiver) set(f func(rc *receiver)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	f(rc)
}

// webhooks decodes the delivered webhook payloads.
func (rc *receiver) webhooks(t *testing.T) []WebhookPayload {
	t.Helper()
	var out []WebhookPayload
	for _, b := range rc.delivered() {
		var p WebhookPayload
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("payload %s: %v", b, err)
		}
		out = append(out, p)
	}
	return out
}
