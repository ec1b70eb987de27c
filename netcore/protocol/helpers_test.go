package protocol

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudwego/netpoll"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// node is an engine serving the protocol, as `sockmon serve` wires them.
type node struct {
	*netcore.Server
	*Service
}

// Connections is the protocol's (with rooms), not the engine's.
func (n *node) Connections(q ConnQuery) (ConnPage, error) { return n.Service.Connections(q) }

// testServer starts an engine with the protocol on 127.0.0.1:0 and stops it
// when the test ends; engine adjusts the engine's Config. It returns the
// node and its address.
func testServer(t testing.TB, cfg Config, engine ...func(*netcore.Config)) (*node, string) {
	t.Helper()
	ecfg := netcore.Config{Logger: discardLogger(), DrainDelay: -1, ShutdownTimeout: 5 * time.Second}
	for _, f := range engine {
		f(&ecfg)
	}
	n := newNode(t, ecfg, cfg)
	return n, serveTest(t, n.Server)
}

// newNode builds an engine with the protocol without serving it.
func newNode(t testing.TB, ecfg netcore.Config, cfg Config) *node {
	t.Helper()
	eng, err := netcore.New(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(eng, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &node{eng, svc}
}

// serveTest serves an already built engine on 127.0.0.1:0 until the test
// ends and returns its address.
func serveTest(t testing.TB, srv *netcore.Server) string {
	t.Helper()
	ln, err := netpoll.CreateListener("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-errc; err != nil && !errors.Is(err, netcore.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	wstest.WaitFor(t, "server ready", srv.Ready)
	return ln.Addr().String()
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// queuedBytes reads sockmon_outbound_queued_bytes.
func (n *node) queuedBytes() int {
	var b strings.Builder
	n.Metrics().WritePrometheus(&b)
	for _, l := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(l, "sockmon_outbound_queued_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int(f)
		}
	}
	return -1
}
