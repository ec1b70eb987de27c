package wsproto

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Frame primitives on byte slices (RFC 6455 section 5). They know nothing of
// sockets: the engine's reader peeks bytes out of netpoll's buffer and hands
// them here, its writer asks for the header size, mallocs that much in
// netpoll's output buffer and puts the header into it. Nothing here
// allocates except the Append functions growing dst.

// Errors of ParseHeader.
var (
	ErrShortHeader      = errors.New("wsproto: short frame header")
	ErrNonMinimalLength = errors.New("wsproto: payload length not minimally encoded")
	ErrLengthTooLarge   = errors.New("wsproto: payload length has the most significant bit set")
)

const (
	// MaxHeaderSize is the largest frame header: 2 bytes, 8 bytes of extended
	// length and a 4-byte mask key.
	MaxHeaderSize = 14
	// MaxServerHeaderSize is the largest header the server writes (never masked).
	MaxServerHeaderSize = 10
)

// HeaderLen reports how long the frame header that starts with the two bytes
// b0 and b1 is, masking key included.
func HeaderLen(b0, b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// ParseHeader decodes the frame header at the start of p, which must hold at
// least HeaderLen(p[0], p[1]) bytes. It checks only what the header alone can
// tell (length encoding); the connection checks the rest against its state.
func ParseHeader(p []byte) (h ws.Header, n int, err error) {
	n = HeaderLen(p[0], p[1])
	if len(p) < n {
		return h, n, ErrShortHeader
	}
	h.Fin = p[0]&0x80 != 0
	h.Rsv = (p[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(p[0] & 0x0f)
	h.Masked = p[1]&0x80 != 0
	i := 2
	switch l := p[1] & 0x7f; l {
	case 126:
		h.Length = int64(binary.BigEndian.Uint16(p[2:4]))
		if h.Length < 126 {
			return h, n, ErrNonMinimalLength
		}
		i = 4
	case 127:
		u := binary.BigEndian.Uint64(p[2:10])
		if u&(1<<63) != 0 {
			return h, n, ErrLengthTooLarge
		}
		h.Length = int64(u)
		if h.Length <= 0xffff {
			return h, n, ErrNonMinimalLength
		}
		i = 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		copy(h.Mask[:], p[i:i+4])
	}
	return h, n, nil
}

// ServerHeaderLen is the size of an unmasked header for a payload of n bytes.
func ServerHeaderLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xffff:
		return 4
	default:
		return 10
	}
}

// PutHeader writes an unmasked server frame header into dst, which must have
// room for ServerHeaderLen(length) bytes, and returns the bytes written.
func PutHeader(dst []byte, fin bool, rsv1 bool, op ws.OpCode, length int) int {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	if rsv1 {
		b0 |= 0x40
	}
	dst[0] = b0
	switch {
	case length < 126:
		dst[1] = byte(length)
		return 2
	case length <= 0xffff:
		dst[1] = 126
		binary.BigEndian.PutUint16(dst[2:4], uint16(length))
		return 4
	default:
		dst[1] = 127
		binary.BigEndian.PutUint64(dst[2:10], uint64(length))
		return 10
	}
}

// ValidReceivedCloseCode reports whether a peer may send code in a close
// frame (RFC 6455 section 7.4): the defined codes except the three that must
// never be on the wire (1005, 1006, 1015), the IANA-registered 1012-1014, and
// the ranges for libraries (3000-3999) and applications (4000-4999).
func ValidReceivedCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// AppendFrame appends one unmasked server frame carrying payload.
func AppendFrame(dst []byte, fin, rsv1 bool, op ws.OpCode, payload []byte) []byte {
	var hdr [MaxServerHeaderSize]byte
	n := PutHeader(hdr[:], fin, rsv1, op, len(payload))
	dst = append(dst, hdr[:n]...)
	return append(dst, payload...)
}

// AppendClientFrame appends one client frame carrying payload, masked with
// mask as RFC 6455 section 5.3 requires of clients (the caller picks a fresh
// random key per frame). rsv holds RSV1..RSV3 as its bits 2..0 (4 is RSV1),
// which lets tests send frames a server must refuse.
func AppendClientFrame(dst []byte, fin bool, rsv byte, op ws.OpCode, payload []byte, mask [4]byte) []byte {
	b0 := byte(op) | (rsv&7)<<4
	if fin {
		b0 |= 0x80
	}
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, b0, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, b0, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, b0, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}

// MaxCloseReason is the room for a reason in a close frame (125 - 2).
const MaxCloseReason = 123

// TruncateReason cuts reason to fit a close frame without splitting a
// UTF-8 sequence.
func TruncateReason(s string) string {
	if len(s) <= MaxCloseReason {
		return s
	}
	s = s[:MaxCloseReason]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// AppendClosePayload appends a close frame's payload: the code, big-endian,
// then reason cut to fit (TruncateReason).
func AppendClosePayload(dst []byte, code ws.StatusCode, reason string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, TruncateReason(reason)...)
}
