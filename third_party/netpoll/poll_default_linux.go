// Copyright 2022 CloudWeGo Authors
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
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

func openPoll() (Poll, error) {
	return openDefaultPoll()
}

func openDefaultPoll() (*defaultPoll, error) {
	return openPollWith(new(sync.Map), newOperatorCache())
}

// openPollWith opens a poller with an epoll set of its own, whose
// operators come from opcache and are found in m in race builds (sockmon
// patch 8: a group's members share both).
func openPollWith(m *sync.Map, opcache *operatorCache) (*defaultPoll, error) {
	fd, err := EpollCreate(0)
	if err != nil {
		return nil, err
	}
	poll := &defaultPoll{fd: fd, m: m, opcache: opcache, buf: make([]byte, 8)}
	r0, _, e0 := syscall.Syscall(syscall.SYS_EVENTFD2, 0, 0, 0)
	if e0 != 0 {
		_ = syscall.Close(fd)
		return nil, e0
	}
	poll.Reset = poll.reset
	poll.Handler = poll.handler
	poll.wop = &FDOperator{FD: int(r0)}
	if err := poll.Control(poll.wop, PollReadable); err != nil {
		_ = syscall.Close(poll.wop.FD)
		_ = syscall.Close(fd)
		return nil, err
	}
	return poll, nil
}

type defaultPoll struct {
	pollArgs
	fd      int           // epoll fd
	wop     *FDOperator   // eventfd, wake epoll_wait
	buf     []byte        // read wfd trigger msg
	trigger uint32        // trigger flag
	m       *sync.Map     //nolint:unused // only used in go:race
	group   *pollGroup    // sockmon patch 8: the pollers that rescue one another, or nil
	seq     atomic.Uint64 // sockmon patch 8: odd from just before epoll_wait to the end of the batch it returns
	// sockmon patch 8, in a group: since when (monotime) this poller has
	// been blocked in epoll_wait, or inside a batch; 0 when it is not.
	waitFrom, batchFrom atomic.Int64
	lastRescue          int64          // monotime of this poller's last look at the others
	opcache             *operatorCache // operator cache
	inline              []*connection  // sockmon patch: processing to run at the end of the batch (runInline)
	// fns for handle events
	Reset   func(size, caps int)
	Handler func(events []epollevent) (closed bool)
}

type pollArgs struct {
	size     int
	caps     int
	events   []epollevent
	barriers []barrier
	hups     []func(p Poll) error
}

func (a *pollArgs) reset(size, caps int) {
	a.size, a.caps = size, caps
	a.events, a.barriers = make([]epollevent, size), make([]barrier, size)
	for i := range a.barriers {
		a.barriers[i].bs = make([][]byte, a.caps)
		a.barriers[i].ivs = make([]syscall.Iovec, a.caps)
	}
}

// Wait implements Poll.
func (p *defaultPoll) Wait() (err error) {
	// init
	caps, msec, n := barriercap, -1, 0
	p.Reset(128, caps)
	// wait
	for {
		if n == p.size && p.size < 128*1024 {
			p.Reset(p.size<<1, caps)
		}
		p.seq.Add(1) // odd: events harvested from here on may name any operator
		if msec != 0 && p.group != nil {
			p.waitFrom.Store(monotime())
		}
		n, err = EpollWait(p.fd, p.events, msec)
		if msec != 0 && p.group != nil {
			p.waitFrom.Store(0)
		}
		if err != nil && err != syscall.EINTR {
			p.seq.Add(1)
			return err
		}
		if n <= 0 {
			p.seq.Add(1)
			msec = -1
			if p.group != nil && p.group.rescue(p) {
				msec = 0
			}
			runtime.Gosched()
			continue
		}
		msec = 0
		if p.group != nil {
			p.batchFrom.Store(monotime())
		}
		if p.Handler(p.events[:n]) {
			return nil
		}
		p.seq.Add(1) // even: this poller holds no event
		// we can make sure that there is no op remaining if Handler finished
		if p.group != nil {
			p.batchFrom.Store(0)
			p.group.free(p.opcache)
			p.group.rescue(p)
		} else {
			p.opcache.free()
		}
		// sockmon patch: yield after every batch of events. A busy poller
		// otherwise polls with msec=0 without ever entering the scheduler,
		// holding its P until the 10 ms preemption, while the goroutines it
		// woke (and every other goroutine, such as a health check) wait.
		runtime.Gosched()
	}
}

func (p *defaultPoll) handler(events []epollevent) (closed bool) {
	var triggerRead, triggerWrite, triggerHup, triggerError bool
	var err error
	for i := range events {
		// sockmon patch: the previous event's connection is served as soon
		// as its operator is released, before the next socket is read.
		if len(p.inline) > 0 {
			p.runInline()
		}
		operator := p.getOperator(0, unsafe.Pointer(&events[i].data))
		if operator == nil || !operator.do() {
			continue
		}
		queued := len(p.inline)

		var totalRead int
		evt := events[i].events
		triggerRead = evt&syscall.EPOLLIN != 0
		triggerWrite = evt&syscall.EPOLLOUT != 0
		triggerHup = evt&(syscall.EPOLLHUP|syscall.EPOLLRDHUP) != 0
		triggerError = evt&syscall.EPOLLERR != 0

		// trigger or exit gracefully
		if operator.FD == p.wop.FD {
			// must clean trigger first
			syscall.Read(p.wop.FD, p.buf)
			atomic.StoreUint32(&p.trigger, 0)
			// if closed & exit
			if p.buf[0] > 0 {
				operator.done()
				p.close()
				return true
			}
			operator.done()
			continue
		}
		if p.group != nil && operator.conn == nil && p.group.wakeup(operator) {
			// Another poller's wake-up: its owner reads it (the event is
			// level-triggered, so the owner sees it too).
			operator.done()
			continue
		}

		if triggerRead {
			if operator.OnRead != nil {
				// for non-connection
				operator.OnRead(p)
			} else if operator.hasInputs() {
				// for connection
				bs := operator.inputs(p.barriers[i].bs)
				if len(bs) > 0 {
					n, err := ioread(operator.FD, bs, p.barriers[i].ivs)
					operator.inputAck(p, n)
					totalRead += n
					if err != nil {
						p.appendHup(operator)
						continue
					}
				}
			} else {
				logger.Printf("NETPOLL: operator has critical problem! event=%d operator=%v", evt, operator)
			}
		}
		if triggerHup {
			if triggerRead && operator.hasInputs() {
				// read all left data if peer send and close
				var leftRead int
				// read all left data if peer send and close
				if leftRead, err = readall(p, operator, p.barriers[i]); err != nil && !errors.Is(err, ErrEOF) {
					logger.Printf("NETPOLL: readall(fd=%d)=%d before close: %s", operator.FD, total, err.Error())
				}
				totalRead += leftRead
			}
			// only close connection if no further read bytes
			if totalRead == 0 {
				p.appendHup(operator)
				continue
			}
		}
		if triggerError {
			// Under block-zerocopy, the kernel may give an error callback, which is not a real error, just an EAGAIN.
			// So here we need to check this error, if it is EAGAIN then do nothing, otherwise still mark as hup.
			if _, _, _, _, err := syscall.Recvmsg(operator.FD, nil, nil, syscall.MSG_ERRQUEUE); err != syscall.EAGAIN {
				p.appendHup(operator)
			} else {
				p.release(operator, queued)
			}
			continue
		}
		if triggerWrite {
			if operator.OnWrite != nil {
				// for non-connection
				operator.OnWrite(p)
			} else if operator.hasOutputs() {
				// for connection
				bs, _ := operator.outputs(p.barriers[i].bs)
				if len(bs) > 0 {
					n, err := iosend(operator.FD, bs, p.barriers[i].ivs, false)
					operator.outputAck(n)
					if err != nil {
						p.appendHup(operator)
						continue
					}
				}
			} else {
				logger.Printf("NETPOLL: operator has critical problem! event=%d operator=%v", evt, operator)
			}
		}
		p.release(operator, queued)
	}
	p.runInline()
	// hup conns together to avoid blocking the poll.
	p.onhups()
	return false
}

// queueInline implements inlinePoll (sockmon patch): c, which holds its
// processing lock, is processed at the end of this batch.
func (p *defaultPoll) queueInline(c *connection) {
	p.inline = append(p.inline, c)
}

// runInline processes the connections queued by this batch's input, on the
// poller, after every ready socket was read and every operator released
// (so a drained input buffer can be pooled again, see Release).
func (p *defaultPoll) runInline() {
	for i, c := range p.inline {
		p.inline[i] = nil
		op := c.operator
		(*requestTask)(c).Run()
		// Release the socket to the pollers; not if the connection was
		// closed meanwhile (unused took it from opHeld).
		atomic.CompareAndSwapInt32(&op.state, opHeld, 1)
	}
	p.inline = p.inline[:0]
}

// Close will write 10000000
func (p *defaultPoll) Close() error {
	_, err := syscall.Write(p.wop.FD, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	return err
}

// Trigger implements Poll.
func (p *defaultPoll) Trigger() error {
	if atomic.AddUint32(&p.trigger, 1) > 1 {
		return nil
	}
	// MAX(eventfd) = 0xfffffffffffffffe
	_, err := syscall.Write(p.wop.FD, []byte{0, 0, 0, 0, 0, 0, 0, 1})
	return err
}

// Control implements Poll.
func (p *defaultPoll) Control(operator *FDOperator, event PollEvent) error {
	// DON'T move `fd=operator.FD` behind inuse() call, we can only access operator before op.inuse() for avoid race
	// G1:              G2:
	// op.inuse()       op.unused()
	// op.FD  -- T1     op.FD = 0  -- T2
	// T1 and T2 may happen together
	fd := operator.FD
	var op int
	var evt epollevent
	p.setOperator(unsafe.Pointer(&evt.data), operator)
	switch event {
	case PollReadable: // server accept a new connection and wait read
		operator.inuse()
		op, evt.events = syscall.EPOLL_CTL_ADD, syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLERR
	case PollWritable: // client create a new connection and wait connect finished
		operator.inuse()
		op, evt.events = syscall.EPOLL_CTL_ADD, EPOLLET|syscall.EPOLLOUT|syscall.EPOLLRDHUP|syscall.EPOLLERR
	case PollDetach: // deregister
		p.delOperator(operator)
		op, evt.events = syscall.EPOLL_CTL_DEL, syscall.EPOLLIN|syscall.EPOLLOUT|syscall.EPOLLRDHUP|syscall.EPOLLERR
	case PollR2RW: // connection wait read/write
		op, evt.events = syscall.EPOLL_CTL_MOD, syscall.EPOLLIN|syscall.EPOLLOUT|syscall.EPOLLRDHUP|syscall.EPOLLERR
	case PollRW2R: // connection wait read
		op, evt.events = syscall.EPOLL_CTL_MOD, syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLERR
	}
	return EpollCtl(p.fd, op, fd, &evt)
}

// close ends this poller: its eventfd and epoll set.
func (p *defaultPoll) close() {
	if p.group != nil {
		p.group.close()
	}
	syscall.Close(p.wop.FD)
	syscall.Close(p.fd)
}

// release ends the handling of operator's event. When the event queued its
// connection's processing (the inline queue held queued entries before it),
// the processing runs on this poller next, and until it ends no poller
// reads the socket (opHeld, runInline).
func (p *defaultPoll) release(operator *FDOperator, queued int) {
	if len(p.inline) > queued {
		atomic.StoreInt32(&operator.state, opHeld)
		return
	}
	operator.done()
}
