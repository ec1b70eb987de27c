package loadtest

import (
	"bytes"
	"encoding/binary"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// wire is one upgraded connection as a session sees it.
type wire interface {
	// write sends one complete frame. The session calls it with its lock
	// held, so calls never overlap; frame is not retained.
	write(frame []byte) error
	// close closes the connection at once (no closing handshake).
	close() error
}

// session is one client connection and its message state machine.
//
// The reader side (onFrame) runs on whatever goroutine the wire delivers
// frames on, one frame at a time per session; the pacers, the reaper and the
// run's shutdown call in from other goroutines. mu guards every field below
// it and serialises writes on w, except fragOp, which only the reader side
// touches.
//
// A session holds only what an open connection needs; the message state of
// a session that sends and measures is its *traffic, which is nil in
// connect-only mode (set once by newRun, before any goroutine sees the
// session), so a held idle connection costs one small object here and one
// pollWire.
type session struct {
	id  int
	run *run

	mu         sync.Mutex
	w          wire
	open       bool // upgraded and not yet closed
	closing    bool // we sent a close frame
	peerClosed bool // the server sent a close frame (already counted)

	// fragOp is the opcode of the fragmented message being received; 0
	// when none. Reader side only.
	fragOp ws.OpCode

	*traffic // nil in connect-only mode

	// A session is one cache line: sessions lie side by side in one array
	// (newRun) and neighbours belong to different loops, which would
	// otherwise write the same line whenever either takes its mu.
	_ [cacheLine - 56]byte
}

// cacheLine is the size sessions and pollWires are padded to.
const cacheLine = 64

// traffic is the message state of a session that sends (every mode but
// connect-only). Guarded by the session's mu, except frag (reader side).
type traffic struct {
	// One message in flight at most (wrk2's model): seq, when it was meant
	// to go and when it went.
	inflight bool
	seq      uint64
	intended time.Duration
	sentAt   time.Duration
	timedOut bool // the reaper already counted this message as a timeout

	// Open model: sends the schedule asked for while a message was in
	// flight. They go out, one per reply, with their own intended times.
	owed     int64
	owedNext time.Duration
	interval time.Duration

	publisher int // index+1 among publishers; 0 for members
	joined    bool

	out  []byte // frame being built
	want []byte // expected reply to the message in flight
	frag []byte // fragmented message being reassembled
}

// busyLocked reports whether s has a message in flight. The caller holds
// s.mu.
func (s *session) busyLocked() bool { return s.traffic != nil && s.inflight }

// attach makes s open on w.
func (s *session) attach(w wire) {
	s.mu.Lock()
	s.w = w
	s.open = true
	s.mu.Unlock()
}

// isOpen reports whether s is upgraded and not closed.
func (s *session) isOpen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// writeLocked frames payload and writes it; on failure the connection is
// counted as a write error and closed. The caller holds s.mu.
func (s *session) writeLocked(op ws.OpCode, payload []byte) bool {
	if !s.open || s.w == nil {
		return false
	}
	var frame []byte
	if s.traffic != nil {
		s.out = appendFrame(s.out[:0], op, payload)
		frame = s.out
	} else {
		// A held connection writes only pongs and its close: too rare to
		// keep a buffer for.
		frame = appendFrame(nil, op, payload)
	}
	if err := s.w.write(frame); err != nil {
		if !s.peerClosed && !s.closing {
			s.run.stats.addError(ErrClassWrite)
		}
		s.goneLocked(true)
		return false
	}
	return true
}

// goneLocked marks s closed and closes its wire. counted says whether the
// cause is already in the error counts; otherwise a close by the peer during
// the run counts as close_1006.
func (s *session) goneLocked(counted bool) {
	if !s.open {
		return
	}
	s.open = false
	if s.traffic != nil {
		s.inflight = false
	}
	if !s.closing {
		s.run.stats.dropped.Add(1)
		if !counted {
			s.run.stats.addError(classWithCode(ErrClassClose, 1006))
		}
	}
	if s.w != nil {
		_ = s.w.close()
	}
}

// onWireClosed is called once when the transport reports the connection gone.
func (s *session) onWireClosed() {
	s.mu.Lock()
	s.goneLocked(false)
	s.mu.Unlock()
}

// --- sending ---------------------------------------------------------------

// sendDue is the pacer's send: the schedule wants a message from s, intended
// at t. A publisher always sends; an echo session with a message in flight
// owes the send instead and makes it when the reply comes.
func (s *session) sendDue(t time.Duration) {
	now := s.run.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open || s.run.stopping.Load() {
		return
	}
	if s.run.cfg.Mode == ModePublish {
		s.sendPublishLocked(t, now)
		return
	}
	if s.inflight {
		if s.owed == 0 {
			s.owedNext = t
		}
		s.owed++
		return
	}
	s.sendEchoLocked(t, now)
}

// startClosedLoop sends the first message of a closed-loop session.
func (s *session) startClosedLoop() {
	now := s.run.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open || s.run.stopping.Load() {
		return
	}
	if s.run.cfg.Mode == ModePublish {
		if s.publisher > 0 {
			s.sendPublishLocked(now, now)
		}
		return
	}
	s.sendEchoLocked(now, now)
}

func (s *session) sendEchoLocked(intended, now time.Duration) {
	s.seq++
	var op ws.OpCode
	if s.run.cfg.Mode == ModeEchoJSON {
		op = ws.OpText
		s.want = appendEchoJSON(s.want[:0], s.seq, s.run.cfg.Size)
	} else {
		op = ws.OpBinary
		s.want = appendBinaryPayload(s.want[:0], s.seq, s.run.cfg.Size)
	}
	if !s.writeLocked(op, s.want) {
		return
	}
	s.inflight, s.timedOut = true, false
	s.intended, s.sentAt = intended, now
	s.run.stats.sent.Add(1)
	s.run.lag.record(s.id, now-intended)
}

// nextAfterReplyLocked sends what comes after a completed message: at once
// in a closed loop, the oldest owed send in the open model.
func (s *session) nextAfterReplyLocked(now time.Duration) {
	if s.run.stopping.Load() || !s.open {
		return
	}
	if s.run.closedLoop {
		s.sendEchoLocked(now, now)
		return
	}
	if s.owed > 0 {
		t := s.owedNext
		s.owed--
		s.owedNext += s.interval
		s.sendEchoLocked(t, now)
	}
}

// --- receiving -------------------------------------------------------------

// onFrame handles one frame from the server; payload is unmasked and only
// valid during the call.
func (s *session) onFrame(h ws.Header, payload []byte, now time.Duration) {
	switch h.OpCode {
	case ws.OpPing:
		s.mu.Lock()
		if s.writeLocked(ws.OpPong, payload) {
			s.run.stats.pings.Add(1)
		}
		s.mu.Unlock()
		return
	case ws.OpPong:
		return
	case ws.OpClose:
		s.onClose(payload)
		return
	case ws.OpContinuation:
		if s.fragOp == 0 {
			s.protocolError()
			return
		}
		if s.traffic == nil {
			// Connect-only ignores messages: only the framing is checked.
			if h.Fin {
				s.fragOp = 0
			}
			return
		}
		s.frag = append(s.frag, payload...)
		if len(s.frag) > MaxSize {
			s.protocolError()
			return
		}
		if h.Fin {
			op := s.fragOp
			s.fragOp = 0
			s.onMessage(op, s.frag, now)
			s.frag = s.frag[:0]
		}
		return
	case ws.OpText, ws.OpBinary:
		if s.fragOp != 0 {
			s.protocolError()
			return
		}
		if !h.Fin {
			s.fragOp = h.OpCode
			if s.traffic != nil {
				s.frag = append(s.frag[:0], payload...)
			}
			return
		}
		s.onMessage(h.OpCode, payload, now)
	default:
		s.protocolError()
	}
}

func (s *session) protocolError() {
	s.run.stats.addError(ErrClassProtocol)
	s.mu.Lock()
	s.goneLocked(true)
	s.mu.Unlock()
}

// onClose answers the server's close frame and closes the connection. A
// close we did not start is an error of class close_<code>.
func (s *session) onClose(payload []byte) {
	code := 1005
	if len(payload) >= 2 {
		code = int(binary.BigEndian.Uint16(payload))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		return
	}
	if !s.closing {
		s.run.stats.addError(classWithCode(ErrClassClose, code))
		s.peerClosed = true
		var body [2]byte
		binary.BigEndian.PutUint16(body[:], uint16(code))
		if code == 1005 {
			s.writeLocked(ws.OpClose, nil)
		} else {
			s.writeLocked(ws.OpClose, body[:])
		}
	}
	s.goneLocked(true)
}

// onMessage handles one complete data message.
func (s *session) onMessage(op ws.OpCode, p []byte, now time.Duration) {
	switch s.run.cfg.Mode {
	case ModeConnectOnly:
		return
	case ModePublish:
		s.onPublishMessage(op, p, now)
		return
	}
	isJSON := s.run.cfg.Mode == ModeEchoJSON && op == ws.OpText
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := s.inflight && bytes.Equal(p, s.want)
	if !ok && isJSON {
		typ, _ := jsonField(p, "type")
		switch string(typ) {
		case "echo":
			ok = s.inflight && sameEcho(p, s.want)
		case "error":
			s.serverError(p)
			if s.inflight {
				s.inflight = false
				s.nextAfterReplyLocked(now)
			}
			return
		default:
			return // a server push (broadcast, system), not a reply
		}
	}
	if !s.inflight {
		s.run.stats.addError(ErrClassMismatch) // a reply to nothing
		return
	}
	s.inflight = false
	if ok {
		s.run.stats.received.Add(1)
		s.run.corrected.record(s.id, now-s.intended)
		s.run.uncorrected.record(s.id, now-s.sentAt)
	} else {
		s.run.stats.addError(ErrClassMismatch)
	}
	s.nextAfterReplyLocked(now)
}

// sameEcho reports whether the echo reply got carries the id and data of the
// request want, whatever the server did to field order or spacing.
func sameEcho(got, want []byte) bool {
	gid, ok1 := jsonField(got, "id")
	wid, _ := jsonField(want, "id")
	gdata, ok2 := jsonField(got, "data")
	wdata, _ := jsonField(want, "data")
	return ok1 && ok2 && bytes.Equal(gid, wid) && bytes.Equal(gdata, wdata)
}

// serverError counts a {"type":"error","code":...} reply by its code.
func (s *session) serverError(p []byte) {
	code, ok := jsonField(p, "code")
	if !ok || len(code) == 0 || len(code) > 40 {
		s.run.stats.addError(ErrClassServerError)
		return
	}
	s.run.stats.addError(ErrClassServerError + "_" + string(code))
}
