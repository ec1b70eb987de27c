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
	"runtime"
	"sync/atomic"
)

// FDOperator is a collection of operations on file descriptors.
type FDOperator struct {
	// FD is file descriptor, poll will bind when register.
	FD int

	// The FDOperator provides three operations of reading, writing, and hanging.
	// The poll actively fire the FDOperator when fd changes, no check the return value of FDOperator.
	OnRead  func(p Poll) error
	OnWrite func(p Poll) error
	OnHup   func(p Poll) error

	// conn (sockmon patch), when set, is the connection whose inputs,
	// inputAck, outputs, outputAck and onHup the poller calls. Upstream
	// kept them as five method values in function fields (Inputs,
	// InputAck, Outputs, OutputAck and OnHup), 80 bytes a connection plus
	// 32 of FDOperator; only connections used the first four, so they are
	// gone. Pollers go through the methods below.
	conn *connection

	// poll is the registered location of the file descriptor.
	poll Poll

	// protect only detach once
	detached int32
	// gen (sockmon patch) tells this registration of the operator from
	// earlier ones in race builds, whose events name descriptors, not
	// operators (poll_default_linux_race.go). It fills padding: no growth.
	gen int32

	// private, used by operatorCache
	next  *FDOperator
	state int32 // CAS: 0(unused) 1(inuse) 2(do-done) 3(opHeld)
	index int32 // index in operatorCache
}

func (op *FDOperator) Control(event PollEvent) error {
	if event == PollDetach && atomic.AddInt32(&op.detached, 1) > 1 {
		return nil
	}
	return op.poll.Control(op, event)
}

func (op *FDOperator) Free() {
	op.poll.Free(op)
}

// opHeld (sockmon patch 8) is the state of an operator whose connection's
// input is being processed on the poller that read it (Config.Inline): no
// poller reads the socket until that processing ends (defaultPoll.runInline),
// so the processing finds exactly the input Config.Inline looked at, even
// when another poller rescues this one's set (Config.PollerRescue).
const opHeld = 3

func (op *FDOperator) do() (can bool) {
	return atomic.CompareAndSwapInt32(&op.state, 1, 2)
}

func (op *FDOperator) done() {
	atomic.StoreInt32(&op.state, 1)
}

func (op *FDOperator) inuse() {
	for !atomic.CompareAndSwapInt32(&op.state, 0, 1) {
		if atomic.LoadInt32(&op.state) == 1 {
			return
		}
		runtime.Gosched()
	}
}

func (op *FDOperator) unused() {
	for !atomic.CompareAndSwapInt32(&op.state, 1, 0) {
		// held: the connection is closed by its own processing on the
		// poller (or alongside it), which must not wait for itself.
		if atomic.CompareAndSwapInt32(&op.state, opHeld, 0) || atomic.LoadInt32(&op.state) == 0 {
			return
		}
		runtime.Gosched()
	}
}

func (op *FDOperator) isUnused() bool {
	return atomic.LoadInt32(&op.state) == 0
}

func (op *FDOperator) reset() {
	op.FD = 0
	op.OnRead, op.OnWrite, op.OnHup = nil, nil, nil
	op.conn = nil
	op.poll = nil
	op.detached = 0
}

// The calls a poller makes to a connection (sockmon patch, see
// FDOperator.conn).

func (op *FDOperator) hasInputs() bool  { return op.conn != nil }
func (op *FDOperator) hasOutputs() bool { return op.conn != nil }

func (op *FDOperator) inputs(vs [][]byte) [][]byte          { return op.conn.inputs(vs) }
func (op *FDOperator) inputAck(p Poll, n int) error         { return op.conn.inputAck(p, n) }
func (op *FDOperator) outputs(vs [][]byte) ([][]byte, bool) { return op.conn.outputs(vs) }
func (op *FDOperator) outputAck(n int) error                { return op.conn.outputAck(n) }

// hupFunc returns the function to call when the descriptor hangs up.
func (op *FDOperator) hupFunc() func(p Poll) error {
	if op.conn != nil {
		return op.conn.onHup
	}
	return op.OnHup
}
