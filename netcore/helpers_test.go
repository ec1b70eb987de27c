package netcore

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/cloudwego/netpoll"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// testServer starts a server on 127.0.0.1:0 with cfg and an echo route at
// /echo that admits everyone, and stops it when the test ends. It returns
// the server and its address.
func testServer(t testing.TB, cfg Config) (*Server, string) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.DrainDelay == 0 {
		cfg.DrainDelay = -1
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Handle(Route{Path: "/echo", Handler: Echo(), Admitter: AdmitAll()}); err != nil {
		t.Fatal(err)
	}
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
		select {
		case err := <-errc:
			if err != nil && !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after Shutdown")
		}
	})
	wstest.WaitFor(t, "server ready", srv.Ready)
	return srv, ln.Addr().(*net.TCPAddr).String()
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serveTest serves an already built server on 127.0.0.1:0 until the test
// ends and returns its address.
func serveTest(t testing.TB, srv *Server) string {
	t.Helper()
	ln, err := netpoll.CreateListener("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		<-errc
	})
	wstest.WaitFor(t, "server ready", srv.Ready)
	return ln.Addr().String()
}
