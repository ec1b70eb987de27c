// Copyright 2024 CloudWeGo Authors
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
	"github.com/cloudwego/netpoll/internal/runner"

	"context"
	"io"
)

// Task is work for Config.TaskRunner (sockmon patch).
type Task = runner.Task

// global config
var (
	defaultLinkBufferSize   = pagesize
	featureAlwaysNoCopyRead = false
)

// Config expose some tuning parameters to control the internal behaviors of netpoll.
// Every parameter with the default zero value should keep the default behavior of netpoll.
type Config struct {
	PollerNum  int                                 // number of pollers
	BufferSize int                                 // default size of a new connection's LinkBuffer
	Runner     func(ctx context.Context, f func()) // runner for event handler, most of the time use a goroutine pool.
	TaskRunner func(ctx context.Context, t Task)   // sockmon patch: runner for a connection's input processing, with no closure; default: Runner(ctx, t.Run)
	// Inline (sockmon patch), when set, is asked on the poller whenever
	// input arrives for a connection whose processing is not running
	// (ctx is the connection's context). True runs that processing on the
	// poller itself, once the poller has read every ready socket of the
	// batch, instead of handing it to TaskRunner. It must be cheap, and
	// say true only when the processing cannot block: it would block the
	// poller and every connection on it.
	Inline func(ctx context.Context) bool
	// PollerRescue (sockmon patch 8), when set on Linux, has the pollers
	// rescue one another: what is ready in the epoll set of a poller that
	// has been inside one batch, or blocked, for over 250 µs (its
	// thread preempted by the kernel) is served by another, so a preempted
	// poller holds up only the batch it is in, not every connection
	// registered with it (poll_group_linux.go). Set it before the first
	// connection; other systems ignore it.
	PollerRescue bool
	LoggerOutput io.Writer   // logger output
	LoadBalance  LoadBalance // load balance for poller picker
	Feature                  // define all features that not enable by default
}

// Feature expose some new features maybe promoted as a default behavior but not yet.
type Feature struct {
	// AlwaysNoCopyRead allows some copy Read functions like ReadBinary/ReadString
	// will use NoCopy read and will not reuse the underlying buffer.
	// It gains more performance benefits when need read much big string/bytes in codec.
	AlwaysNoCopyRead bool
}
