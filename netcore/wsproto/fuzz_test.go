package wsproto_test

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore/wsproto"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// Native fuzz targets, one per parser; `make test` runs each briefly.

func FuzzParseHeader(f *testing.F) {
	f.Add(wstest.ClientFrame(true, 0, ws.OpText, []byte("hello"), true))
	f.Add(wstest.ClientFrame(false, 4, ws.OpBinary, make([]byte, 300), true))
	f.Add(wstest.ClientFrame(true, 0, ws.OpPing, nil, false))
	f.Add([]byte{0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) < 2 {
			return
		}
		h, n, err := wsproto.ParseHeader(p)
		if n != wsproto.HeaderLen(p[0], p[1]) {
			t.Fatalf("header size %d, wsproto.HeaderLen says %d", n, wsproto.HeaderLen(p[0], p[1]))
		}
		if err != nil {
			return
		}
		if h.Length < 0 {
			t.Fatalf("negative length %d", h.Length)
		}
		// What parses re-encodes to the same bytes (for unmasked headers).
		if !h.Masked {
			buf := make([]byte, wsproto.MaxServerHeaderSize)
			m := wsproto.PutHeader(buf, h.Fin, h.Rsv1(), h.OpCode, int(h.Length))
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
		var req wsproto.Request
		if herr := wsproto.ParseRequest(p, &req); herr != nil {
			if herr.Status < 400 || herr.Status > 499 {
				t.Fatalf("parse error with status %d", herr.Status)
			}
			return
		}
		_ = req.Query("token")
		if herr := wsproto.CheckUpgrade(&req); herr != nil {
			if herr.Status < 400 || herr.Status > 499 {
				t.Fatalf("upgrade refused with status %d", herr.Status)
			}
			return
		}
		if req.Host == "" || req.Key == "" || req.Method != "GET" {
			t.Fatalf("accepted an incomplete request: %+v", req)
		}
		_ = wsproto.NegotiateDeflate(&req)
		_ = wsproto.AppendSwitching(nil, req.Key, "")
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
		var s wsproto.UTF8State
		ok := true
		for i := 0; i < len(p) && ok; i += int(step) {
			ok = s.Feed(p[i:min(i+int(step), len(p))])
		}
		if ok {
			ok = s.Done()
		}
		if want := utf8.Valid(p); ok != want {
			t.Fatalf("fed in steps of %d: valid=%v, utf8.Valid=%v for %x", step, ok, want, p)
		}
	})
}

// BenchmarkFramePath is the per-frame work without the network: parse a
// masked client header, unmask 64 bytes, write the server header.
func BenchmarkFramePath(b *testing.B) {
	in := wstest.ClientFrame(true, 0, ws.OpBinary, bytes.Repeat([]byte("p"), 64), true)
	payload := make([]byte, 64)
	out := make([]byte, wsproto.MaxServerHeaderSize+64)
	b.ReportAllocs()
	b.SetBytes(64)
	for i := 0; i < b.N; i++ {
		h, n, err := wsproto.ParseHeader(in)
		if err != nil {
			b.Fatal(err)
		}
		copy(payload, in[n:])
		ws.Cipher(payload, h.Mask, 0)
		m := wsproto.PutHeader(out, true, false, h.OpCode, len(payload))
		copy(out[m:], payload)
	}
}
