package loadtest_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/cloudwego/netpoll"
	"github.com/sockmon/sockmon/loadtest"
	"github.com/sockmon/sockmon/netcore"
)

// TestRunAgainstSockmon is a short real run against sockmon's own engine
// (netcore with an echo route), in the open model and in echo-json.
func TestRunAgainstSockmon(t *testing.T) {
	srv, err := netcore.New(netcore.Config{
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		DrainDelay:      -1,
		ShutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Handle(netcore.Route{Path: "/echo", Handler: netcore.Echo(), Admitter: netcore.AdmitAll()}); err != nil {
		t.Fatal(err)
	}
	ln, err := netpoll.CreateListener("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-errc
	}()
	url := "ws://" + ln.Addr().(*net.TCPAddr).String() + "/echo"

	for _, cfg := range []loadtest.Config{
		{URL: url, Conns: 300, Ramp: 2000, Rate: 3000, Duration: 2 * time.Second},
		{URL: url, Conns: 50, Rate: 1000, Duration: time.Second, Mode: loadtest.ModeEchoJSON, Size: 200},
	} {
		rep, err := loadtest.Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Connections.Established != int64(cfg.Conns) || rep.Errors.Total != 0 ||
			rep.Messages.Received != rep.Messages.Sent || *rep.Messages.RateRatio < 0.95 {
			t.Errorf("%s: established %d, sent %d, received %d, achieved %.0f/s, errors %v", cfg.Mode,
				rep.Connections.Established, rep.Messages.Sent, rep.Messages.Received, rep.Messages.AchievedRate, rep.Errors.ByClass)
		}
	}
}
