package protocol

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore"
)

// A session is one connection's protocol state. The reader goroutine owns
// every field but the rooms and the rpc count: HandleMessage calls are sequential, so the
// limiter and the strike counts need no lock. Rooms are shared with Closed,
// which may run on another goroutine while a join is in progress, so they
// are guarded by mu (taken only by join, leave and Closed, never per
// message).
type session struct {
	svc  *Service
	c    *netcore.Conn
	echo bool // the echo route: every message echoed verbatim after the rate check

	limiter                 gcra // messages
	bytesLimiter            gcra // bytes of the messages, after inflating
	limitGen                uint64
	strikes                 int32 // rate-limited messages in the window that started at strikeWindow
	bad                     int32 // malformed messages in the window that started at badWindow
	strikeWindow, badWindow int64

	rpcInFlight atomic.Int32 // calls started and not yet answered (rpc.go)

	mu     sync.Mutex
	rooms  []string // copy-on-write: readers (Rooms) may keep the slice they got
	closed bool
}

var _ netcore.Session = (*session)(nil)

// HandleMessage serves one message: binary frames are echoed, text frames
// are JSON envelopes.
func (s *session) HandleMessage(mt netcore.MessageType, data []byte) error {
	if ok, err := s.allowMessage(mt, data); !ok {
		return err
	}
	c := s.c
	if s.echo {
		return c.Reply(mt, data)
	}
	if mt == netcore.BinaryMessage {
		c.SetKind(metrics.KindBinary)
		return c.Reply(netcore.BinaryMessage, data)
	}
	var e envelope
	if err := parseEnvelope(data, &e); err != nil {
		return s.badMessage(e.id, "invalid envelope: "+err.Error())
	}
	switch string(e.typ) {
	case "echo":
		c.SetKind(metrics.KindEcho)
		return s.replyEnvelope("echo", e.id, e.data, e.hasData)
	case "ping":
		c.SetKind(metrics.KindPing)
		return s.replyEnvelope("pong", e.id, nil, false)
	case "join":
		c.SetKind(metrics.KindJoin)
		return s.join(&e)
	case "leave":
		c.SetKind(metrics.KindLeave)
		return s.leave(&e)
	case "publish":
		c.SetKind(metrics.KindPublish)
		return s.publish(&e)
	case "rpc":
		c.SetKind(metrics.KindRPC)
		return s.rpc(&e)
	case "":
		return s.badMessage(e.id, `missing "type"`)
	default:
		return s.badMessage(e.id, "unknown type "+strconv.Quote(string(e.typ))+"; valid types: echo, ping, join, leave, publish, rpc")
	}
}

// Closed leaves every room and forgets the socket's rate-limit override.
func (s *session) Closed(netcore.DisconnectEvent) {
	s.mu.Lock()
	s.closed = true
	rooms := s.rooms
	s.rooms = nil
	s.mu.Unlock()
	for _, r := range rooms {
		s.svc.hub.leave(r, s.c)
	}
	s.svc.overrides.forgetSocket(s.c.ID())
}

// Rooms returns the rooms the connection is in. The slice must not be
// modified.
func (s *session) Rooms() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms
}

// inRoom reports whether the connection is in room.
func (s *session) inRoom(room string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rooms {
		if r == room {
			return true
		}
	}
	return false
}

// maxRoomName bounds room names (bytes).
const maxRoomName = 128

// validRoom returns why room is not a valid room name, or "".
func validRoom(room []byte) string {
	switch {
	case len(room) == 0:
		return `missing "room"`
	case len(room) > maxRoomName:
		return "room name over " + strconv.Itoa(maxRoomName) + " bytes"
	case !utf8.Valid(room):
		return "room name is not UTF-8"
	}
	return ""
}

func (s *session) join(e *envelope) error {
	if msg := validRoom(e.room); msg != "" {
		return s.badMessage(e.id, msg)
	}
	name := string(e.room)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	for _, r := range s.rooms {
		if r == name {
			s.mu.Unlock()
			return s.replyEnvelope("ack", e.id, nil, false)
		}
	}
	if n := len(s.rooms); n >= s.svc.cfg.MaxRoomsPerConn {
		s.mu.Unlock()
		return s.replyError(e.id, CodeTooLarge, "already in "+strconv.Itoa(n)+" rooms, the most one connection may join", 0)
	}
	next := make([]string, len(s.rooms), len(s.rooms)+1)
	copy(next, s.rooms)
	s.rooms = append(next, name)
	// Joined under mu, so Closed, which takes mu first, sees the room.
	s.svc.hub.join(name, s.c)
	s.mu.Unlock()
	return s.replyEnvelope("ack", e.id, nil, false)
}

func (s *session) leave(e *envelope) error {
	if msg := validRoom(e.room); msg != "" {
		return s.badMessage(e.id, msg)
	}
	name := string(e.room)
	s.mu.Lock()
	next := make([]string, 0, len(s.rooms))
	for _, r := range s.rooms {
		if r != name {
			next = append(next, r)
		}
	}
	if len(next) == len(s.rooms) {
		s.mu.Unlock()
		return s.replyError(e.id, CodeNotFound, "not in room "+strconv.Quote(name), 0)
	}
	s.rooms = next
	s.svc.hub.leave(name, s.c)
	s.mu.Unlock()
	return s.replyEnvelope("ack", e.id, nil, false)
}

func (s *session) publish(e *envelope) error {
	if msg := validRoom(e.room); msg != "" {
		return s.badMessage(e.id, msg)
	}
	if !e.hasData {
		return s.badMessage(e.id, `publish needs "data"`)
	}
	cfg := &s.svc.cfg
	if !cfg.PublishWithoutJoin && !s.inRoom(string(e.room)) {
		return s.replyError(e.id, CodeNotFound, "not in room "+strconv.Quote(string(e.room))+": join it before publishing to it", 0)
	}
	if cfg.RoomPublishRate > 0 {
		if ok, retry := s.svc.hub.allowPublish(e.room, s.c.MessageTime(), s.svc.roomLimit); !ok {
			s.c.Shard().RateLimited(metrics.ScopeConnection)
			return s.replyError(e.id, CodeRateLimited, "the room's publish rate is exceeded", int64((retry+time.Millisecond-1)/time.Millisecond))
		}
	}
	s.svc.publish(e.room, s, e.data)
	return s.replyEnvelope("ack", e.id, nil, false)
}

// appendFrom appends the "from" of the messages this connection publishes:
// its user id, or anon:<socket id>.
func (s *session) appendFrom(b []byte) []byte {
	if s.c.Authenticated() {
		return appendJSONString(b, s.c.UserID())
	}
	b = append(b, `"anon:`...)
	b = strconv.AppendUint(b, s.c.ID(), 10)
	return append(b, '"')
}

// allowMessage applies the connection's message rate to the message mt,
// data. A limited message gets an error reply carrying its id and is not
// handled (ok false); too many in one window close the connection with 1008
// (the *netcore.CloseError) and ban its IP or user.
func (s *session) allowMessage(mt netcore.MessageType, data []byte) (ok bool, err error) {
	svc := s.svc
	if gen := svc.limitGen.Load(); gen != s.limitGen {
		s.limitGen = gen
		s.applyLimit()
	}
	now := s.c.MessageTime()
	pass, retry := s.limiter.allow(now)
	what := "message rate limit exceeded"
	if pass {
		// A deflated message inflates on the reader before it gets here:
		// counting its inflated bytes bounds that work too.
		if pass, retry = s.bytesLimiter.allowN(now, int64(len(data))); pass {
			return true, nil
		}
		what = "message byte rate limit exceeded"
	}
	s.c.SetKind(metrics.KindInvalid)
	s.c.Shard().RateLimited(metrics.ScopeConnection)
	ms := int64((retry + time.Millisecond - 1) / time.Millisecond)
	if err := s.replyError(s.limitedID(mt, data), CodeRateLimited, what, ms); err != nil {
		return false, err
	}
	if s.strikeWindow == 0 || now-s.strikeWindow > int64(svc.cfg.BanWindow) {
		s.strikeWindow, s.strikes = now, 0
	}
	s.strikes++
	if int(s.strikes) <= svc.cfg.BanAfter {
		return false, nil
	}
	key, ok := svc.ipKey(s.c.ClientIP())
	if s.c.Authenticated() {
		key, ok = "user:"+s.c.UserID(), true
	}
	if !ok {
		// An anonymous client behind a proxy that did not name it: banning
		// the proxy's address would ban all its clients. Close it only.
		svc.log.Warn("connection closed for exceeding its message rate; not banned: its address is a trusted proxy's", "socket", s.c.ID())
		return false, &netcore.CloseError{Code: netcore.ClosePolicy, Reason: "message rate limit exceeded repeatedly"}
	}
	d := svc.bans.offend(key, svc.mono(), svc.cfg.banPolicy())
	svc.log.Warn("connection closed and banned for exceeding its message rate", "socket", s.c.ID(), "ban", key, "for", d.String())
	return false, &netcore.CloseError{Code: netcore.ClosePolicy, Reason: "message rate limit exceeded repeatedly; banned for " + d.Round(time.Second).String()}
}

// limitedID returns the id of a refused envelope, so the client knows which
// request was refused, or nil (binary messages, the echo route, no id). The
// envelope is scanned only for refused messages, in place and without
// allocating; a malformed one yields the id scanned before the fault, as
// bad_request replies do.
func (s *session) limitedID(mt netcore.MessageType, data []byte) []byte {
	if s.echo || mt != netcore.TextMessage {
		return nil
	}
	var e envelope
	_ = parseEnvelope(data, &e)
	return e.id
}

// applyLimit sets the connection's bucket from its override or the default.
func (s *session) applyLimit() {
	cfg := &s.svc.cfg
	if rl, ok := s.svc.overrides.lookup(s.c.ID(), s.c.UserID()); ok {
		s.limiter = newGCRA(rl.Limit, rl.Window)
		return
	}
	if cfg.MessageBytesRate > 0 {
		s.bytesLimiter = newGCRA(cfg.MessageBytesBurst, time.Duration(cfg.MessageBytesBurst)*time.Second/time.Duration(cfg.MessageBytesRate))
	}
	if cfg.MessageRate <= 0 {
		s.limiter = gcra{}
		return
	}
	s.limiter = newGCRA(cfg.MessageBurst, time.Duration(cfg.MessageBurst)*time.Second/time.Duration(cfg.MessageRate))
}

// badMessage answers a malformed message with bad_request; a connection
// that keeps sending them is closed with 1008.
func (s *session) badMessage(id []byte, msg string) error {
	s.c.SetKind(metrics.KindInvalid)
	now := s.c.MessageTime()
	if s.badWindow == 0 || now-s.badWindow > int64(s.svc.cfg.BanWindow) {
		s.badWindow, s.bad = now, 0
	}
	s.bad++
	if err := s.replyError(id, CodeBadRequest, msg, 0); err != nil {
		return err
	}
	if int(s.bad) > s.svc.cfg.MaxBadMessages {
		return &netcore.CloseError{Code: netcore.ClosePolicy, Reason: "too many malformed messages"}
	}
	return nil
}
