package wsproto

import "unicode/utf8"

// UTF8State validates UTF-8 incrementally across the fragments of a text
// message, so that an invalid sequence is caught in the fragment that carries
// it (fail fast) and a code point split between fragments is still accepted.
// The zero value is ready for the first fragment.
type UTF8State struct {
	tail  [utf8.UTFMax]byte // bytes of an incomplete code point carried over
	ntail int
}

// Feed validates p as the continuation of what was fed before. It reports
// false as soon as the bytes cannot be the start of valid UTF-8.
func (s *UTF8State) Feed(p []byte) bool {
	if s.ntail > 0 {
		// Complete the carried code point with bytes from p.
		need := seqLen(s.tail[0]) - s.ntail
		if need > len(p) {
			n := copy(s.tail[s.ntail:], p)
			s.ntail += n
			return validPrefix(s.tail[:s.ntail])
		}
		var buf [utf8.UTFMax]byte
		copy(buf[:], s.tail[:s.ntail])
		copy(buf[s.ntail:], p[:need])
		if !utf8.Valid(buf[:s.ntail+need]) {
			return false
		}
		p = p[need:]
		s.ntail = 0
	}
	// Find where a trailing incomplete code point starts, if any.
	cut := len(p)
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax; i-- {
		if utf8.RuneStart(p[i]) {
			if l := seqLen(p[i]); l > len(p)-i {
				cut = i
			}
			break
		}
	}
	if !utf8.Valid(p[:cut]) {
		return false
	}
	if cut < len(p) {
		s.ntail = copy(s.tail[:], p[cut:])
		return validPrefix(s.tail[:s.ntail])
	}
	return true
}

// Done reports whether the message ended on a code point boundary, and
// resets the state for the next message.
func (s *UTF8State) Done() bool {
	ok := s.ntail == 0
	s.ntail = 0
	return ok
}

// seqLen is the length of the UTF-8 sequence that starts with b (1 for
// bytes that cannot start one, so that utf8.Valid rejects them).
func seqLen(b byte) int {
	switch {
	case b >= 0xf0 && b <= 0xf4:
		return 4
	case b >= 0xe0:
		if b > 0xf4 {
			return 1
		}
		return 3
	case b >= 0xc2:
		return 2
	default:
		return 1
	}
}

// validPrefix reports whether p, shorter than its sequence length, can still
// become a valid code point (RFC 3629 table of well-formed byte sequences).
func validPrefix(p []byte) bool {
	if len(p) == 0 {
		return true
	}
	b0 := p[0]
	if seqLen(b0) <= len(p) {
		return utf8.Valid(p)
	}
	if len(p) >= 2 {
		b1 := p[1]
		lo, hi := byte(0x80), byte(0xbf)
		switch b0 {
		case 0xe0:
			lo = 0xa0
		case 0xed:
			hi = 0x9f
		case 0xf0:
			lo = 0x90
		case 0xf4:
			hi = 0x8f
		}
		if b1 < lo || b1 > hi {
			return false
		}
	}
	if len(p) > 2 {
		for _, b := range p[2:] {
			if b < 0x80 || b > 0xbf {
				return false
			}
		}
	}
	return true
}
