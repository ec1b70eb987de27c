package netcore

import (
	"context"
	"time"
)

// runner runs netpoll's per-connection tasks (and our asynchronous flushes)
// on reused goroutines. netpoll's default pool lets a worker exit as soon as
// its queue is empty, so a request/reply connection spawns a goroutine (and
// allocates) on every message; here an idle worker waits for the next task
// for workerKeepAlive before it exits. A task never waits for a worker: when
// none is idle, a new one starts, so tasks that block (a reader waiting for
// the rest of a frame, a flush to a slow peer) cannot starve the others.
//
// netpoll's runner is process-wide, so there is one runner per process. Its
// goroutines only exist while there is work or shortly after: an idle
// connection holds none.
type runner struct {
	tasks chan func() // unbuffered: a send succeeds only to an idle worker
}

const workerKeepAlive = 10 * time.Second

var taskRunner = &runner{tasks: make(chan func())}

// runTask is netpoll's Runner signature.
func runTask(_ context.Context, f func()) { taskRunner.run(f) }

// run runs f on an idle worker, or on a new one.
func (r *runner) run(f func()) {
	select {
	case r.tasks <- f:
	default:
		go r.worker(f)
	}
}

// worker runs f, then tasks from r.tasks until a whole workerKeepAlive
// passes without one. The idle timer is not re-armed per task (that costs
// more than a small task): a counter says whether there was work since the
// timer last fired, so a worker exits between one and two keep-alives after
// its last task.
func (r *runner) worker(f func()) {
	f()
	done, seen := 0, 0
	idle := time.NewTimer(workerKeepAlive)
	defer idle.Stop()
	for {
		select {
		case f = <-r.tasks:
			f()
			done++
		case <-idle.C:
			if done == seen {
				return
			}
			seen = done
			idle.Reset(workerKeepAlive)
		}
	}
}
