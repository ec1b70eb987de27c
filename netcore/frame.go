package netcore

import (
	"encoding/binary"

	"github.com/gobwas/ws"
)

// Frame primitives on byte slices. They know nothing of sockets: the reader
// peeks bytes out of netpoll's buffer and hands them here, the writer asks for
// the header size, mallocs that much in netpoll's output buffer and puts the
// header into it. Nothing here allocates.

const (
	// maxHeaderSize is the largest frame header: 2 bytes, 8 bytes of extended
	// length and a 4-byte mask key.
	maxHeaderSize = 14
	// maxServerHeaderSize is the largest header the server writes (never masked).
	maxServerHeaderSize = 10
)

// headerLen reports how long the frame header that starts with the two bytes
// b0 and b1 is, masking key included.
func headerLen(b0, b1 byte) int {
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

// parseHeader decodes the frame header at the start of p, which must hold at
// least headerLen(p[0], p[1]) bytes. It checks only what the header alone can
// tell (length encoding); the connection checks the rest against its state.
func parseHeader(p []byte) (h ws.Header, n int, err error) {
	n = headerLen(p[0], p[1])
	if len(p) < n {
		return h, n, errShortHeader
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
			return h, n, errNonMinimalLength
		}
		i = 4
	case 127:
		u := binary.BigEndian.Uint64(p[2:10])
		if u&(1<<63) != 0 {
			return h, n, errLengthTooLarge
		}
		h.Length = int64(u)
		if h.Length <= 0xffff {
			return h, n, errNonMinimalLength
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

// serverHeaderLen is the size of an unmasked header for a payload of n bytes.
func serverHeaderLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xffff:
		return 4
	default:
		return 10
	}
}

// putHeader writes an unmasked server frame header into dst, which must have
// room for serverHeaderLen(length) bytes, and returns the bytes written.
func putHeader(dst []byte, fin bool, rsv1 bool, op ws.OpCode, length int) int {
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

// validReceivedCloseCode reports whether a peer may send code in a close
// frame (RFC 6455 section 7.4): the defined codes except the three that must
// never be on the wire (1005, 1006, 1015), the IANA-registered 1012-1014, and
// the ranges for libraries (3000-3999) and applications (4000-4999).
func validReceivedCloseCode(code ws.StatusCode) bool {
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
