package netcore

import (
	"bytes"
	"net"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Native fuzz targets, one per parser; `make test` runs each briefly.

func FuzzParseHeader(f *testing.F) {
	f.Add(frame(true, 0, ws.OpText, []byte("hello"), true))
	f.Add(frame(false, 4, ws.OpBinary, make([]byte, 300), true))
	f.Add(frame(true, 0, ws.OpPing, nil, false))
	f.Add([]byte{0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) < 2 {
			return
		}
		h, n, err := parseHeader(p)
		if n != headerLen(p[0], p[1]) {
			t.Fatalf("header size %d, headerLen says %d", n, headerLen(p[0], p[1]))
		}
		if err != nil {
			return
		}
		if h.Length < 0 {
			t.Fatalf("negative length %d", h.Length)
		}
		// What parses re-encodes to the same bytes (for unmasked headers).
		if !h.Masked {
			buf := make([]byte, maxServerHeaderSize)
			m := putHeader(buf, h.Fin, h.Rsv1(), h.OpCode, int(h.Length))
			if h.Rsv&^4 == 0 && !bytes.Equal(buf[:m], p[:n]) {
				t.Fatalf("re-encoded header %x, parsed from %x", buf[:m], p[:n])
			}
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"))
	f.Add([]byte("GET /ws?token=a%20b&x=1 HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, p []byte) {
		var req Request
		if herr := parseRequest(p, &req); herr != nil {
			if herr.Status < 400 || herr.Status > 499 {
				t.Fatalf("parse error with status %d", herr.Status)
			}
			return
		}
		_ = req.Query("token")
		if herr := checkUpgrade(&req); herr != nil {
			if herr.Status < 400 || herr.Status > 499 {
				t.Fatalf("upgrade refused with status %d", herr.Status)
			}
			return
		}
		if req.Host == "" || req.key == "" || req.Method != "GET" {
			t.Fatalf("accepted an incomplete request: %+v", req)
		}
		_ = negotiateDeflate(&req)
		_ = appendSwitching(nil, req.key, "")
	})
}

func FuzzUTF8(f *testing.F) {
	f.Add([]byte("κόσμε"), uint8(3))
	f.Add([]byte("\xed\xa0\x80"), uint8(1))
	f.Add([]byte("\xf0\x90\x80\x80"), uint8(2))
	f.Fuzz(func(t *testing.T, p []byte, step uint8) {
		if step == 0 {
			step = 1
		}
		var s utf8State
		ok := true
		for i := 0; i < len(p) && ok; i += int(step) {
			ok = s.feed(p[i:min(i+int(step), len(p))])
		}
		if ok {
			ok = s.done()
		}
		if want := utf8.Valid(p); ok != want {
			t.Fatalf("fed in steps of %d: valid=%v, utf8.Valid=%v for %x", step, ok, want, p)
		}
	})
}

// FuzzFrames sends arbitrary bytes after a real handshake to a real server:
// nothing may panic it, and a fresh client must still be served.
func FuzzFrames(f *testing.F) {
	f.Add(frame(true, 0, ws.OpText, []byte("hello"), true))
	f.Add(append(frame(false, 0, ws.OpText, []byte("he"), true), frame(true, 0, ws.OpContinuation, []byte("llo"), true)...))
	f.Add(frame(true, 0, ws.OpClose, []byte{3, 232, 'b', 'y', 'e'}, true))
	f.Add(frame(true, 4, ws.OpBinary, []byte{0xff, 0xff}, true))
	f.Add([]byte{0x81, 0xfe, 0xff})
	srv, addr := testServer(f, Config{EchoPath: "/echo", MaxMessageSize: 1 << 16})
	f.Fuzz(func(t *testing.T, p []byte) {
		c := dialRaw(t, addr, "/echo", "Sec-WebSocket-Extensions: permessage-deflate")
		_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.conn.Write(p)
		// Read whatever comes back until the server closes or goes quiet.
		for {
			if _, err := c.tryNext(20 * time.Millisecond); err != nil {
				break
			}
		}
		_ = c.conn.(*net.TCPConn).SetLinger(0)
		c.conn.Close()
		if n := srv.Stats().Panics; n != 0 {
			t.Fatalf("the server recovered %d panics", n)
		}
	})
}
