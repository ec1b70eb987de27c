package loadtest

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"strconv"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore/wsproto"
)

// appendFrame appends to dst one final client frame carrying payload, masked
// with a fresh random key as RFC 6455 section 5.3 requires of clients.
func appendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	return wsproto.AppendClientFrame(dst, true, 0, op, payload, mask)
}

// appendBinaryPayload appends the size-byte binary message number seq: the
// big-endian seq first (as much of it as fits), then a pattern that depends
// on seq, so a reply to another message or a corrupted one never compares
// equal.
func appendBinaryPayload(dst []byte, seq uint64, size int) []byte {
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seq)
	for i := 0; i < size; i++ {
		if i < 8 {
			dst = append(dst, s[i])
		} else {
			dst = append(dst, byte(seq)+byte(i)*31)
		}
	}
	return dst
}

// appendEchoJSON appends sockmon's echo request
// {"type":"echo","id":seq,"data":"..."} whose data string is size letters.
func appendEchoJSON(dst []byte, seq uint64, size int) []byte {
	dst = append(dst, `{"type":"echo","id":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"data":"`...)
	dst = appendLetters(dst, seq, size)
	return append(dst, `"}`...)
}

func appendLetters(dst []byte, seq uint64, n int) []byte {
	for i := 0; i < n; i++ {
		dst = append(dst, 'a'+byte((seq+uint64(i))%26))
	}
	return dst
}

// jsonField returns the raw value of the first top-level-looking "key": in
// b: the contents of a string value without its quotes, or a number or
// literal up to the next delimiter. It is a scanner for the flat envelopes of
// sockmon's protocol, not a JSON parser: it is used on the hot path where a
// reply did not compare equal to what was expected, and strings with escapes
// are returned still escaped.
func jsonField(b []byte, key string) ([]byte, bool) {
	var pat [64]byte
	p := append(pat[:0], '"')
	p = append(p, key...)
	p = append(p, '"')
	for off := 0; ; {
		i := bytes.Index(b[off:], p)
		if i < 0 {
			return nil, false
		}
		j := off + i + len(p)
		for j < len(b) && (b[j] == ' ' || b[j] == '\t' || b[j] == '\n' || b[j] == '\r') {
			j++
		}
		if j >= len(b) || b[j] != ':' {
			off = j
			continue
		}
		j++
		for j < len(b) && (b[j] == ' ' || b[j] == '\t' || b[j] == '\n' || b[j] == '\r') {
			j++
		}
		if j >= len(b) {
			return nil, false
		}
		if b[j] == '"' {
			for k := j + 1; k < len(b); k++ {
				switch b[k] {
				case '\\':
					k++
				case '"':
					return b[j+1 : k], true
				}
			}
			return nil, false
		}
		k := j
		for k < len(b) && b[k] != ',' && b[k] != '}' && b[k] != ' ' && b[k] != ']' {
			k++
		}
		return b[j:k], true
	}
}
