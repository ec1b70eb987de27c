package netcore

import (
	"context"
	"time"

	"github.com/cloudwego/netpoll"
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
//
// Tasks are netpoll.Tasks: a connection's processing of its input is the
// connection itself (patch 5 in third_party/netpoll/PATCHES.md), so an
// input event hands a worker a pointer and allocates nothing; a func is a
// funcTask, which is pointer-shaped and does not allocate either.
type runner struct {
	tasks chan netpoll.Task // unbuffered: a send succeeds only to an idle worker
}

const workerKeepAlive = 10 * time.Second

var taskRunner = &runner{tasks: make(chan netpoll.Task)}

// runTask is netpoll's Runner signature.
func runTask(_ context.Context, f func()) { taskRunner.run(f) }

// runConnTask is netpoll's TaskRunner signature.
func runConnTask(_ context.Context, t netpoll.Task) { taskRunner.runT(t) }

// funcTask runs a func as a netpoll.Task.
type funcTask func()

func (f funcTask) Run() { f() }

// run runs f on an idle worker, or on a new one.
func (r *runner) run(f func()) { r.runT(funcTask(f)) }

// runT runs t on an idle worker, or on a new one.
func (r *runner) runT(t netpoll.Task) {
	select {
	case r.tasks <- t:
	default:
		go r.worker(t)
	}
}

// worker runs t, then tasks from r.tasks until a whole workerKeepAlive
// passes without one. The idle timer is not re-armed per task (that costs
// more than a small task): a counter says whether there was work since the
// timer last fired, so a worker exits between one and two keep-alives after
// its last task.
func (r *runner) worker(t netpoll.Task) {
	t.Run()
	done, seen := 0, 0
	idle := time.NewTimer(workerKeepAlive)
	defer idle.Stop()
	for {
		select {
		case t = <-r.tasks:
			t.Run()
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
