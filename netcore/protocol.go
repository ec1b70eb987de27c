package netcore

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sockmon/sockmon/metrics"
)

// The sockmon client protocol (DESIGN.md "Client side"): binary messages are
// echoed verbatim; text messages are JSON envelopes. Replies are built by
// appending into pooled buffers: an echo or a ping costs no allocation.

// Error codes of error replies.
const (
	CodeBadRequest  = "bad_request"
	CodeRateLimited = "rate_limited"
	CodeNotFound    = "not_found"
	CodeUnavailable = "unavailable"
	CodeTooLarge    = "too_large"
	CodeInternal    = "internal"
)

// maxRoomName bounds room names (bytes).
const maxRoomName = 128

// protocol is the default Handler of Config.Path.
type protocol struct{ srv *Server }

var _ Handler = (*protocol)(nil)

func (p *protocol) HandleMessage(c *Conn, mt MessageType, data []byte) error {
	if !c.allowMessage() {
		return nil
	}
	if mt == BinaryMessage {
		c.kind = metrics.KindBinary
		return c.Reply(BinaryMessage, data)
	}
	var e envelope
	if err := parseEnvelope(data, &e); err != nil {
		return c.badMessage(e.id, "invalid envelope: "+err.Error())
	}
	switch string(e.typ) {
	case "echo":
		c.kind = metrics.KindEcho
		return c.replyEnvelope("echo", e.id, e.data, e.hasData)
	case "ping":
		c.kind = metrics.KindPing
		return c.replyEnvelope("pong", e.id, nil, false)
	case "join":
		c.kind = metrics.KindJoin
		return p.join(c, &e)
	case "leave":
		c.kind = metrics.KindLeave
		return p.leave(c, &e)
	case "publish":
		c.kind = metrics.KindPublish
		return p.publish(c, &e)
	case "rpc":
		c.kind = metrics.KindRPC
		if len(e.service) == 0 {
			return c.badMessage(e.id, `rpc needs "service"`)
		}
		return c.replyError(e.id, CodeNotFound, "no upstream service "+strconv.Quote(string(e.service))+" is configured", 0)
	case "":
		return c.badMessage(e.id, `missing "type"`)
	default:
		return c.badMessage(e.id, "unknown type "+strconv.Quote(string(e.typ))+"; valid types: echo, ping, join, leave, publish, rpc")
	}
}

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

func (p *protocol) join(c *Conn, e *envelope) error {
	if msg := validRoom(e.room); msg != "" {
		return c.badMessage(e.id, msg)
	}
	name := string(e.room)
	rooms := c.Rooms()
	for _, r := range rooms {
		if r == name {
			return c.replyEnvelope("ack", e.id, nil, false)
		}
	}
	if len(rooms) >= p.srv.cfg.MaxRoomsPerConn {
		return c.replyError(e.id, CodeTooLarge, "already in "+strconv.Itoa(len(rooms))+" rooms, the most one connection may join", 0)
	}
	next := make([]string, len(rooms), len(rooms)+1)
	copy(next, rooms)
	next = append(next, name)
	c.rooms.Store(&next)
	p.srv.hub.join(name, c)
	return c.replyEnvelope("ack", e.id, nil, false)
}

func (p *protocol) leave(c *Conn, e *envelope) error {
	if msg := validRoom(e.room); msg != "" {
		return c.badMessage(e.id, msg)
	}
	name := string(e.room)
	rooms := c.Rooms()
	next := make([]string, 0, len(rooms))
	for _, r := range rooms {
		if r != name {
			next = append(next, r)
		}
	}
	if len(next) == len(rooms) {
		return c.replyError(e.id, CodeNotFound, "not in room "+strconv.Quote(name), 0)
	}
	c.rooms.Store(&next)
	p.srv.hub.leave(name, c)
	return c.replyEnvelope("ack", e.id, nil, false)
}

func (p *protocol) publish(c *Conn, e *envelope) error {
	if msg := validRoom(e.room); msg != "" {
		return c.badMessage(e.id, msg)
	}
	if !e.hasData {
		return c.badMessage(e.id, `publish needs "data"`)
	}
	p.srv.publish(e.room, c, e.data)
	return c.replyEnvelope("ack", e.id, nil, false)
}

// allowMessage applies the connection's message rate. A limited message gets
// an error reply; too many in one window close the connection with 1008 and
// ban its IP or user.
func (c *Conn) allowMessage() bool {
	s := c.srv
	if gen := s.limitGen.Load(); gen != c.limitGen {
		c.limitGen = gen
		c.applyLimit()
	}
	now := c.clock
	ok, retry := c.limiter.allow(now)
	if ok {
		return true
	}
	c.kind = metrics.KindInvalid
	c.shard.RateLimited(metrics.ScopeConnection)
	ms := int64((retry + time.Millisecond - 1) / time.Millisecond)
	_ = c.replyError(nil, CodeRateLimited, "message rate limit exceeded", ms)
	if c.strikeWindow == 0 || now-c.strikeWindow > int64(s.cfg.BanWindow) {
		c.strikeWindow, c.strikes = now, 0
	}
	c.strikes++
	if int(c.strikes) > s.cfg.BanAfter {
		key := "ip:" + c.ip.String()
		if c.authenticated {
			key = "user:" + c.userID
		}
		d := s.bans.offend(key, time.Now().UnixNano(), s.banPolicy())
		s.log.Warn("connection closed and banned for exceeding its message rate", "socket", c.id, "ban", key, "for", d.String())
		c.readFailedPolicy("message rate limit exceeded repeatedly; banned for " + d.Round(time.Second).String())
	}
	return false
}

// applyLimit sets the connection's bucket from its override or the default.
func (c *Conn) applyLimit() {
	s := c.srv
	if rl, ok := s.overrides.lookup(c.id, c.userID); ok {
		c.limiter = newGCRA(rl.Limit, rl.Window)
		return
	}
	if s.cfg.MessageRate <= 0 {
		c.limiter = gcra{}
		return
	}
	c.limiter = newGCRA(s.cfg.MessageBurst, time.Duration(s.cfg.MessageBurst)*time.Second/time.Duration(s.cfg.MessageRate))
}

// badMessage answers a malformed message with bad_request; a connection
// that keeps sending them is closed with 1008.
func (c *Conn) badMessage(id []byte, msg string) error {
	c.kind = metrics.KindInvalid
	now := c.clock
	if c.badWindow == 0 || now-c.badWindow > int64(c.srv.cfg.BanWindow) {
		c.badWindow, c.bad = now, 0
	}
	c.bad++
	if err := c.replyError(id, CodeBadRequest, msg, 0); err != nil {
		return err
	}
	if int(c.bad) > c.srv.cfg.MaxBadMessages {
		c.readFailedPolicy("too many malformed messages")
	}
	return nil
}

// readFailedPolicy closes the connection with 1008 from the reader.
func (c *Conn) readFailedPolicy(reason string) {
	c.readDone = true
	c.sendClose(ClosePolicy, reason, true, true)
}

// replyEnvelope sends {"type":typ[,"id":id][,"data":data]}.
func (c *Conn) replyEnvelope(typ string, id, data []byte, hasData bool) error {
	buf := getBuffer()
	b := append((*buf)[:0], `{"type":"`...)
	b = append(b, typ...)
	b = append(b, '"')
	if id != nil {
		b = append(b, `,"id":`...)
		b = append(b, id...)
	}
	if hasData {
		b = append(b, `,"data":`...)
		b = append(b, data...)
	}
	b = append(b, '}')
	err := c.Reply(TextMessage, b)
	*buf = b
	putBuffer(buf)
	return err
}

// replyError sends an error envelope and reports it to OnMessageError.
func (c *Conn) replyError(id []byte, code, msg string, retryAfterMs int64) error {
	c.errs.Add(1)
	c.shard.MessageError(errorCode(code))
	buf := getBuffer()
	b := append((*buf)[:0], `{"type":"error"`...)
	if id != nil {
		b = append(b, `,"id":`...)
		b = append(b, id...)
	}
	b = append(b, `,"code":"`...)
	b = append(b, code...)
	b = append(b, `","message":`...)
	b = appendJSONString(b, msg)
	if code == CodeRateLimited {
		b = append(b, `,"retryAfterMs":`...)
		b = strconv.AppendInt(b, retryAfterMs, 10)
	}
	b = append(b, '}')
	err := c.Reply(TextMessage, b)
	*buf = b
	putBuffer(buf)
	for _, f := range c.srv.hooks.messageError {
		f(MessageErrorEvent{Conn: c, Code: code, Message: msg})
	}
	return err
}

func errorCode(code string) metrics.ErrorCode {
	switch code {
	case CodeBadRequest:
		return metrics.ErrBadRequest
	case CodeRateLimited:
		return metrics.ErrRateLimited
	case CodeNotFound:
		return metrics.ErrNotFound
	case CodeUnavailable:
		return metrics.ErrUnavailable
	case CodeTooLarge:
		return metrics.ErrTooLarge
	}
	return metrics.ErrInternal
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			b = append(b, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
