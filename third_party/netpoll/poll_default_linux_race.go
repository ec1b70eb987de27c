// Copyright 2023 CloudWeGo Authors
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

//go:build linux && race
// +build linux,race

package netpoll

import (
	"sync/atomic"
	"unsafe"
)

// In race builds an event names its descriptor and the registration's
// generation, not the operator (storing a Go pointer in the kernel's event
// data hides it from the race detector). sockmon patch 7: a descriptor is
// reused as soon as it is closed, possibly while an event harvested for
// the socket that had it before is still in the batch, which then found
// the new socket's operator and closed it (a handshake answered with EOF).
// The generation makes such an event find nothing, and a detach deletes
// only its own operator.
type eventdata struct {
	fd  int32
	gen int32
}

// operatorGens numbers registrations; 0 is "not registered".
var operatorGens atomic.Int32

func (p *defaultPoll) getOperator(fd int, ptr unsafe.Pointer) *FDOperator {
	data := *(*eventdata)(ptr)
	tmp, _ := p.m.Load(int(data.fd))
	if tmp == nil {
		return nil
	}
	op := tmp.(*FDOperator)
	if atomic.LoadInt32(&op.gen) != data.gen {
		return nil // an event for an earlier socket with this descriptor
	}
	return op
}

func (p *defaultPoll) setOperator(ptr unsafe.Pointer, operator *FDOperator) {
	gen := atomic.LoadInt32(&operator.gen)
	if gen == 0 {
		for gen == 0 {
			gen = operatorGens.Add(1)
		}
		atomic.StoreInt32(&operator.gen, gen)
	}
	*(*eventdata)(ptr) = eventdata{fd: int32(operator.FD), gen: gen}
	p.m.Store(operator.FD, operator)
}

func (p *defaultPoll) delOperator(operator *FDOperator) {
	p.m.CompareAndDelete(operator.FD, operator)
	atomic.StoreInt32(&operator.gen, 0)
}
