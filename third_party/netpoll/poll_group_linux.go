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
	"sync"
	"sync/atomic"
)

// sockmon patch 8: pollers that share one epoll set (Config.SharedPoll).
//
// Upstream gives each poller an epoll set of its own and registers each
// connection with one of them, so a poller whose thread the kernel
// preempts (on a machine whose cores it shares with other processes) holds
// up every connection registered with it until it runs again. Pollers of a
// group wait on one epoll set instead: whichever poller is in epoll_wait
// takes the next ready socket, and a preempted poller holds up only the
// events of the batch it is in. The events are level-triggered, so a
// socket is reported to every poller until one reads it; operator.do lets
// exactly one handle it, the others skip it.
//
// What the members share: the epoll set, the operator cache and, in race
// builds, the descriptor-to-operator map. An operator freed after its
// socket left the set may still be named by an event in the batch of
// another member, so the group pools freed operators again only once
// every member that was inside a batch when they were freed has finished
// it (pollGroup.free, defaultPoll.seq).
type pollGroup struct {
	members atomic.Pointer[[]*defaultPoll]
	mu      sync.Mutex // adding members, leave
	open    int

	// Guarded by the operator cache's freelocked: operators freed before
	// the members' seqs were marks, reusable once each member whose mark
	// is odd (inside a batch) has moved on.
	retired []int32
	marks   []uint64
}

// openGroupPoll opens a poller of first's group, or the first poller of a
// new group when first is nil.
func openGroupPoll(first Poll) (Poll, error) {
	if first == nil {
		p, err := openDefaultPoll()
		if err != nil {
			return nil, err
		}
		g := &pollGroup{open: 1}
		g.members.Store(&[]*defaultPoll{p})
		p.group = g
		return p, nil
	}
	f := first.(*defaultPoll)
	g := f.group
	p, err := newPollOn(f.fd, f.m)
	if err != nil {
		return nil, err
	}
	p.opcache, p.group = f.opcache, g
	g.mu.Lock()
	members := append(append([]*defaultPoll(nil), *g.members.Load()...), p)
	g.members.Store(&members)
	g.open++
	g.mu.Unlock()
	return p, nil
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

// leave reports whether the closing member was the last one open, which
// closes the epoll set.
func (g *pollGroup) leave() (last bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open--
	return g.open == 0
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
