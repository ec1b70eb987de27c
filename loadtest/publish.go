package loadtest

import (
	"bytes"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// pubSlots is how many recent publishes of one publisher are followed to
// completion (all members delivered); older ones still count as deliveries.
const pubSlots = 4096

// pubSet is the publishers of a run and their trackers, indexed by
// publisher-1; immutable once published in run.pubs.
type pubSet struct {
	publishers []*session
	trackers   []*pubTracker
}

// pubTracker follows the deliveries of one publisher's messages. Safe for
// concurrent use: members record deliveries from their reader goroutines.
type pubTracker struct {
	slots [pubSlots]pubSlot
}

type pubSlot struct {
	seq      atomic.Uint64
	count    atomic.Int64
	intended atomic.Int64
}

// The token at the start of every published data string:
// "L<publisher>.<seq>.<intended ns>.<sent ns>." then padding to Config.Size.
const pubTokenPrefix = 'L'

func appendPublish(dst []byte, room string, pub int, seq uint64, intended, sent time.Duration, size int) []byte {
	dst = append(dst, `{"type":"publish","id":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"room":`...)
	dst = strconv.AppendQuote(dst, room)
	dst = append(dst, `,"data":"`...)
	start := len(dst)
	dst = append(dst, pubTokenPrefix)
	dst = strconv.AppendInt(dst, int64(pub), 10)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, int64(intended), 10)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, int64(sent), 10)
	dst = append(dst, '.')
	if pad := size - (len(dst) - start); pad > 0 {
		dst = appendLetters(dst, seq, pad)
	}
	return append(dst, `"}`...)
}

// parsePubToken reads the token written by appendPublish.
func parsePubToken(data []byte) (pub int, seq uint64, intended, sent time.Duration, ok bool) {
	if len(data) == 0 || data[0] != pubTokenPrefix {
		return 0, 0, 0, 0, false
	}
	rest := data[1:]
	var f [4]int64
	for i := range f {
		j := bytes.IndexByte(rest, '.')
		if j <= 0 {
			return 0, 0, 0, 0, false
		}
		v, ok := parseDecimal(rest[:j])
		if !ok {
			return 0, 0, 0, 0, false
		}
		f[i], rest = v, rest[j+1:]
	}
	return int(f[0]), uint64(f[1]), time.Duration(f[2]), time.Duration(f[3]), true
}

// sendJoin asks the server to add s to the run's room (request id 0).
func (s *session) sendJoin() {
	msg := append([]byte(`{"type":"join","id":0,"room":`), strconv.Quote(s.run.cfg.Room)...)
	msg = append(msg, '}')
	s.mu.Lock()
	s.writeLocked(ws.OpText, msg)
	s.mu.Unlock()
}

// sendPublishLocked publishes the next message of publisher s, intended at
// intended. In a closed loop it stays in flight until every member has it.
func (s *session) sendPublishLocked(intended, now time.Duration) {
	if s.publisher == 0 {
		return
	}
	s.seq++
	tr := s.run.pubs.Load().trackers[s.publisher-1]
	slot := &tr.slots[s.seq%pubSlots]
	slot.seq.Store(0)
	slot.count.Store(0)
	slot.intended.Store(int64(intended))
	slot.seq.Store(s.seq)
	s.want = appendPublish(s.want[:0], s.run.cfg.Room, s.publisher, s.seq, intended, now, s.run.cfg.Size)
	if !s.writeLocked(ws.OpText, s.want) {
		return
	}
	s.run.stats.sent.Add(1)
	s.run.lag.record(s.id, now-intended)
	if s.run.closedLoop {
		s.inflight, s.timedOut = true, false
		s.intended, s.sentAt = intended, now
	}
}

// onPublishMessage handles a text message in publish mode: deliveries, acks
// and errors.
func (s *session) onPublishMessage(op ws.OpCode, p []byte, now time.Duration) {
	if op != ws.OpText {
		return
	}
	typ, _ := jsonField(p, "type")
	id, _ := jsonField(p, "id")
	switch string(typ) {
	case "message":
		data, ok := jsonField(p, "data")
		if !ok {
			return
		}
		pub, seq, intended, sent, ok := parsePubToken(data)
		set := s.run.pubs.Load()
		if !ok || set == nil || pub < 1 || pub > len(set.trackers) {
			return // not one of ours
		}
		s.run.stats.deliveries.Add(1)
		s.run.corrected.record(s.id, now-intended)
		s.run.uncorrected.record(s.id, now-sent)
		slot := &set.trackers[pub-1].slots[seq%pubSlots]
		if slot.seq.Load() != seq {
			return
		}
		if slot.count.Add(1) == s.run.pubMembers.Load() {
			s.run.fanout.record(s.id, now-time.Duration(slot.intended.Load()))
			set.publishers[pub-1].onFanoutDone(seq, now)
		}
	case "ack":
		if string(id) == "0" {
			s.mu.Lock()
			if !s.joined {
				s.joined = true
				s.run.stats.joined.Add(1)
			}
			s.mu.Unlock()
			return
		}
		s.run.stats.acks.Add(1)
	case "error":
		if string(id) == "0" {
			s.run.stats.addError(ErrClassJoin)
			return
		}
		s.serverError(p)
	}
}

// onFanoutDone is called when every member has received publish seq of
// publisher s; in a closed loop the next publish goes out.
func (s *session) onFanoutDone(seq uint64, now time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.run.stats.received.Add(1)
	if !s.run.closedLoop || !s.inflight || s.seq != seq {
		return
	}
	s.inflight = false
	if !s.run.stopping.Load() {
		s.sendPublishLocked(now, now)
	}
}

// parseDecimal parses a non-negative decimal of at most 18 digits without
// allocating (a delivery is parsed on every member's read).
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}
