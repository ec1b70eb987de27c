package loadtest_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cloudwego/netpoll"
	"github.com/sockmon/sockmon/loadtest"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/protocol"
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

// TestRunRateLimitedBySockmon is issue 19's first hour: a closed-loop
// echo-json run of 20 connections from one address against the sockmon
// protocol, its message limits scaled down by ten (a busy test machine
// floods them as surely as a fast one floods the defaults). Every connection
// goes over its message rate and is closed with 1008, and the address is
// banned, so the next run's upgrades all get 429. Both runs say so in words,
// in the progress output and the report, and exit with ExitRefused.
func TestRunRateLimitedBySockmon(t *testing.T) {
	eng, err := netcore.New(netcore.Config{
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		DrainDelay:      -1,
		ShutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	pcfg := protocol.Config{MessageRate: protocol.DefaultMessageRate / 10, MessageBurst: protocol.DefaultMessageBurst / 10,
		BanAfter: protocol.DefaultBanAfter / 10}
	if _, err := protocol.New(eng, pcfg); err != nil {
		t.Fatal(err)
	}
	ln, err := netpoll.CreateListener("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- eng.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = eng.Shutdown(ctx)
		<-errc
	}()
	url := "ws://" + ln.Addr().(*net.TCPAddr).String() + protocol.DefaultPath

	for _, run := range []struct {
		name string
		want []string // in the warning
	}{
		{"flooding", []string{"messages answered rate_limited", "20 connections closed with 1008"}},
		{"banned", []string{"20 upgrades refused with 429"}},
	} {
		var progress bytes.Buffer
		rep, err := loadtest.Run(context.Background(), loadtest.Config{URL: url, Conns: 20, Duration: time.Second,
			Mode: loadtest.ModeEchoJSON, Progress: &progress, ProgressInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if code := rep.ExitCode(); code != loadtest.ExitRefused || !rep.RefusedByPolicy() {
			t.Errorf("%s: exit %d, want %d (errors %v)", run.name, code, loadtest.ExitRefused, rep.Errors.ByClass)
		}
		var text bytes.Buffer
		_ = rep.WriteText(&text)
		for _, out := range []struct{ what, text string }{{"progress", progress.String()}, {"report", text.String()}} {
			for _, w := range append(run.want, "the server is rate-limiting this client", "--message-rate 0 --conn-rate 0") {
				if out.what == "progress" && strings.Contains(w, "20 ") {
					continue // the progress line says it as soon as it starts
				}
				if !strings.Contains(out.text, w) {
					t.Errorf("%s: the %s does not say %q:\n%s", run.name, out.what, w, out.text)
				}
			}
		}
		if !strings.Contains(text.String(), "exit status 3") {
			t.Errorf("%s: the report does not explain the exit status:\n%s", run.name, text.String())
		}
	}
}
