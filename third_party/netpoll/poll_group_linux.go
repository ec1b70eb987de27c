// Copyright 2026 sockmon authors
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//    http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

package netpoll

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// sockmon patch 8: pollers that rescue one another (Config.PollerRescue).
//
// Upstream gives each poller an epoll set of its own and registers each
// connection with one of them, so a poller whose thread the kernel
// preempts (on a machine whose cores it shares with other processes) holds
// up every connection registered with it until it runs again: on 2 shared
// cores, for 3-10 ms at a time. Pollers of a group keep their own sets, so
// a connection is read on the same poller, and core, while that poller
// keeps up. But a member that has been inside one batch, or blocked in
// epoll_wait, for over rescueAfter is late: the others, between their own
// batches, take the events ready in its set and serve them (rescue). The
// events are level-triggered, so a socket is reported to its owner and to
// a rescuer alike until one reads it; operator.do lets one handle it at a
// time, and an operator held by processing on a poller (opHeld) is read by
// no other.
//
// Pollers wait in epoll_wait with no time-out, as upstream's do: a poller
// that wakes every millisecond to look at the others keeps its P (Go's
// sysmon leaves a P in a short system call to it), and goroutines readied
// meanwhile waited for it (netcore/protocol's allocation tests, 100
// pipelined round trips at a time under parallel load, took up to 2 s
// instead of 0.1). So only a poller that is running rescues; when none is,
// the group's watchdog (watch) wakes a waiting one.
//
// What the members share: the operator cache and, in race builds, the
// descriptor-to-operator map. An operator freed after its socket left its
// set may still be named by an event in another member's batch, so the
// group pools freed operators again only once every member that was inside
// a batch when they were freed has finished it (pollGroup.free,
// defaultPoll.seq).
type pollGroup struct {
	members atomic.Pointer[[]*defaultPoll]
	mu      sync.Mutex // adding members; the watchdog's wake-ups against close
	closed  atomic.Bool

	// Guarded by the operator cache's freelocked: operators freed before
	// the members' seqs were marks, reusable once each member whose mark
	// is odd (inside a batch) has moved on.
	retired []int32
	marks   []uint64
}

const (
	// rescueAfter is how long a member may stay inside one batch, or
	// blocked in epoll_wait, before the others serve what is ready in its
	// set.
	// A batch takes 10-50 µs when the cores are free; at 30,000 msg/s on 2
	// shared cores, 250 µs gave a p99 of 0.35 ms against 0.55 with 1 ms (4
	// alternated runs each), at the same CPU per message in the closed
	// loop (16 pairs: 1.01).
	rescueAfter = 250 * time.Microsecond
	// rescueEvery bounds how often a poller looks at the others.
	rescueEvery = 100 * time.Microsecond
	// watchEvery is the watchdog's period while the pollers are busy, and
	// watchIdle its longest while they are not.
	watchEvery = 5 * time.Millisecond
	watchIdle  = 100 * time.Millisecond
)

// pollEpoch is the origin of monotime.
var pollEpoch = time.Now()

// monotime is monotonic nanoseconds, never 0.
func monotime() int64 { return int64(time.Since(pollEpoch)) + 1 }

// openRescuePoll opens a poller of first's group (Config.PollerRescue), or
// the first poller of a new group when first is nil.
func openRescuePoll(first Poll) (Poll, error) {
	if first == nil {
		p, err := openDefaultPoll()
		if err != nil {
			return nil, err
		}
		g := &pollGroup{}
		g.members.Store(&[]*defaultPoll{p})
		p.group = g
		go g.watch()
		return p, nil
	}
	f := first.(*defaultPoll)
	g := f.group
	p, err := openPollWith(f.m, f.opcache)
	if err != nil {
		return nil, err
	}
	p.group = g
	g.mu.Lock()
	members := append(append([]*defaultPoll(nil), *g.members.Load()...), p)
	g.members.Store(&members)
	g.mu.Unlock()
	return p, nil
}

// overdue reports whether a state entered at since (monotime; 0: not in
// it) has lasted over rescueAfter at now.
func overdue(since, now int64) bool { return since != 0 && now-since > int64(rescueAfter) }

// late reports whether p has been inside one batch, or blocked in
// epoll_wait, for over rescueAfter at now.
func (p *defaultPoll) late(now int64) bool {
	return overdue(p.batchFrom.Load(), now) || overdue(p.waitFrom.Load(), now)
}

// rescue serves, on member p between its batches, what is ready in the set
// of every late member (its thread not running, or the kernel late to
// wake it). It looks at most once per rescueEvery and reports whether it
// served anything.
func (g *pollGroup) rescue(p *defaultPoll) (served bool) {
	now := monotime()
	if now-p.lastRescue < int64(rescueEvery) {
		return false
	}
	p.lastRescue = now
	for _, m := range *g.members.Load() {
		if m == p || !m.late(now) || g.closed.Load() {
			continue
		}
		p.seq.Add(1)
		n, _ := EpollWait(m.fd, p.events, 0)
		if n > 0 {
			served = true
			p.Handler(p.events[:n]) // m's wake-up is left to m
		}
		p.seq.Add(1)
		g.free(p.opcache)
		if n > 0 && m.waitFrom.Load() != 0 {
			// The kernel puts a level-triggered socket still ready back
			// on m's ready list without waking m: a connection with more
			// than one read's worth waiting would wait for m's next
			// wake-up.
			_ = m.Trigger()
		}
	}
	return served
}

// watch is the group's watchdog: when a member has been inside one batch
// for over rescueAfter while another waits in epoll_wait (so no running
// poller will rescue it), it wakes the waiting one, which rescues the late
// one after its wake-up. It looks every watchEvery while the pollers are
// busy, and backs off to watchIdle while none has handled anything since
// its last look, so an idle server is woken 10 times a second, not 200.
func (g *pollGroup) watch() {
	period := watchEvery
	var seqs []uint64
	for {
		time.Sleep(period)
		g.mu.Lock()
		if g.closed.Load() {
			g.mu.Unlock()
			return
		}
		now := monotime()
		members := *g.members.Load()
		seqs = slices.Grow(seqs, len(members))[:len(members)]
		busy, woke := false, false
		for i, m := range members {
			b, seq := m.batchFrom.Load(), m.seq.Load()
			busy = busy || b != 0 || seq != seqs[i]
			seqs[i] = seq
			if !woke && overdue(b, now) {
				woke = wakeWaiting(members, m)
			}
		}
		g.mu.Unlock()
		if busy {
			period = watchEvery
		} else {
			period = min(2*period, watchIdle)
		}
	}
}

// wakeWaiting wakes a member other than stuck that waits in epoll_wait,
// and reports whether there was one.
func wakeWaiting(members []*defaultPoll, stuck *defaultPoll) bool {
	for _, w := range members {
		if w != stuck && w.waitFrom.Load() != 0 {
			_ = w.Trigger()
			return true
		}
	}
	return false
}

// close marks the group closed once a member closes (netpoll closes all
// its pollers together; sockmon never does): the watchdog stops before it
// could wake a closed eventfd, and members no longer rescue one another.
func (g *pollGroup) close() {
	g.mu.Lock()
	g.closed.Store(true)
	g.mu.Unlock()
}

// wakeup reports whether op is the eventfd of a member.
func (g *pollGroup) wakeup(op *FDOperator) bool {
	for _, m := range *g.members.Load() {
		if m.wop == op {
			return true
		}
	}
	return false
}

// free is operatorCache.free for a group, called by a member between
// batches: operators retired earlier go back to the cache once no member
// can hold an event for them, and those freed since are retired.
func (g *pollGroup) free(c *operatorCache) {
	lock(&c.freelocked)
	defer unlock(&c.freelocked)
	members := *g.members.Load()
	if len(g.retired) > 0 {
		for i, mark := range g.marks {
			if mark&1 == 1 && members[i].seq.Load() == mark {
				return // still in the batch it was in
			}
		}
		c.pool(g.retired)
		g.retired = g.retired[:0]
	}
	if len(c.freelist) == 0 {
		return
	}
	g.retired, c.freelist = c.freelist, g.retired
	g.marks = g.marks[:0]
	for _, m := range members {
		g.marks = append(g.marks, m.seq.Load())
	}
}
