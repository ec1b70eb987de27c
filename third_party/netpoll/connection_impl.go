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

//go:build !windows
// +build !windows

package netpoll

import (
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type connState = int32

const (
	connStateNone         = 0
	connStateConnected    = 1
	connStateDisconnected = 2
)

// connection is the implement of Connection
type connection struct {
	netFD
	onEvent
	locker
	operator      *FDOperator
	readTimeout   time.Duration
	readDeadline  int64 // UnixNano(). it overwrites readTimeout. 0 if not set.
	readTimer     *time.Timer
	readTrigger   lazyTrigger
	waitReadSize  int64
	writeTimeout  time.Duration
	writeDeadline int64 // UnixNano(). it overwrites writeTimeout. 0 if not set.
	writeTimer    *time.Timer
	writeTrigger  lazyTrigger
	// sockmon patch: the buffers are idleBuffer while empty; see in, out
	// and outw.
	inputBuffer  atomic.Pointer[LinkBuffer]
	outputBuffer atomic.Pointer[LinkBuffer]
	maxSize      int       // The maximum size of data between two Release().
	bookSize     int       // The size of data that can be read at once.
	state        connState // Connection state should be changed sequentially.
}

var (
	_ Connection = &connection{}
	_ Reader     = &connection{}
	_ Writer     = &connection{}
)

// Reader implements Connection.
func (c *connection) Reader() Reader {
	return c
}

// Writer implements Connection.
func (c *connection) Writer() Writer {
	return c
}

// IsActive implements Connection.
func (c *connection) IsActive() bool {
	return c.isCloseBy(none)
}

// SetIdleTimeout implements Connection.
func (c *connection) SetIdleTimeout(timeout time.Duration) error {
	if timeout > 0 {
		return c.SetKeepAlive(int(timeout.Seconds()))
	}
	return nil
}

// SetReadTimeout implements Connection.
func (c *connection) SetReadTimeout(timeout time.Duration) error {
	if timeout >= 0 {
		c.readTimeout = timeout
	}
	c.readDeadline = 0
	return nil
}

// SetWriteTimeout implements Connection.
func (c *connection) SetWriteTimeout(timeout time.Duration) error {
	if timeout >= 0 {
		c.writeTimeout = timeout
	}
	c.writeDeadline = 0
	return nil
}

// SetDeadline implements net.Conn.SetDeadline
func (c *connection) SetDeadline(t time.Time) error {
	v := int64(0)
	if !t.IsZero() {
		v = t.UnixNano()
	}
	c.readDeadline = v
	c.writeDeadline = v
	return nil
}

// SetReadDeadline implements net.Conn.SetReadDeadline
func (c *connection) SetReadDeadline(t time.Time) error {
	if t.IsZero() {
		c.readDeadline = 0
	} else {
		c.readDeadline = t.UnixNano()
	}
	return nil
}

// SetWriteDeadline implements net.Conn.SetWriteDeadline
func (c *connection) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		c.writeDeadline = 0
	} else {
		c.writeDeadline = t.UnixNano()
	}
	return nil
}

// ------------------------------------------ implement zero-copy reader ------------------------------------------

// Next implements Connection.
func (c *connection) Next(n int) (p []byte, err error) {
	if err = c.waitRead(n); err != nil {
		return p, err
	}
	return c.in().Next(n)
}

// Peek implements Connection.
func (c *connection) Peek(n int) (buf []byte, err error) {
	if err = c.waitRead(n); err != nil {
		return buf, err
	}
	return c.in().Peek(n)
}

// Skip implements Connection.
func (c *connection) Skip(n int) (err error) {
	if err = c.waitRead(n); err != nil {
		return err
	}
	return c.in().Skip(n)
}

// Release implements Connection.
func (c *connection) Release() (err error) {
	// Check inputBuffer length first to reduce contention in mux situation.
	// c.operator.do competes with c.inputs/c.inputAck
	// sockmon patch 8: processing on the poller holds the operator already.
	held := c.status(processing) == processingInline && atomic.LoadInt32(&c.operator.state) == opHeld
	if c.in().Len() == 0 && (held || c.operator.do()) {
		maxSize := c.in().calcMaxSize()
		// Set the maximum value of maxsize equal to mallocMax to prevent GC pressure.
		if maxSize > mallocMax {
			maxSize = mallocMax
		}

		if maxSize > c.maxSize {
			c.maxSize = maxSize
		}
		// Double check length, then pool the buffer (sockmon patch): a
		// connection with nothing to read holds none, and the poller,
		// excluded by operator.do, takes one when bytes arrive (inputs).
		// Upstream only replaced a tail node over 8 KiB (resetTail).
		if b := c.in(); b != idleBuffer && b.Len() == 0 {
			c.inputBuffer.Store(idleBuffer)
			putLinkBuffer(b)
		}
		if !held {
			c.operator.done()
		}
	}
	if b := c.in(); b != idleBuffer {
		return b.Release()
	}
	return nil
}

// Slice implements Connection.
func (c *connection) Slice(n int) (r Reader, err error) {
	if err = c.waitRead(n); err != nil {
		return nil, err
	}
	return c.in().Slice(n)
}

// Len implements Connection.
func (c *connection) Len() (length int) {
	return c.in().Len()
}

// Until implements Connection.
func (c *connection) Until(delim byte) (line []byte, err error) {
	var n, l int
	for {
		if err = c.waitRead(n + 1); err != nil {
			// return all the data in the buffer
			line, _ = c.in().Next(c.in().Len())
			return
		}

		l = c.in().Len()
		i := c.in().indexByte(delim, n)
		if i < 0 {
			n = l // skip all exists bytes
			continue
		}
		return c.Next(i + 1)
	}
}

// ReadString implements Connection.
func (c *connection) ReadString(n int) (s string, err error) {
	if err = c.waitRead(n); err != nil {
		return s, err
	}
	return c.in().ReadString(n)
}

// ReadBinary implements Connection.
func (c *connection) ReadBinary(n int) (p []byte, err error) {
	if err = c.waitRead(n); err != nil {
		return p, err
	}
	return c.in().ReadBinary(n)
}

// ReadByte implements Connection.
func (c *connection) ReadByte() (b byte, err error) {
	if err = c.waitRead(1); err != nil {
		return b, err
	}
	return c.in().ReadByte()
}

// ------------------------------------------ implement zero-copy writer ------------------------------------------

// Malloc implements Connection.
func (c *connection) Malloc(n int) (buf []byte, err error) {
	return c.outw().Malloc(n)
}

// MallocLen implements Connection.
func (c *connection) MallocLen() (length int) {
	return c.out().MallocLen()
}

// Flush will send all malloc data to the peer,
// so must confirm that the allocated bytes have been correctly assigned.
//
// Flush first checks whether the out buffer is empty.
// If empty, it will call syscall.Write to send data directly,
// otherwise the buffer will be sent asynchronously by the epoll trigger.
func (c *connection) Flush() error {
	if !c.IsActive() {
		return Exception(ErrConnClosed, "when flush")
	}

	if !c.lock(flushing) {
		return Exception(ErrConcurrentAccess, "when flush")
	}
	defer c.unlock(flushing)

	if b := c.out(); b != idleBuffer {
		b.Flush()
	}
	return c.flush()
}

// FlushNoWait (sockmon patch) makes the written data visible and sends as
// much of the output buffer as the socket takes in one sendmsg, without
// waiting for the socket to become writable. It reports whether the output
// buffer is now empty; if not, the caller must call Flush later to send the
// rest. Like Flush, it must not be called concurrently with other writes.
func (c *connection) FlushNoWait() (complete bool, err error) {
	if !c.IsActive() {
		return false, Exception(ErrConnClosed, "when flush")
	}
	if !c.lock(flushing) {
		return false, Exception(ErrConcurrentAccess, "when flush")
	}
	defer c.unlock(flushing)
	if c.out() == idleBuffer {
		return true, nil
	}
	c.out().Flush()
	if c.out().IsEmpty() {
		c.dropOutput() // as in flush
		return true, nil
	}
	barrier := barrierPool.Get().(*barrier)
	bs := c.out().GetBytes(barrier.bs)
	n, err := sendmsg(c.fd, bs, barrier.ivs, false)
	clear(barrier.bs)
	barrierPool.Put(barrier)
	if err != nil && err != syscall.EAGAIN {
		return false, Exception(err, "when flush")
	}
	if n > 0 {
		err = c.out().Skip(n)
		c.out().Release()
		if err != nil {
			return false, Exception(err, "when flush")
		}
	}
	if c.out().IsEmpty() {
		c.dropOutput() // as in flush
		return true, nil
	}
	return false, nil
}

// MallocAck implements Connection.
func (c *connection) MallocAck(n int) (err error) {
	return c.outw().MallocAck(n)
}

// Append implements Connection.
func (c *connection) Append(w Writer) (err error) {
	return c.outw().Append(w)
}

// WriteString implements Connection.
func (c *connection) WriteString(s string) (n int, err error) {
	return c.outw().WriteString(s)
}

// WriteBinary implements Connection.
func (c *connection) WriteBinary(b []byte) (n int, err error) {
	return c.outw().WriteBinary(b)
}

// WriteDirect implements Connection.
func (c *connection) WriteDirect(p []byte, remainCap int) (err error) {
	return c.outw().WriteDirect(p, remainCap)
}

// WriteByte implements Connection.
func (c *connection) WriteByte(b byte) (err error) {
	return c.outw().WriteByte(b)
}

// ------------------------------------------ implement net.Conn ------------------------------------------

// Read behavior is the same as net.Conn, it will return io.EOF if buffer is empty.
func (c *connection) Read(p []byte) (n int, err error) {
	l := len(p)
	if l == 0 {
		return 0, nil
	}
	if err = c.waitRead(1); err != nil {
		return 0, err
	}
	if has := c.in().Len(); has < l {
		l = has
	}
	src, err := c.in().Next(l)
	n = copy(p, src)
	if err == nil {
		err = c.in().Release()
	}
	return n, err
}

// Write will Flush soon.
func (c *connection) Write(p []byte) (n int, err error) {
	if !c.IsActive() {
		return 0, Exception(ErrConnClosed, "when write")
	}

	if !c.lock(flushing) {
		return 0, Exception(ErrConcurrentAccess, "when write")
	}
	defer c.unlock(flushing)

	dst, _ := c.outw().Malloc(len(p))
	n = copy(dst, p)
	c.out().Flush()
	err = c.flush()
	return n, err
}

// Close implements Connection.
func (c *connection) Close() error {
	return c.onClose()
}

// Detach detaches the connection from poller but doesn't close it.
func (c *connection) Detach() error {
	c.detaching = true
	return c.onClose()
}

// ------------------------------------------ private ------------------------------------------

var barrierPool = sync.Pool{
	New: func() interface{} {
		return &barrier{
			bs:  make([][]byte, barriercap),
			ivs: make([]syscall.Iovec, barriercap),
		}
	},
}

// init initializes the connection with options
func (c *connection) init(conn Conn, opts *options) (err error) {
	// init buffer, barrier, finalizer
	c.bookSize, c.maxSize = defaultLinkBufferSize, defaultLinkBufferSize
	// sockmon patch: both buffers start as idleBuffer; the first bytes
	// read or written take a LinkBuffer from the pool.
	c.inputBuffer.Store(idleBuffer)
	c.outputBuffer.Store(idleBuffer)
	c.state = connStateNone

	c.initNetFD(conn) // conn must be *netFD{}
	c.initFDOperator()

	syscall.SetNonblock(c.fd, true)
	// enable TCP_NODELAY by default
	switch c.network {
	case "tcp", "tcp4", "tcp6":
		setTCPNoDelay(c.fd, true)
	}

	// connection initialized and prepare options
	return c.onPrepare(opts)
}

func (c *connection) initNetFD(conn Conn) {
	if nfd, ok := conn.(*netFD); ok {
		c.netFD = *nfd
		return
	}
	c.netFD = netFD{
		fd:         conn.Fd(),
		localAddr:  conn.LocalAddr(),
		remoteAddr: conn.RemoteAddr(),
	}
}

func (c *connection) initFDOperator() {
	poll := pollmanager.Pick()
	op := poll.Alloc()
	op.FD = c.fd
	op.OnRead, op.OnWrite, op.OnHup = nil, nil, nil
	op.conn = c // sockmon patch: in place of the five method values
	c.operator = op
}

// finalize releases what the connection holds once it is closed: the last
// step of closeCallback (sockmon patch: it was a close callback, added
// first so that it ran last).
func (c *connection) finalize() {
	c.stop(flushing)
	c.operator.Free()
	if err := c.netFD.Close(); err != nil {
		logger.Printf("NETPOLL: netFD close failed: %v", err)
	}
	c.closeBuffer()
}

func (c *connection) triggerRead(err error) {
	c.readTrigger.trigger(err)
}

func (c *connection) triggerWrite(err error) {
	c.writeTrigger.trigger(err)
}

// idleBuffer (sockmon patch) stands for the input or output buffer of every
// connection while that buffer is empty, so that an idle connection holds no
// LinkBuffer, node or memory for either. It is never written: a reader finds
// it empty (Len 0) and waits as for any empty buffer; the poller (inputs)
// and a writer (outw) swap in a LinkBuffer from the pool before they write;
// Release (input, under operator.do, which excludes the poller) and a flush
// that empties the output (under the flushing lock) give it back.
var idleBuffer = NewLinkBuffer()

var linkBufferPool = sync.Pool{New: func() any { return new(LinkBuffer) }}

// getLinkBuffer returns an empty LinkBuffer whose first node holds size
// bytes (none if size is 0).
func getLinkBuffer(size int) *LinkBuffer {
	b := linkBufferPool.Get().(*LinkBuffer)
	node := newLinkBufferNode(size)
	b.head, b.read, b.flush, b.write = node, node, node, node
	return b
}

// putLinkBuffer releases b's nodes and pools it. Nothing may use b after.
func putLinkBuffer(b *LinkBuffer) {
	b.Close()
	linkBufferPool.Put(b)
}

// in returns the input buffer (idleBuffer when empty).
func (c *connection) in() *LinkBuffer { return c.inputBuffer.Load() }

// out returns the output buffer (idleBuffer when empty), for reading.
func (c *connection) out() *LinkBuffer { return c.outputBuffer.Load() }

// outw returns the output buffer for writing: a pooled LinkBuffer in place
// of idleBuffer. Only the one writer calls it.
func (c *connection) outw() *LinkBuffer {
	b := c.outputBuffer.Load()
	if b == idleBuffer {
		b = getLinkBuffer(0)
		c.outputBuffer.Store(b)
	}
	return b
}

// dropOutput pools an emptied output buffer. The caller holds the flushing
// lock and the buffer holds nothing, malloced bytes included.
func (c *connection) dropOutput() {
	if b := c.out(); b != idleBuffer {
		c.outputBuffer.Store(idleBuffer)
		putLinkBuffer(b)
	}
}

// lazyTrigger (sockmon patch) is a channel with room for one error, made by
// the first waiter rather than for every connection: most connections never
// wait for input or for a flush, and two channels cost 256 bytes each
// connection. A waiter calls get before it checks the condition it waits
// for (buffer length, closed state); a trigger after the change that makes
// the condition true then finds the channel, and one before it is seen by
// the waiter's check.
type lazyTrigger struct {
	p atomic.Pointer[chan error]
}

func (t *lazyTrigger) get() chan error {
	if p := t.p.Load(); p != nil {
		return *p
	}
	ch := make(chan error, 1)
	if t.p.CompareAndSwap(nil, &ch) {
		return ch
	}
	return *t.p.Load()
}

func (t *lazyTrigger) trigger(err error) {
	p := t.p.Load()
	if p == nil {
		return // no waiter yet: it will see the change itself
	}
	select {
	case *p <- err:
	default:
	}
}

// waitRead will wait full n bytes.
func (c *connection) waitRead(n int) (err error) {
	if n <= c.in().Len() {
		return nil
	}
	if c.status(processing) == processingInline {
		// sockmon patch: Config.Inline said the input was enough; the
		// poller cannot wait for input only it could read.
		logger.Printf("NETPOLL: processing on the poller wants %d bytes of input, has %d: closing the connection (a bug in Config.Inline)", n, c.in().Len())
		return Exception(ErrConnClosed, "wait read on the poller")
	}
	atomic.StoreInt64(&c.waitReadSize, int64(n))
	defer atomic.StoreInt64(&c.waitReadSize, 0)
	trigger := c.readTrigger.get() // before the length and state checks below
	if dl := c.readDeadline; dl > 0 {
		timeout := time.Duration(dl - time.Now().UnixNano())
		if timeout <= 0 {
			return Exception(ErrReadTimeout, c.remoteAddr.String())
		}
		return c.waitReadWithTimeout(n, timeout, trigger)
	} else if c.readTimeout > 0 {
		return c.waitReadWithTimeout(n, c.readTimeout, trigger)
	}
	// wait full n
	for c.in().Len() < n {
		switch c.status(closing) {
		case poller:
			return Exception(ErrEOF, "wait read")
		case user:
			return Exception(ErrConnClosed, "wait read")
		default:
			err = <-trigger
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// waitReadWithTimeout will wait full n bytes or until timeout.
func (c *connection) waitReadWithTimeout(n int, timeout time.Duration, trigger chan error) (err error) {
	if c.readTimer == nil {
		c.readTimer = time.NewTimer(timeout)
	} else {
		c.readTimer.Reset(timeout)
	}

	for c.in().Len() < n {
		switch c.status(closing) {
		case poller:
			// cannot return directly, stop timer first!
			err = Exception(ErrEOF, "wait read")
			goto RET
		case user:
			// cannot return directly, stop timer first!
			err = Exception(ErrConnClosed, "wait read")
			goto RET
		default:
			select {
			case <-c.readTimer.C:
				// double check if there is enough data to be read
				if c.in().Len() >= n {
					return nil
				}
				return Exception(ErrReadTimeout, c.remoteAddr.String())
			case err = <-trigger:
				if err != nil {
					goto RET
				}
				continue
			}
		}
	}
RET:
	// clean timer.C
	if !c.readTimer.Stop() {
		<-c.readTimer.C
	}
	return err
}

// flush writes data directly.
func (c *connection) flush() error {
	if c.out().IsEmpty() {
		return nil
	}
	// sockmon patch: borrow the iovec barrier for this write only, instead
	// of holding one (~1.3 KiB) per connection for its whole life.
	barrier := barrierPool.Get().(*barrier)
	bs := c.out().GetBytes(barrier.bs)
	n, err := sendmsg(c.fd, bs, barrier.ivs, false)
	clear(barrier.bs)
	barrierPool.Put(barrier)
	if err != nil && err != syscall.EAGAIN {
		return Exception(err, "when flush")
	}
	if n > 0 {
		err = c.out().Skip(n)
		c.out().Release()
		if err != nil {
			return Exception(err, "when flush")
		}
	}
	// return if write all buffer.
	if c.out().IsEmpty() {
		// sockmon patch: an output buffer with nothing to send goes back
		// to the pool (the writer owns it here, under the flushing lock;
		// the poller only touches it after PollR2RW below).
		c.dropOutput()
		return nil
	}
	// The trigger exists before the poller can fire it, and a close before
	// it existed is seen here (lazyTrigger).
	c.writeTrigger.get()
	if !c.IsActive() {
		return Exception(ErrConnClosed, "when flush")
	}
	err = c.operator.Control(PollR2RW)
	if err != nil {
		return Exception(err, "when flush")
	}

	return c.waitFlush()
}

func (c *connection) waitFlush() (err error) {
	timeout := c.writeTimeout
	if dl := c.writeDeadline; dl > 0 {
		timeout = time.Duration(dl - time.Now().UnixNano())
		if timeout <= 0 {
			return Exception(ErrWriteTimeout, c.remoteAddr.String())
		}
	}
	if timeout == 0 {
		return <-c.writeTrigger.get()
	}

	// set write timeout
	if c.writeTimer == nil {
		c.writeTimer = time.NewTimer(timeout)
	} else {
		c.writeTimer.Reset(timeout)
	}

	select {
	case err = <-c.writeTrigger.get():
		if !c.writeTimer.Stop() { // clean timer
			<-c.writeTimer.C
		}
		return err
	case <-c.writeTimer.C:
		select {
		// try fetch writeTrigger if both cases fires
		case err = <-c.writeTrigger.get():
			return err
		default:
		}
		// if timeout, remove write event from poller
		// we cannot flush it again, since we don't if the poller is still process outputBuffer
		c.operator.Control(PollRW2R)
		return Exception(ErrWriteTimeout, c.remoteAddr.String())
	}
}

func (c *connection) getState() connState {
	return atomic.LoadInt32(&c.state)
}

func (c *connection) setState(newState connState) {
	atomic.StoreInt32(&c.state, newState)
}

func (c *connection) changeState(from, to connState) bool {
	return atomic.CompareAndSwapInt32(&c.state, from, to)
}
