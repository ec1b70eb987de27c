package main

import (
	"errors"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/sockmon/sockmon/netcore/wstest"
)

// Every step runs on each signal, in order; a failing step is logged and
// does not stop the others; stop ends the goroutine.
func TestReloaderRunsEveryStep(t *testing.T) {
	var out lockedBuffer
	r := newReloader(slog.New(slog.NewJSONHandler(&out, nil)))
	var ran []string
	r.add("first", func() error { ran = append(ran, "first"); return errors.New("disk full") })
	r.add("second", func() error { ran = append(ran, "second"); return nil })
	sig := make(chan os.Signal, 1)
	stop := r.watch(sig)
	sig <- syscall.SIGHUP
	wstest.WaitFor(t, "the reload", func() bool { return strings.Contains(out.String(), "SIGHUP handled") })
	stop()
	if strings.Join(ran, ",") != "first,second" {
		t.Fatalf("steps ran: %v", ran)
	}
	logs := out.String()
	for _, want := range []string{`"msg":"reload step failed","step":"first","err":"disk full"`, `"msg":"reloaded","step":"second"`, `"failed":1`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}
