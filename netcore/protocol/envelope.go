package protocol

import "errors"

// The JSON envelope of the client protocol (the README's protocol table), read
// without allocating: one pass validates the whole text as JSON and records
// where the top-level fields sockmon looks at begin and end. Values stay raw
// JSON, so "data" and "id" are copied into replies byte for byte.

// envelope holds the raw top-level fields of one message. The slices point
// into the message and are valid as long as it is.
type envelope struct {
	typ     []byte // the string's contents, without quotes; nil if absent
	id      []byte // raw JSON: a number or a string with its quotes
	room    []byte // the string's contents
	data    []byte // raw JSON of any type
	service []byte // the string's contents
	hasData bool
}

// maxJSONDepth bounds nesting so that a hostile message cannot make the
// scanner recurse without end.
const maxJSONDepth = 64

var (
	errNotObject   = errors.New("message is not a JSON object")
	errBadJSON     = errors.New("malformed JSON")
	errTooDeep     = errors.New("JSON nested too deeply")
	errFieldType   = errors.New("wrong field type")
	errEscapedName = errors.New("escaped characters are not allowed in type, room and service")
)

// parseEnvelope validates p as a JSON object and fills e.
func parseEnvelope(p []byte, e *envelope) error {
	*e = envelope{}
	s := scanner{p: p}
	s.skipSpace()
	if s.peek() != '{' {
		return errNotObject
	}
	if err := s.object(1, e); err != nil {
		return err
	}
	s.skipSpace()
	if s.i != len(p) {
		return errBadJSON
	}
	return nil
}

// set records one top-level field. Duplicate fields: the last one wins, as
// in encoding/json.
func (e *envelope) set(key, raw []byte) error {
	switch string(key) { // no allocation: the compiler compares in place
	case "type":
		v, err := plainString(raw)
		if err != nil {
			return err
		}
		e.typ = v
	case "id":
		if len(raw) == 0 || (raw[0] != '"' && raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
			return errFieldType
		}
		e.id = raw
	case "room":
		v, err := plainString(raw)
		if err != nil {
			return err
		}
		e.room = v
	case "service":
		v, err := plainString(raw)
		if err != nil {
			return err
		}
		e.service = v
	case "data":
		e.data, e.hasData = raw, true
	}
	return nil
}

// plainString returns the contents of a JSON string without escapes.
func plainString(raw []byte) ([]byte, error) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, errFieldType
	}
	v := raw[1 : len(raw)-1]
	for _, c := range v {
		if c == '\\' {
			return nil, errEscapedName
		}
	}
	return v, nil
}

type scanner struct {
	p []byte
	i int
}

func (s *scanner) peek() byte {
	if s.i < len(s.p) {
		return s.p[s.i]
	}
	return 0
}

func (s *scanner) skipSpace() {
	for s.i < len(s.p) {
		switch s.p[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str scans a string and returns the bounds of its contents.
func (s *scanner) str() (start, end int, err error) {
	if s.peek() != '"' {
		return 0, 0, errBadJSON
	}
	s.i++
	start = s.i
	for s.i < len(s.p) {
		c := s.p[s.i]
		switch {
		case c == '"':
			end = s.i
			s.i++
			return start, end, nil
		case c == '\\':
			s.i++
			switch s.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if s.i+5 > len(s.p) {
					return 0, 0, errBadJSON
				}
				for _, h := range s.p[s.i+1 : s.i+5] {
					if !isHex(h) {
						return 0, 0, errBadJSON
					}
				}
				s.i += 5
			default:
				return 0, 0, errBadJSON
			}
		case c < 0x20:
			return 0, 0, errBadJSON
		default:
			s.i++
		}
	}
	return 0, 0, errBadJSON
}

// value scans any JSON value at nesting depth d.
func (s *scanner) value(d int) error {
	if d > maxJSONDepth {
		return errTooDeep
	}
	switch c := s.peek(); {
	case c == '"':
		_, _, err := s.str()
		return err
	case c == '{':
		return s.object(d, nil)
	case c == '[':
		s.i++
		s.skipSpace()
		if s.peek() == ']' {
			s.i++
			return nil
		}
		for {
			s.skipSpace()
			if err := s.value(d + 1); err != nil {
				return err
			}
			s.skipSpace()
			switch s.peek() {
			case ',':
				s.i++
			case ']':
				s.i++
				return nil
			default:
				return errBadJSON
			}
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	}
	return errBadJSON
}

// object scans an object at nesting depth d; with e, it records the
// object's fields sockmon looks at (the top level of an envelope).
func (s *scanner) object(d int, e *envelope) error {
	s.i++ // the '{'
	s.skipSpace()
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		s.skipSpace()
		ks, ke, err := s.str()
		if err != nil {
			return err
		}
		s.skipSpace()
		if s.peek() != ':' {
			return errBadJSON
		}
		s.i++
		s.skipSpace()
		vs := s.i
		if err := s.value(d + 1); err != nil {
			return err
		}
		if e != nil {
			if err := e.set(s.p[ks:ke], s.p[vs:s.i]); err != nil {
				return err
			}
		}
		s.skipSpace()
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return errBadJSON
		}
	}
}

func (s *scanner) literal(lit string) error {
	if len(s.p)-s.i < len(lit) || string(s.p[s.i:s.i+len(lit)]) != lit {
		return errBadJSON
	}
	s.i += len(lit)
	return nil
}

// number scans a JSON number (RFC 8259 section 6).
func (s *scanner) number() error {
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		for c := s.peek(); c >= '0' && c <= '9'; c = s.peek() {
			s.i++
		}
	default:
		return errBadJSON
	}
	if s.peek() == '.' {
		s.i++
		if c := s.peek(); c < '0' || c > '9' {
			return errBadJSON
		}
		for c := s.peek(); c >= '0' && c <= '9'; c = s.peek() {
			s.i++
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if c := s.peek(); c < '0' || c > '9' {
			return errBadJSON
		}
		for c := s.peek(); c >= '0' && c <= '9'; c = s.peek() {
			s.i++
		}
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
