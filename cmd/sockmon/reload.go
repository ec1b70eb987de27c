package main

import (
	"log/slog"
	"os"
	"sync"
	"time"
)

// reloader is what `sockmon serve` does on SIGHUP (logrotate's postrotate,
// a closed terminal): it runs each registered step in order and logs how
// each went; a step that fails is logged and the others still run. The
// process never exits on SIGHUP. Register steps with add before watch
// starts; today the one step reopens the log files, and the reload work of
// other features (rule files, upstream files) goes in the same list.
type reloader struct {
	log   *slog.Logger
	steps []reloadStep
}

type reloadStep struct {
	name string
	run  func() error
}

func newReloader(log *slog.Logger) *reloader { return &reloader{log: log} }

// add registers a step; name says what it reloads ("logs").
func (r *reloader) add(name string, run func() error) {
	r.steps = append(r.steps, reloadStep{name: name, run: run})
}

// reload runs every step once.
func (r *reloader) reload() {
	start := time.Now()
	failed := 0
	for _, s := range r.steps {
		if err := s.run(); err != nil {
			failed++
			r.log.Error("reload step failed", "step", s.name, "err", err)
			continue
		}
		r.log.Info("reloaded", "step", s.name)
	}
	r.log.Info("SIGHUP handled", "steps", len(r.steps), "failed", failed,
		"durationMs", float64(time.Since(start).Microseconds())/1000)
}

// watch runs reload for each signal on sig until stop is called; stop
// waits for a reload in progress. sig must already be registered with
// signal.Notify for SIGHUP, as early as possible: until then SIGHUP's
// default action ends the process.
func (r *reloader) watch(sig <-chan os.Signal) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-sig:
				r.reload()
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
