package netcore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// An Autobahn-style conformance suite, written from RFC 6455 and RFC 7692:
// a raw TCP client sends hand-built frames to the echo endpoint and checks
// the echo and close behaviour. Section numbers follow Autobahn's case
// categories (1-7, 9 scaled down, 10, 12-13).

// conformanceServer starts an echo server for the suite.
func conformanceServer(t *testing.T) string {
	t.Helper()
	_, addr := testServer(t, Config{MaxMessageSize: 1 << 20, CompressionThreshold: 1})
	return addr
}

// 1: framing. Text and binary messages of every length-encoding boundary.
func TestConformance1Framing(t *testing.T) {
	addr := conformanceServer(t)
	c := wstest.Dial(t, addr, "/echo")
	for _, op := range []ws.OpCode{ws.OpText, ws.OpBinary} {
		for _, n := range []int{0, 1, 125, 126, 127, 128, 65535, 65536, 300000} {
			p := bytes.Repeat([]byte("*"), n)
			c.Send(true, op, p)
			c.ExpectEcho(op, p)
		}
	}
	// Many frames in one TCP write are all answered (one batch, one flush).
	var burst []byte
	for i := 0; i < 100; i++ {
		burst = append(burst, wstest.ClientFrame(true, 0, ws.OpBinary, []byte(strconv.Itoa(i)), true)...)
	}
	c.Write(burst)
	for i := 0; i < 100; i++ {
		c.ExpectEcho(ws.OpBinary, []byte(strconv.Itoa(i)))
	}
}

// 1 (RFC 6455 5.1): a client frame that is not masked fails the connection.
func TestConformanceUnmaskedFrame(t *testing.T) {
	c := wstest.Dial(t, conformanceServer(t), "/echo")
	c.Write(wstest.ClientFrame(true, 0, ws.OpText, []byte("hi"), false))
	c.ExpectClose(CloseProtocolError)
}

// 1: a 64-bit length with the most significant bit set, and lengths not
// minimally encoded, are protocol errors.
func TestConformanceBadLengths(t *testing.T) {
	addr := conformanceServer(t)
	cases := map[string][]byte{
		"msb set":          {0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4},
		"16-bit for 5":     {0x82, 0x80 | 126, 0, 5, 1, 2, 3, 4},
		"64-bit for 65535": {0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4},
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			c := wstest.Dial(t, addr, "/echo")
			c.Write(b)
			c.ExpectClose(CloseProtocolError)
		})
	}
}

// 2: pings and pongs.
func TestConformance2PingPong(t *testing.T) {
	addr := conformanceServer(t)
	t.Run("ping payloads are echoed in pongs", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		for _, n := range []int{0, 1, 125} {
			p := bytes.Repeat([]byte{0xfe}, n)
			c.Send(true, ws.OpPing, p)
			f := c.Next()
			if f.Header.OpCode != ws.OpPong || !bytes.Equal(f.Payload, p) {
				t.Fatalf("ping %d bytes: got op %d with %d bytes", n, f.Header.OpCode, len(f.Payload))
			}
		}
	})
	t.Run("ping over 125 bytes", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		c.Send(true, ws.OpPing, make([]byte, 126))
		c.ExpectClose(CloseProtocolError)
	})
	t.Run("unsolicited pong is ignored", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		c.Send(true, ws.OpPong, []byte("unsolicited"))
		c.Send(true, ws.OpText, []byte("still here"))
		c.ExpectEcho(ws.OpText, []byte("still here"))
	})
	t.Run("ten pings in one write get ten pongs", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		var b []byte
		for i := 0; i < 10; i++ {
			b = append(b, wstest.ClientFrame(true, 0, ws.OpPing, []byte{byte(i)}, true)...)
		}
		c.Write(b)
		for i := 0; i < 10; i++ {
			if f := c.Next(); f.Header.OpCode != ws.OpPong || f.Payload[0] != byte(i) {
				t.Fatalf("pong %d: op %d payload %v", i, f.Header.OpCode, f.Payload)
			}
		}
	})
}

// 3: reserved bits without a negotiated extension.
func TestConformance3ReservedBits(t *testing.T) {
	addr := conformanceServer(t)
	for _, rsv := range []byte{1, 2, 3, 4, 5, 6, 7} {
		for _, op := range []ws.OpCode{ws.OpText, ws.OpBinary, ws.OpPing} {
			t.Run("rsv"+strconv.Itoa(int(rsv))+"/op"+strconv.Itoa(int(op)), func(t *testing.T) {
				c := wstest.Dial(t, addr, "/echo")
				c.Send(true, ws.OpText, []byte("before"))
				c.ExpectEcho(ws.OpText, []byte("before"))
				c.Write(wstest.ClientFrame(true, rsv, op, []byte("x"), true))
				c.ExpectClose(CloseProtocolError)
			})
		}
	}
}

// 4: reserved opcodes.
func TestConformance4ReservedOpcodes(t *testing.T) {
	addr := conformanceServer(t)
	for _, op := range []ws.OpCode{3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf} {
		t.Run(strconv.Itoa(int(op)), func(t *testing.T) {
			c := wstest.Dial(t, addr, "/echo")
			c.Write(wstest.ClientFrame(true, 0, op, []byte("payload"), true))
			c.ExpectClose(CloseProtocolError)
		})
	}
}

// 5: fragmentation.
func TestConformance5Fragmentation(t *testing.T) {
	addr := conformanceServer(t)
	t.Run("two fragments", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		c.Send(false, ws.OpText, []byte("frag"))
		c.Send(true, ws.OpContinuation, []byte("ment"))
		c.ExpectEcho(ws.OpText, []byte("fragment"))
	})
	t.Run("one-byte fragments with pings between", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		msg := []byte("fragmented binary message")
		c.Send(false, ws.OpBinary, msg[:1])
		for i := 1; i < len(msg); i++ {
			c.Send(true, ws.OpPing, []byte{byte(i)})
			if f := c.Next(); f.Header.OpCode != ws.OpPong || f.Payload[0] != byte(i) {
				t.Fatalf("pong between fragments: op %d", f.Header.OpCode)
			}
			c.Send(i == len(msg)-1, ws.OpContinuation, msg[i:i+1])
		}
		c.ExpectEcho(ws.OpBinary, msg)
	})
	t.Run("empty fragments", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		c.Send(false, ws.OpText, nil)
		c.Send(false, ws.OpContinuation, nil)
		c.Send(true, ws.OpContinuation, nil)
		c.ExpectEcho(ws.OpText, []byte{})
	})
	t.Run("continuation without a start", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		c.Send(true, ws.OpContinuation, []byte("orphan"))
		c.ExpectClose(CloseProtocolError)
	})
	t.Run("new message while fragmented", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		c.Send(false, ws.OpText, []byte("one"))
		c.Send(true, ws.OpText, []byte("two"))
		c.ExpectClose(CloseProtocolError)
	})
	t.Run("fragmented ping", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		c.Send(false, ws.OpPing, []byte("pi"))
		c.ExpectClose(CloseProtocolError)
	})
	t.Run("fragmented close", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		c.Send(false, ws.OpClose, []byte{3, 232})
		c.ExpectClose(CloseProtocolError)
	})
}

// 6: UTF-8 handling of text messages, whole and fragmented.
func TestConformance6UTF8(t *testing.T) {
	addr := conformanceServer(t)
	valid := [][]byte{
		[]byte("κόσμε"),
		[]byte("\x00\x7f"),
		[]byte("\xc2\x80\xdf\xbf"),                 // 2-byte boundaries
		[]byte("\xe0\xa0\x80\xef\xbf\xbf"),         // 3-byte boundaries
		[]byte("\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"), // 4-byte boundaries
		[]byte("\xef\xbb\xbf"),                     // BOM
		[]byte("\xee\x80\x80"),                     // private use
	}
	invalid := [][]byte{
		[]byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"), // surrogate
		[]byte("\x80"),             // lone continuation
		[]byte("\xc0\xaf"),         // overlong /
		[]byte("\xe0\x80\xaf"),     // overlong
		[]byte("\xf4\x90\x80\x80"), // beyond U+10FFFF
		[]byte("\xf8\x88\x80\x80\x80"),
		[]byte("\xfe"), []byte("\xff"),
		[]byte("\xce"), // truncated at the end
	}
	for i, p := range valid {
		t.Run("valid "+strconv.Itoa(i), func(t *testing.T) {
			c := wstest.Dial(t, addr, "/echo")
			c.Send(true, ws.OpText, p)
			c.ExpectEcho(ws.OpText, p)
			// Byte by byte in fragments: code points split between frames.
			for j := range p {
				c.Send(j == len(p)-1, map[bool]ws.OpCode{true: ws.OpText, false: ws.OpContinuation}[j == 0], p[j:j+1])
			}
			c.ExpectEcho(ws.OpText, p)
		})
	}
	for i, p := range invalid {
		t.Run("invalid "+strconv.Itoa(i), func(t *testing.T) {
			c := wstest.Dial(t, addr, "/echo")
			c.Send(true, ws.OpText, p)
			c.ExpectClose(CloseInvalidPayload)
		})
		t.Run("invalid fragmented "+strconv.Itoa(i), func(t *testing.T) {
			c := wstest.Dial(t, addr, "/echo")
			for j := range p {
				// The server may fail fast and close before the last fragment.
				op := map[bool]ws.OpCode{true: ws.OpText, false: ws.OpContinuation}[j == 0]
				if _, err := c.Conn.Write(wstest.ClientFrame(j == len(p)-1, 0, op, p[j:j+1], true)); err != nil {
					break
				}
			}
			c.ExpectClose(CloseInvalidPayload)
		})
	}
	t.Run("fail fast in the first fragment", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		c.Send(false, ws.OpText, []byte("ok\xed\xa0\x80"))
		// No more fragments: the server must not wait for the rest.
		c.ExpectClose(CloseInvalidPayload)
	})
	t.Run("binary is not checked", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		c.Send(true, ws.OpBinary, []byte{0xff, 0xfe})
		c.ExpectEcho(ws.OpBinary, []byte{0xff, 0xfe})
	})
}

// 7: the closing handshake.
func TestConformance7Close(t *testing.T) {
	addr := conformanceServer(t)
	closeBody := func(code uint16, reason string) []byte {
		b := binary.BigEndian.AppendUint16(nil, code)
		return append(b, reason...)
	}
	t.Run("empty close is answered with 1000", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		c.Send(true, ws.OpClose, nil)
		c.ExpectClose(CloseNormal)
	})
	t.Run("one-byte close payload", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		c.Send(true, ws.OpClose, []byte{3})
		c.ExpectClose(CloseProtocolError)
	})
	t.Run("data after close is ignored", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		b := wstest.ClientFrame(true, 0, ws.OpClose, closeBody(1000, "bye"), true)
		b = append(b, wstest.ClientFrame(true, 0, ws.OpText, []byte("late"), true)...)
		b = append(b, wstest.ClientFrame(true, 0, ws.OpPing, []byte("late"), true)...)
		c.Write(b)
		c.ExpectClose(CloseNormal)
	})
	t.Run("123-byte reason", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		c.Send(true, ws.OpClose, closeBody(1000, strings.Repeat("r", 123)))
		c.ExpectClose(CloseNormal)
	})
	t.Run("invalid UTF-8 reason", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		c.Send(true, ws.OpClose, closeBody(1000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"))
		c.ExpectClose(CloseInvalidPayload)
	})
	for _, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		t.Run("valid code "+strconv.Itoa(int(code)), func(t *testing.T) {
			c := wstest.Dial(t, addr, "/echo")
			c.Send(true, ws.OpClose, closeBody(code, "reason"))
			c.ExpectClose(ws.StatusCode(code))
		})
	}
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		t.Run("invalid code "+strconv.Itoa(int(code)), func(t *testing.T) {
			c := wstest.Dial(t, addr, "/echo")
			c.Send(true, ws.OpClose, closeBody(code, ""))
			c.ExpectClose(CloseProtocolError)
		})
	}
}

// 9 (scaled down): large messages whole and in many fragments, and the
// message size limit.
func TestConformance9Limits(t *testing.T) {
	_, addr := testServer(t, Config{MaxMessageSize: 256 << 10})
	t.Run("256 KiB in one frame and in 1 KiB fragments", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		p := bytes.Repeat([]byte("0123456789abcdef"), 16<<10)
		c.Send(true, ws.OpBinary, p)
		c.ExpectEcho(ws.OpBinary, p)
		for i := 0; i < len(p); i += 1024 {
			op := ws.OpContinuation
			if i == 0 {
				op = ws.OpBinary
			}
			c.Send(i+1024 >= len(p), op, p[i:i+1024])
		}
		c.ExpectEcho(ws.OpBinary, p)
	})
	t.Run("one frame over the limit", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		// Only the header: the server must refuse on the length alone.
		c.Write(wstest.ClientFrame(true, 0, ws.OpBinary, make([]byte, 256<<10+1), true)[:14])
		c.ExpectClose(CloseTooBig)
	})
	t.Run("fragments adding up over the limit", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		chunk := make([]byte, 64<<10)
		c.Send(false, ws.OpBinary, chunk)
		for i := 0; i < 3; i++ {
			c.Send(false, ws.OpContinuation, chunk)
		}
		c.Send(true, ws.OpContinuation, []byte{1})
		c.ExpectClose(CloseTooBig)
	})
}

// 10: a large message arriving in small TCP segments (Autobahn's
// auto-fragmentation at 1300 bytes).
func TestConformance10SmallSegments(t *testing.T) {
	c := wstest.Dial(t, conformanceServer(t), "/echo")
	p := bytes.Repeat([]byte("x"), 65536)
	b := wstest.ClientFrame(true, 0, ws.OpText, p, true)
	for i := 0; i < len(b); i += 1300 {
		c.Write(b[i:min(i+1300, len(b))])
		time.Sleep(100 * time.Microsecond)
	}
	c.ExpectEcho(ws.OpText, p)
}

// 12-13: permessage-deflate.
func TestConformance12Deflate(t *testing.T) {
	addr := conformanceServer(t)
	ext := "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
	t.Run("negotiated without context takeover", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo", ext)
		got := c.Resp.Header.Get("Sec-WebSocket-Extensions")
		if !strings.Contains(got, "permessage-deflate") || !strings.Contains(got, "server_no_context_takeover") || !strings.Contains(got, "client_no_context_takeover") {
			t.Fatalf("Sec-WebSocket-Extensions %q", got)
		}
	})
	t.Run("not offered, not used", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo")
		if got := c.Resp.Header.Get("Sec-WebSocket-Extensions"); got != "" {
			t.Fatalf("extension %q answered without an offer", got)
		}
	})
	t.Run("compressed messages of many sizes", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo", ext)
		for _, n := range []int{0, 16, 64, 125, 126, 4096, 65535, 65536, 200000} {
			p := bytes.Repeat([]byte("deflate me "), n/11+1)[:n]
			c.Write(wstest.ClientFrame(true, 4, ws.OpText, wstest.Deflate(t, p), true))
			c.ExpectEcho(ws.OpText, p)
			c.Write(wstest.ClientFrame(true, 4, ws.OpBinary, wstest.Deflate(t, p), true))
			c.ExpectEcho(ws.OpBinary, p)
		}
	})
	t.Run("uncompressed messages still accepted", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo", ext)
		c.Send(true, ws.OpText, []byte("plain"))
		c.ExpectEcho(ws.OpText, []byte("plain"))
	})
	t.Run("compressed message in fragments", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo", ext)
		p := []byte(strings.Repeat("fragmented and compressed ", 100))
		z := wstest.Deflate(t, p)
		c.Write(wstest.ClientFrame(false, 4, ws.OpText, z[:10], true))
		c.Write(wstest.ClientFrame(false, 0, ws.OpContinuation, z[10:20], true))
		c.Write(wstest.ClientFrame(true, 0, ws.OpContinuation, z[20:], true))
		c.ExpectEcho(ws.OpText, p)
	})
	t.Run("RSV1 on a continuation", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo", ext)
		z := wstest.Deflate(t, []byte("abcdefgh"))
		c.Write(wstest.ClientFrame(false, 4, ws.OpText, z[:2], true))
		c.Write(wstest.ClientFrame(true, 4, ws.OpContinuation, z[2:], true))
		c.ExpectClose(CloseProtocolError)
	})
	t.Run("RSV1 on a control frame", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo", ext)
		c.Write(wstest.ClientFrame(true, 4, ws.OpPing, nil, true))
		c.ExpectClose(CloseProtocolError)
	})
	t.Run("zip bomb gets 1009", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo", ext)
		bomb := wstest.Deflate(t, make([]byte, 16<<20)) // 16 MiB of zeros in ~16 KiB
		c.Write(wstest.ClientFrame(true, 4, ws.OpBinary, bomb, true))
		c.ExpectClose(CloseTooBig)
	})
	t.Run("corrupt deflate data", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo", ext)
		c.Write(wstest.ClientFrame(true, 4, ws.OpBinary, []byte{0xff, 0xff, 0xff, 0xff}, true))
		c.ExpectClose(CloseProtocolError)
	})
	t.Run("compressed text with invalid UTF-8", func(t *testing.T) {
		c := wstest.Dial(t, addr, "/echo", ext)
		c.Write(wstest.ClientFrame(true, 4, ws.OpText, wstest.Deflate(t, []byte("ok\xff")), true))
		c.ExpectClose(CloseInvalidPayload)
	})
}

// The opening handshake (RFC 6455 4.2): refusals and their statuses.
func TestConformanceHandshake(t *testing.T) {
	_, addr := testServer(t, Config{MaxHeaderBytes: 1024})
	key := "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	good := "Host: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n" + key + "Sec-WebSocket-Version: 13\r\n"
	cases := []struct {
		name, req string
		status    int
		header    [2]string
	}{
		{"ok", "GET /echo HTTP/1.1\r\n" + good + "\r\n", 101, [2]string{"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}},
		{"wrong version", "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key + "Sec-WebSocket-Version: 8\r\n\r\n", 426, [2]string{"Sec-WebSocket-Version", "13"}},
		{"no version", "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key + "\r\n", 426, [2]string{"Sec-WebSocket-Version", "13"}},
		{"no key", "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", 400, [2]string{}},
		{"short key", "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n", 400, [2]string{}},
		{"plain GET", "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", 426, [2]string{"Upgrade", "websocket"}},
		{"no connection upgrade", "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" + key + "Sec-WebSocket-Version: 13\r\n\r\n", 400, [2]string{}},
		{"no host", "GET /echo HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key + "Sec-WebSocket-Version: 13\r\n\r\n", 400, [2]string{}},
		{"POST", "POST /echo HTTP/1.1\r\n" + good + "\r\n", 405, [2]string{"Allow", "GET"}},
		{"HTTP/1.0", "GET /echo HTTP/1.0\r\n" + good + "\r\n", 400, [2]string{}},
		{"unknown path", "GET /nope HTTP/1.1\r\n" + good + "\r\n", 404, [2]string{}},
		{"header folding", "GET /echo HTTP/1.1\r\n" + good + " folded\r\n\r\n", 400, [2]string{}},
		{"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, [2]string{}},
		{"head too large", "GET /echo HTTP/1.1\r\n" + good + "X-Big: " + strings.Repeat("a", 2000) + "\r\n\r\n", 431, [2]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_, _ = conn.Write([]byte(tc.req))
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.header[0] != "" && resp.Header.Get(tc.header[0]) != tc.header[1] {
				t.Fatalf("%s: %q, want %q", tc.header[0], resp.Header.Get(tc.header[0]), tc.header[1])
			}
		})
	}
}
