package wsproto

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws/wsflate"
)

// The opening handshake (RFC 6455 section 4.2), parsed from the raw header
// block that the engine peeked out of netpoll's buffer. The parser works on a
// byte slice, knows nothing of sockets and is fuzzed on its own.

// RequestError refuses an upgrade request with an HTTP status. Header lines
// are added to the response (Allow on 405, Sec-WebSocket-Version on 426).
type RequestError struct {
	Status int
	Reason string
	Header [][2]string
}

func (e *RequestError) Error() string {
	return "wsproto: " + strconv.Itoa(e.Status) + " " + http.StatusText(e.Status) + ": " + e.Reason
}

func badRequest(reason string) *RequestError {
	return &RequestError{Status: http.StatusBadRequest, Reason: reason}
}

// Request is the part of an upgrade request that sockmon looks at. It is
// built once per connection and may be kept by hooks.
type Request struct {
	Method   string
	Path     string // path without the query
	RawQuery string // query without '?'
	Host     string
	Origin   string
	// Authorization is the raw Authorization header value.
	Authorization string
	// UserAgent is kept for the connection listing.
	UserAgent string

	// XForwardedFor is the raw X-Forwarded-For header, if any.
	XForwardedFor string

	// Key is Sec-WebSocket-Key, Version Sec-WebSocket-Version (repeated
	// headers joined with ", "), Extensions every Sec-WebSocket-Extensions
	// value in order.
	Key        string
	Version    string
	Extensions []string
	// UpgradeWebSocket and ConnectionUpgrade report the Upgrade: websocket
	// and Connection: upgrade tokens.
	UpgradeWebSocket  bool
	ConnectionUpgrade bool
}

// Query returns the first value of the query parameter name, unescaped.
func (r *Request) Query(name string) string {
	q := r.RawQuery
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(kv, "=")
		if uk, err := urlUnescape(k); err == nil && uk == name {
			if uv, err := urlUnescape(v); err == nil {
				return uv
			}
			return ""
		}
	}
	return ""
}

func urlUnescape(s string) (string, error) {
	if !strings.ContainsAny(s, "%+") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			b.WriteByte(' ')
		case '%':
			if i+2 >= len(s) {
				return "", errBadEscape
			}
			h, ok1 := unhex(s[i+1])
			l, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", errBadEscape
			}
			b.WriteByte(h<<4 | l)
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

var errBadEscape = badRequest("bad percent-escape in the query")

// ParseRequest parses an HTTP/1.1 request head ending in an empty line into
// req. It reports a *RequestError (always a 4xx) naming what is wrong. The
// strings of req are copies: head may be reused afterwards.
func ParseRequest(head []byte, req *Request) *RequestError {
	line, rest, ok := cutLine(head)
	if !ok {
		return badRequest("request line not terminated")
	}
	method, target, proto, ok := splitRequestLine(line)
	if !ok {
		return badRequest("malformed request line")
	}
	if proto != "HTTP/1.1" {
		if strings.HasPrefix(proto, "HTTP/1.") || proto == "HTTP/2.0" || proto == "HTTP/1.0" {
			return badRequest("WebSocket needs HTTP/1.1, got " + proto)
		}
		return badRequest("malformed HTTP version")
	}
	req.Method = method
	if len(target) == 0 || target[0] != '/' {
		return badRequest("request target must be an absolute path")
	}
	req.Path, req.RawQuery, _ = strings.Cut(target, "?")
	keys := 0
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return badRequest("header block not terminated")
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return badRequest("obsolete header folding is not accepted")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return badRequest("header line without a name")
		}
		name := line[:colon]
		if !validToken(name) {
			return badRequest("invalid header name")
		}
		value := string(bytes.TrimSpace(line[colon+1:]))
		switch {
		case asciiEqualFold(name, "host"):
			if req.Host != "" {
				return badRequest("duplicate Host header")
			}
			req.Host = value
		case asciiEqualFold(name, "upgrade"):
			req.UpgradeWebSocket = req.UpgradeWebSocket || hasToken(value, "websocket")
		case asciiEqualFold(name, "connection"):
			req.ConnectionUpgrade = req.ConnectionUpgrade || hasToken(value, "upgrade")
		case asciiEqualFold(name, "sec-websocket-key"):
			keys++
			req.Key = value
		case asciiEqualFold(name, "sec-websocket-version"):
			if req.Version != "" {
				req.Version += ", "
			}
			req.Version += value
		case asciiEqualFold(name, "sec-websocket-extensions"):
			req.Extensions = append(req.Extensions, value)
		case asciiEqualFold(name, "origin"):
			req.Origin = value
		case asciiEqualFold(name, "authorization"):
			req.Authorization = value
		case asciiEqualFold(name, "user-agent"):
			req.UserAgent = value
		case asciiEqualFold(name, "x-forwarded-for"):
			req.XForwardedFor = value
		}
	}
	if len(rest) != 0 {
		return badRequest("data after the header block")
	}
	if keys > 1 {
		return badRequest("more than one Sec-WebSocket-Key")
	}
	return nil
}

// CheckUpgrade validates the WebSocket-specific part of a parsed request:
// 405 for a method other than GET, 426 for a missing Upgrade or a version
// other than 13, 400 for the rest.
func CheckUpgrade(req *Request) *RequestError {
	if req.Method != http.MethodGet {
		return &RequestError{Status: http.StatusMethodNotAllowed, Reason: "the upgrade must be a GET, got " + req.Method,
			Header: [][2]string{{"Allow", "GET"}}}
	}
	if req.Host == "" {
		return badRequest("missing Host header")
	}
	if !req.UpgradeWebSocket {
		return &RequestError{Status: http.StatusUpgradeRequired, Reason: "this endpoint speaks WebSocket only: missing 'Upgrade: websocket'",
			Header: [][2]string{{"Upgrade", "websocket"}, {"Sec-WebSocket-Version", "13"}}}
	}
	if !req.ConnectionUpgrade {
		return badRequest("missing 'upgrade' token in the Connection header")
	}
	if req.Version != "13" {
		return &RequestError{Status: http.StatusUpgradeRequired, Reason: "unsupported Sec-WebSocket-Version " + strconv.Quote(req.Version) + ", want 13",
			Header: [][2]string{{"Sec-WebSocket-Version", "13"}}}
	}
	if req.Key == "" {
		return badRequest("missing Sec-WebSocket-Key")
	}
	if k, err := base64.StdEncoding.DecodeString(req.Key); err != nil || len(k) != 16 {
		return badRequest("Sec-WebSocket-Key must be 16 bytes in base64")
	}
	return nil
}

// NegotiateDeflate returns the Sec-WebSocket-Extensions value to answer
// with ("" when compression is not used).
func NegotiateDeflate(req *Request) string {
	ext := wsflate.Extension{Parameters: wsflate.Parameters{
		ServerNoContextTakeover: true,
		ClientNoContextTakeover: true,
	}}
	for _, h := range req.Extensions {
		opts, ok := httphead.ParseOptions([]byte(h), nil)
		if !ok {
			continue
		}
		for _, opt := range opts {
			acc, err := ext.Negotiate(opt)
			if err != nil {
				continue
			}
			if acc.Size() > 0 {
				var b bytes.Buffer
				if _, err := httphead.WriteOptions(&b, []httphead.Option{acc}); err == nil {
					return b.String()
				}
			}
		}
	}
	return ""
}

// AcceptKey computes Sec-WebSocket-Accept for a client key.
func AcceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// AppendSwitching appends the 101 response to a client key, with the
// negotiated extensions when not empty.
func AppendSwitching(dst []byte, key, extensions string) []byte {
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	dst = append(dst, AcceptKey(key)...)
	dst = append(dst, "\r\n"...)
	if extensions != "" {
		dst = append(dst, "Sec-WebSocket-Extensions: "...)
		dst = append(dst, extensions...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// AppendRefusal appends a complete HTTP error response that closes the
// connection, with reason as a one-line plain-text body.
func AppendRefusal(dst []byte, status int, reason string, header [][2]string) []byte {
	return AppendResponse(dst, status, "text/plain; charset=utf-8", header, []byte(reason+"\n"), false)
}

// AppendResponse appends a complete HTTP/1.1 response that closes the
// connection: status, Content-Type, Content-Length, the header lines, then
// body unless head (the answer to a HEAD request, which announces the
// body's length without it).
func AppendResponse(dst []byte, status int, contentType string, header [][2]string, body []byte, head bool) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(status)...)
	dst = append(dst, "\r\nContent-Type: "...)
	dst = append(dst, contentType...)
	dst = append(dst, "\r\nConnection: close\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n"...)
	for _, h := range header {
		dst = append(dst, h[0]...)
		dst = append(dst, ": "...)
		dst = append(dst, h[1]...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	if head {
		return dst
	}
	return append(dst, body...)
}

// cutLine splits off one line ending in CRLF (a bare LF is accepted too).
func cutLine(p []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		return nil, p, false
	}
	line = p[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, p[i+1:], true
}

func splitRequestLine(line []byte) (method, target, proto string, ok bool) {
	s := string(line)
	method, s, ok1 := strings.Cut(s, " ")
	target, proto, ok2 := strings.Cut(s, " ")
	if !ok1 || !ok2 || method == "" || target == "" || strings.ContainsAny(proto, " ") {
		return "", "", "", false
	}
	if !validToken([]byte(method)) {
		return "", "", "", false
	}
	return method, target, proto, true
}

// validToken reports whether b is an RFC 7230 token.
func validToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated header value contains token
// (case-insensitive).
func hasToken(value, token string) bool {
	for value != "" {
		var t string
		t, value, _ = strings.Cut(value, ",")
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}
