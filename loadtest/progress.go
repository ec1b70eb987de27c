package loadtest

import (
	"fmt"
	"sync"
	"time"
)

// startProgress starts the progress reporter when cfg.Progress is set and
// returns the function that stops it; stop is idempotent and returns once
// the reporter's goroutine has ended.
func (r *run) startProgress() (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	every := r.cfg.ProgressInterval
	if r.cfg.ProgressTTY {
		every = time.Second
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(every)
		defer t.Stop()
		start := time.Now()
		var lastSent, lastRecv int64
		last := start
		limited := false // the server's rate limiting was reported
		for {
			select {
			case <-done:
				if r.cfg.ProgressTTY {
					fmt.Fprint(r.cfg.Progress, "\r\x1b[K")
				}
				return
			case now := <-t.C:
				sent, recv := r.stats.sent.Load(), r.stats.received.Load()
				if r.cfg.Mode == ModePublish {
					recv = r.stats.deliveries.Load()
				}
				dt := now.Sub(last).Seconds()
				line := fmt.Sprintf("[%6.1fs %-5s] conns %d/%d  sent %d (%.0f/s)  recv %d (%.0f/s)  p99 %.3fms  errors %d",
					now.Sub(start).Seconds(), r.phase.Load(), r.stats.established.Load(), r.cfg.Conns,
					sent, float64(sent-lastSent)/dt, recv, float64(recv-lastRecv)/dt,
					float64(r.corrected.quantile(99))/1000, r.stats.errTotal.Load())
				lastSent, lastRecv, last = sent, recv, now
				if !limited {
					// Said once in words, on a line of its own; then every
					// progress line carries a reminder.
					if w := countPolicy(r.stats.errorsByClass()).warning(); w != "" {
						limited = true
						if r.cfg.ProgressTTY {
							fmt.Fprint(r.cfg.Progress, "\r\x1b[K")
						}
						fmt.Fprintln(r.cfg.Progress, "warning: "+w)
					}
				}
				if limited {
					line += "  RATE-LIMITED by the server"
				}
				if r.cfg.ProgressTTY {
					fmt.Fprint(r.cfg.Progress, "\r\x1b[K"+line)
				} else {
					fmt.Fprintln(r.cfg.Progress, line)
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-exited
		})
	}
}
