package protocol

import (
	"strconv"
	"unicode/utf8"

	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore"
)

// Replies are built by appending into pooled buffers: an echo or a ping
// costs no allocation.

// Error codes of error replies.
const (
	CodeBadRequest  = "bad_request"
	CodeRateLimited = "rate_limited"
	CodeNotFound    = "not_found"
	CodeUnavailable = "unavailable"
	CodeTooLarge    = "too_large"
	CodeInternal    = "internal"
)

// MessageErrorEvent is an error reply sent to a client (the seed's
// on('message_error')), with one of the Code constants. The hooks run on the
// connection's reader, or, for the answer to an rpc call, on the upstream's
// worker that got it.
type MessageErrorEvent struct {
	Conn    *netcore.Conn
	Code    string
	Message string
}

// replyEnvelope sends {"type":typ[,"id":id][,"data":data]}.
func (s *session) replyEnvelope(typ string, id, data []byte, hasData bool) error {
	buf := netcore.AcquireBuffer()
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
	err := s.c.Reply(netcore.TextMessage, b)
	*buf = b
	netcore.ReleaseBuffer(buf)
	return err
}

// replyError answers the message being handled with an error envelope.
func (s *session) replyError(id []byte, code, msg string, retryAfterMs int64) error {
	return s.sendError(s.c.Reply, id, code, msg, retryAfterMs)
}

// sendError builds an error envelope, writes it with write (Conn.Reply on
// the reader, Conn.WriteMessage anywhere else), counts it and reports it to
// the OnMessageError hooks. retryAfterMs is sent when positive.
func (s *session) sendError(write func(netcore.MessageType, []byte) error, id []byte, code, msg string, retryAfterMs int64) error {
	s.c.CountError()
	s.c.Shard().MessageError(errorCode(code))
	buf := netcore.AcquireBuffer()
	b := append((*buf)[:0], `{"type":"error"`...)
	if id != nil {
		b = append(b, `,"id":`...)
		b = append(b, id...)
	}
	b = append(b, `,"code":"`...)
	b = append(b, code...)
	b = append(b, `","message":`...)
	b = appendJSONString(b, msg)
	if retryAfterMs > 0 {
		b = append(b, `,"retryAfterMs":`...)
		b = strconv.AppendInt(b, retryAfterMs, 10)
	}
	b = append(b, '}')
	err := write(netcore.TextMessage, b)
	*buf = b
	netcore.ReleaseBuffer(buf)
	for _, f := range s.svc.onMessageError {
		f(MessageErrorEvent{Conn: s.c, Code: code, Message: msg})
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
	case CodeTimeout:
		return metrics.ErrTimeout
	case CodeTooManyRequests:
		return metrics.ErrTooManyRequests
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
