package loadtest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// The poller reads every ws:// connection of a run on a few event loops of
// its own, one per core: an epoll instance per loop, frames parsed and
// handled inline on the loop's goroutine (no goroutine per connection, no
// hand-off per frame), and, in the open model, the loop's share of the send
// schedule fired from the same goroutine. One wake-up of a loop handles
// every reply that arrived and every send that fell due since the last one,
// so the cost of a wake-up is shared by what it finds instead of paid per
// reply. The loop sleeps in epoll_pwait2 until the next intended send, with
// a 1ns timer slack on its thread, so a send leaves within microseconds of
// its intended time.
//
// Ownership: a loop goroutine owns its epoll set, the descriptors registered
// with it (it alone closes them), their input buffers and its pacer. Other
// goroutines may write to a connection (with the session's lock held) and
// ask for it to be closed (shutdown(2), which the loop then sees as EOF).
type poller struct {
	run   *run
	loops []*loop
	wires []atomic.Pointer[pollWire] // by session id
	store []pollWire                 // by session id: every pollWire, in one allocation
	wg    sync.WaitGroup

	// kernelStamps is set with the real clock: sockets are asked for
	// receive timestamps (SO_TIMESTAMPNS).
	kernelStamps bool

	failure atomic.Pointer[error] // the first error that stopped a loop
}

// fail records err as the reason a loop stopped early; the first one wins
// and Run returns it with the report.
func (p *poller) fail(err error) { p.failure.CompareAndSwap(nil, &err) }

// err returns the error that stopped a loop, or nil.
func (p *poller) err() error {
	if e := p.failure.Load(); e != nil {
		return *e
	}
	return nil
}

// loop is one event loop of a poller.
type loop struct {
	p      *poller
	idx    int
	epfd   int
	wakefd int // eventfd: a new pacer, a kicked wire or stop

	stop atomic.Bool
	job  atomic.Pointer[paceJob] // the open-model schedule this loop fires

	mu     sync.Mutex
	kicked []*pollWire // wires with input already buffered at attach

	events    []unix.EpollEvent // loop-owned
	buf       []byte            // loop-owned read buffer
	oob       [64]byte          // loop-owned: the receive timestamp
	wallEpoch int64             // loop-owned: see stampOffset
}

// paceJob is a pacer and the time it stops at; done is closed when the
// loop has dropped it.
type paceJob struct {
	p    *pacer
	end  time.Duration
	done chan struct{}
}

// pollWire is one ws:// connection on a loop. It is kept small: an idle
// connection has no input or output buffer of its own (reads go to the
// loop's buffer), only the pointers that a partial frame or unsent bytes
// fill.
//
// Lock order: session.mu, then pollWire.mu.
type pollWire struct {
	l  *loop
	s  *session
	fd int32

	shut     bool // guarded by mu: close was asked for (or the loop closed fd)
	fdClosed bool // guarded by mu: the loop closed fd; it must not be used again

	mu sync.Mutex

	// in is loop-owned: the start of a frame not yet complete, or a buffer
	// kept for the next one; nil when none.
	in *[]byte
	// out is guarded by mu: bytes the socket buffer had no room for, sent on
	// EPOLLOUT; nil when none.
	out *[]byte

	// One cache line, as a session is (the poller keeps them side by side).
	_ [cacheLine - 48]byte
}

var _ wire = (*pollWire)(nil)

const (
	wakeID      = -1       // epoll data of a loop's eventfd
	readBufSize = 64 << 10 // per loop
	maxPending  = 4 << 20  // unsent bytes one connection may hold before it counts as a write error
	eventsBatch = 512      // events per epoll_pwait2
	inKeepCap   = 64 << 10 // a connection's partial-frame buffer above this is released once empty

	// paceTick is the shortest time between two wake-ups of a loop that
	// fires an open-model schedule; maxPaceSleep the longest.
	paceTick     = 200 * time.Microsecond
	maxPaceSleep = 10 * time.Millisecond
	maxRawSleep  = time.Millisecond
	pollInFlags  = unix.EPOLLIN | unix.EPOLLRDHUP
)

var errWireClosed = errors.New("loadtest: connection closed")

// newPoller starts n loops for r.
func newPoller(r *run, n int) (*poller, error) {
	p := &poller{run: r, wires: make([]atomic.Pointer[pollWire], len(r.sessions)), store: make([]pollWire, len(r.sessions))}
	_, p.kernelStamps = r.clock.(realClock)
	for i := 0; i < n; i++ {
		l, err := newLoop(p, i)
		if err != nil {
			p.stop()
			return nil, err
		}
		p.loops = append(p.loops, l)
	}
	for _, l := range p.loops {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			l.serve()
		}()
	}
	return p, nil
}

func newLoop(p *poller, idx int) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("loadtest: epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("loadtest: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeID}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("loadtest: epoll_ctl: %w", err)
	}
	return &loop{p: p, idx: idx, epfd: epfd, wakefd: wakefd,
		events: make([]unix.EpollEvent, eventsBatch), buf: make([]byte, readBufSize)}, nil
}

// loopOf returns the loop that serves session id.
func (p *poller) loopOf(id int) *loop { return p.loops[id%len(p.loops)] }

// attach registers fd, an upgraded non-blocking socket, as s's connection.
// pending is input read past the handshake (frames the server sent at once);
// the loop handles it before anything read later. The poller owns fd from
// this call on, also when it fails.
func (p *poller) attach(s *session, fd int, pending []byte) error {
	l := p.loopOf(s.id)
	if p.kernelStamps {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			unix.Close(fd)
			return err
		}
	}
	w := &p.store[s.id]
	*w = pollWire{l: l, s: s, fd: int32(fd)}
	if len(pending) > 0 {
		in := append([]byte(nil), pending...)
		w.in = &in
	}
	s.attach(w)
	p.wires[s.id].Store(w)
	ev := unix.EpollEvent{Events: pollInFlags, Fd: int32(s.id)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		s.mu.Lock()
		s.open = false
		s.mu.Unlock()
		w.mu.Lock()
		w.shut, w.fdClosed = true, true
		unix.Close(fd)
		w.mu.Unlock()
		return err
	}
	if len(pending) > 0 {
		l.mu.Lock()
		l.kicked = append(l.kicked, w)
		l.mu.Unlock()
		l.wake()
	}
	return nil
}

// pace hands each loop the schedule of the senders it serves: together they
// send rate messages per second from start until end, each loop's share in
// proportion to its senders. It returns a channel closed once every loop
// has finished with its schedule.
func (p *poller) pace(senders []*session, rate float64, start, end time.Duration) <-chan struct{} {
	var jobs []*paceJob
	for j, pc := range loopPacers(senders, len(p.loops), rate, start) {
		if pc == nil {
			continue
		}
		job := &paceJob{p: pc, end: end, done: make(chan struct{})}
		jobs = append(jobs, job)
		p.loops[j].job.Store(job)
		p.loops[j].wake()
	}
	all := make(chan struct{})
	go func() {
		for _, j := range jobs {
			<-j.done
		}
		close(all)
	}()
	return all
}

// stop ends every loop, waits for them, and closes every descriptor still
// open. Sessions still open are marked closed.
func (p *poller) stop() {
	for _, l := range p.loops {
		l.stop.Store(true)
		l.wake()
	}
	p.wg.Wait()
	for i := range p.wires {
		if w := p.wires[i].Load(); w != nil {
			w.l.closeWire(w)
		}
	}
	for _, l := range p.loops {
		unix.Close(l.epfd)
		unix.Close(l.wakefd)
	}
}

func (l *loop) wake() {
	var one = [8]byte{1}
	_, _ = unix.Write(l.wakefd, one[:])
}

// serve is the loop. With no schedule to fire (closed loop, publish, idle
// holds, ramp and drain) it sleeps in epoll until input arrives. While it
// fires an open-model schedule it wakes at the intended time of the next
// send but at most once per paceTick, takes whatever input is ready without
// waiting, and fires every send that is due: a send leaves at most paceTick
// after its intended time (charged to the corrected latency like any other
// send lag), and a reply's arrival time is the kernel's receive timestamp,
// so reading it later does not add to its latency.
func (l *loop) serve() {
	r := l.p.run
	if _, ok := r.clock.(realClock); ok {
		lockPreciseThread()
	}
	var job *paceJob
	var lastWake time.Duration
	send := func(s *session, t time.Duration) { s.sendDue(t) }
	bg := context.Background()
	for !l.stop.Load() {
		if job == nil {
			job = l.job.Swap(nil)
		}
		timeout := time.Duration(-1)
		if job != nil {
			next := job.p.next()
			if next >= job.end || r.stopping.Load() {
				close(job.done)
				job = nil
				continue
			}
			now := r.clock.Now()
			wakeAt := min(max(next, lastWake+paceTick), now+maxPaceSleep)
			if d := wakeAt - now; d > 0 && d <= maxRawSleep && l.p.kernelStamps {
				sleepRaw(d)
			} else {
				r.clock.SleepUntil(bg, wakeAt)
			}
			lastWake = r.clock.Now()
			job.p.fire(lastWake, send)
			timeout = 0
		}
		l.stampOffset()
		n, err := epollWait(l.epfd, l.events, timeout)
		if err != nil && err != unix.EINTR {
			// Not a condition of one connection: this loop cannot wait any
			// more. Its connections go unread; the run reports why.
			l.p.fail(fmt.Errorf("loadtest: event loop %d: epoll_pwait2: %w", l.idx, err))
			break
		}
		for i := 0; i < n; i++ {
			ev := &l.events[i]
			if ev.Fd == wakeID {
				l.woken()
				continue
			}
			w := l.p.wires[ev.Fd].Load()
			if w == nil || w.l != l {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				l.writable(w)
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				l.readable(w)
			}
		}
		if job != nil && n > 0 {
			job.p.fire(r.clock.Now(), send)
		}
	}
	if job != nil {
		close(job.done)
	}
	if job := l.job.Swap(nil); job != nil {
		close(job.done)
	}
}

// stampOffset records the wall-clock time of the run clock's epoch, to turn
// kernel receive timestamps (CLOCK_REALTIME) into run-clock times.
func (l *loop) stampOffset() {
	if !l.p.kernelStamps {
		return
	}
	t := time.Now()
	l.wallEpoch = t.UnixNano() - int64(l.p.run.clock.Now())
}

// arrival returns when the data just read arrived: the kernel's receive
// timestamp in oob, when there is one and it is plausible, or now.
func (l *loop) arrival(oob []byte, now time.Duration) time.Duration {
	if !l.p.kernelStamps || len(oob) < unix.SizeofCmsghdr+16 {
		return now
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	if h.Level != unix.SOL_SOCKET || h.Type != unix.SO_TIMESTAMPNS {
		return now
	}
	ts := (*unix.Timespec)(unsafe.Pointer(&oob[unix.SizeofCmsghdr]))
	at := time.Duration(ts.Nano() - l.wallEpoch)
	if at > now || at < now-time.Second {
		return now // the wall clock stepped
	}
	return at
}

// woken drains the eventfd and handles wires whose input was buffered at
// attach.
func (l *loop) woken() {
	var b [8]byte
	_, _ = unix.Read(l.wakefd, b[:])
	l.mu.Lock()
	kicked := l.kicked
	l.kicked = nil
	l.mu.Unlock()
	for _, w := range kicked {
		if w.isClosed() {
			continue
		}
		in := w.input()
		used, ok := l.frames(w, in, l.p.run.clock.Now())
		if !ok || w.isClosed() {
			l.closeWire(w)
			continue
		}
		w.keepInput(append(in[:0], in[used:]...))
	}
}

// readable reads what the socket holds and handles every complete frame.
// The connection is closed on EOF, on a read error and on a protocol error.
func (l *loop) readable(w *pollWire) {
	clock := l.p.run.clock
	in := w.input()
	for {
		var dst []byte
		if len(in) == 0 {
			dst = l.buf
		} else {
			if cap(in)-len(in) < 4096 {
				in = append(make([]byte, 0, 2*cap(in)+4096), in...)
			}
			dst = in[len(in):cap(in)]
		}
		n, oobn, _, _, err := unix.Recvmsg(int(w.fd), dst, l.oob[:], 0)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if n <= 0 {
			l.closeWire(w) // EOF, or the connection failed
			return
		}
		now := l.arrival(l.oob[:oobn], clock.Now())
		var data []byte
		fromBuf := len(in) == 0
		if fromBuf {
			data = l.buf[:n]
		} else {
			in = in[:len(in)+n]
			data = in
		}
		used, ok := l.frames(w, data, now)
		if !ok || w.isClosed() {
			l.closeWire(w)
			return
		}
		rest := data[used:]
		switch {
		case len(rest) == 0:
			in = in[:0]
			if cap(in) > inKeepCap || w.s.traffic == nil {
				in = nil // a held connection keeps no buffer
			}
		case fromBuf:
			in = append(in[:0], rest...)
		default:
			in = in[:copy(in, rest)]
		}
		w.keepInput(in)
		if n < len(dst) {
			return // the socket is drained
		}
	}
}

// frames hands every complete frame at the start of data to the session and
// returns how many bytes they took. ok is false on a protocol error (the
// session has counted it).
func (l *loop) frames(w *pollWire, data []byte, now time.Duration) (used int, ok bool) {
	for !w.isClosed() {
		h, hl, complete, err := parseServerHeader(data[used:])
		if err != nil {
			w.s.protocolError()
			return used, false
		}
		if !complete {
			return used, true
		}
		end := used + hl + int(h.Length)
		w.s.onFrame(h, data[used+hl:end], now)
		used = end
	}
	return used, true
}

// writable sends what was left unsent; once all is sent the loop stops
// asking for EPOLLOUT.
func (l *loop) writable(w *pollWire) {
	w.mu.Lock()
	err := w.flushLocked()
	if err == nil && w.out == nil && !w.fdClosed {
		ev := unix.EpollEvent{Events: pollInFlags, Fd: int32(w.s.id)}
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, int(w.fd), &ev)
	}
	w.mu.Unlock()
	if err != nil {
		l.closeWire(w)
	}
}

// closeWire closes w's descriptor (once) and marks its session gone.
// Only w's loop calls it, or the poller once the loops have stopped.
func (l *loop) closeWire(w *pollWire) {
	w.s.onWireClosed()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fdClosed {
		return
	}
	w.shut, w.fdClosed = true, true
	w.out = nil
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, int(w.fd), nil)
	_ = unix.Close(int(w.fd))
}

// input returns the buffered start of an incomplete frame (empty when none).
// Loop only.
func (w *pollWire) input() []byte {
	if w.in == nil {
		return nil
	}
	return *w.in
}

// keepInput stores in as the connection's input buffer; a nil or zero-capacity
// in frees it. Loop only.
func (w *pollWire) keepInput(in []byte) {
	switch {
	case cap(in) == 0:
		w.in = nil
	case w.in != nil:
		*w.in = in
	default:
		w.in = &in
	}
}

func (w *pollWire) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.shut
}

// write sends frame, or keeps what the socket has no room for and asks the
// loop to send it when there is.
func (w *pollWire) write(frame []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.shut {
		return errWireClosed
	}
	if w.out != nil {
		if len(*w.out)+len(frame) > maxPending {
			return fmt.Errorf("loadtest: %d bytes unsent: the server does not read", len(*w.out))
		}
		*w.out = append(*w.out, frame...)
		return nil
	}
	for len(frame) > 0 {
		n, err := unix.Write(int(w.fd), frame)
		if n > 0 {
			frame = frame[n:]
			continue
		}
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			out := append([]byte(nil), frame...)
			w.out = &out
			ev := unix.EpollEvent{Events: pollInFlags | unix.EPOLLOUT, Fd: int32(w.s.id)}
			return unix.EpollCtl(w.l.epfd, unix.EPOLL_CTL_MOD, int(w.fd), &ev)
		case nil:
			return errWireClosed
		default:
			return err
		}
	}
	return nil
}

func (w *pollWire) flushLocked() error {
	for w.out != nil && len(*w.out) > 0 && !w.fdClosed {
		n, err := unix.Write(int(w.fd), *w.out)
		if n > 0 {
			*w.out = (*w.out)[n:]
			continue
		}
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return nil
		case nil:
			return errWireClosed
		default:
			return err
		}
	}
	w.out = nil
	return nil
}

// close shuts the connection down; the loop sees EOF and closes the
// descriptor.
func (w *pollWire) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.shut {
		return nil
	}
	w.shut = true
	w.out = nil
	if !w.fdClosed {
		return unix.Shutdown(int(w.fd), unix.SHUT_RDWR)
	}
	return nil
}

// parseServerHeader parses the frame header at the start of b. complete is
// false while the header or the payload has not all arrived.
func parseServerHeader(b []byte) (h ws.Header, hl int, complete bool, err error) {
	if len(b) < 2 {
		return h, 0, false, nil
	}
	b0, b1 := b[0], b[1]
	if b1&0x80 != 0 {
		return h, 0, false, errProtocol // servers never mask
	}
	if b0&0x70 != 0 {
		return h, 0, false, errProtocol // no extension negotiated
	}
	n := uint64(b1 & 0x7f)
	hl = 2
	switch n {
	case 126:
		hl = 4
		if len(b) < hl {
			return h, 0, false, nil
		}
		n = uint64(b[2])<<8 | uint64(b[3])
	case 127:
		hl = 10
		if len(b) < hl {
			return h, 0, false, nil
		}
		n = 0
		for _, c := range b[2:10] {
			n = n<<8 | uint64(c)
		}
	}
	if n > MaxSize {
		return h, 0, false, errProtocol
	}
	h = ws.Header{Fin: b0&0x80 != 0, OpCode: ws.OpCode(b0 & 0x0f), Length: int64(n)}
	return h, hl, uint64(len(b)-hl) >= n, nil
}

// epollWait waits for events at most timeout (forever when negative), with
// nanosecond precision. With timeout 0 it never blocks and does not tell the
// runtime it is in a system call (see sleepRaw).
func epollWait(epfd int, events []unix.EpollEvent, timeout time.Duration) (int, error) {
	var n uintptr
	var e unix.Errno
	if timeout == 0 {
		var ts unix.Timespec
		n, _, e = unix.RawSyscall6(unix.SYS_EPOLL_PWAIT2, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
			uintptr(len(events)), uintptr(unsafe.Pointer(&ts)), 0, 0)
	} else {
		var ts unix.Timespec
		var tsp unsafe.Pointer
		if timeout > 0 {
			ts = unix.NsecToTimespec(int64(timeout))
			tsp = unsafe.Pointer(&ts)
		}
		n, _, e = unix.Syscall6(unix.SYS_EPOLL_PWAIT2, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
			uintptr(len(events)), uintptr(tsp), 0, 0)
		runtime.KeepAlive(&ts)
	}
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// sleepRaw sleeps d, at most maxRawSleep, in nanosleep without telling the
// runtime: the loop keeps its P, so the runtime's monitor has no P to take
// back and hand to another thread, and stays asleep itself. Told of every
// sleep (unix.Nanosleep), the runtime hands the P of a sleeping loop to
// another thread and takes it back when the loop wakes, and its monitor
// polls every 20µs: on a 2-core machine those thread switches cost more
// than the load itself. Run keeps one P free of loops while it paces (see
// loopCount), and a loop is preemptible at every wake-up.
func sleepRaw(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	for {
		_, _, e := unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), uintptr(unsafe.Pointer(&ts)), 0)
		if e != unix.EINTR {
			return
		}
	}
}

// loopCount is the number of event loops for cfg: one per P, except that
// in the open model one P is left to the rest of the run (see sleepRaw).
func loopCount(cfg *Config, procs int) int {
	if cfg.Rate > 0 {
		return max(procs-1, 1)
	}
	return max(procs, 1)
}
