package netcore

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/klauspost/compress/flate"
)

// rawClient is a WebSocket client built from bytes on a TCP socket, for the
// conformance suite: it can send any frame, legal or not.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
	resp *http.Response
}

// dialRaw connects and performs the opening handshake with extra header
// lines (e.g. "Sec-WebSocket-Extensions: permessage-deflate").
func dialRaw(t testing.TB, addr, path string, extra ...string) *rawClient {
	t.Helper()
	c, resp := dialRawResp(t, addr, path, extra...)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: status %d, want 101", resp.StatusCode)
	}
	return c
}

func dialRawResp(t testing.TB, addr, path string, extra ...string) (*rawClient, *http.Response) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var key [16]byte
	_, _ = rand.Read(key[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key[:]) + "\r\nSec-WebSocket-Version: 13\r\n"
	for _, h := range extra {
		req += h + "\r\n"
	}
	req += "\r\n"
	c := &rawClient{t: t, conn: conn, br: bufio.NewReader(conn)}
	c.write([]byte(req))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("read handshake response: %v", err)
	}
	c.resp = resp
	if resp.StatusCode == http.StatusSwitchingProtocols {
		want := acceptKey(base64.StdEncoding.EncodeToString(key[:]))
		if got := resp.Header.Get("Sec-WebSocket-Accept"); got != want {
			t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, want)
		}
	}
	return c, resp
}

func (c *rawClient) write(p []byte) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.conn.Write(p); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// frame encodes a client frame. rsv holds RSV1..3 as bits 4..6 of byte 0
// (0x4 = RSV1, 0x2 = RSV2, 0x1 = RSV3).
func frame(fin bool, rsv byte, op ws.OpCode, payload []byte, masked bool) []byte {
	var b bytes.Buffer
	b0 := byte(op) | rsv<<4
	if fin {
		b0 |= 0x80
	}
	b.WriteByte(b0)
	var mbit byte
	if masked {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b.WriteByte(mbit | byte(n))
	case n <= 0xffff:
		b.WriteByte(mbit | 126)
		_ = binary.Write(&b, binary.BigEndian, uint16(n))
	default:
		b.WriteByte(mbit | 127)
		_ = binary.Write(&b, binary.BigEndian, uint64(n))
	}
	p := append([]byte(nil), payload...)
	if masked {
		var mask [4]byte
		_, _ = rand.Read(mask[:])
		b.Write(mask[:])
		ws.Cipher(p, mask, 0)
	}
	b.Write(p)
	return b.Bytes()
}

// send writes one masked frame.
func (c *rawClient) send(fin bool, op ws.OpCode, payload []byte) {
	c.t.Helper()
	c.write(frame(fin, 0, op, payload, true))
}

type serverFrame struct {
	h       ws.Header
	payload []byte
}

// next reads one server frame, failing the test on timeout.
func (c *rawClient) next() serverFrame {
	c.t.Helper()
	f, err := c.tryNext(5 * time.Second)
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return f
}

func (c *rawClient) tryNext(timeout time.Duration) (serverFrame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	h, err := ws.ReadHeader(c.br)
	if err != nil {
		return serverFrame{}, err
	}
	if h.Masked {
		return serverFrame{}, fmt.Errorf("server frame is masked")
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return serverFrame{}, err
	}
	return serverFrame{h, p}, nil
}

// nextData reads the next data frame, answering nothing and skipping pings.
func (c *rawClient) nextData() serverFrame {
	c.t.Helper()
	for {
		f := c.next()
		if f.h.OpCode != ws.OpPing {
			return f
		}
	}
}

// expectEcho checks that the next data frame is a final frame of op with
// payload want (inflating it when RSV1 is set).
func (c *rawClient) expectEcho(op ws.OpCode, want []byte) {
	c.t.Helper()
	f := c.nextData()
	got := f.payload
	if f.h.Rsv1() {
		got = inflateForTest(c.t, got)
	}
	if f.h.OpCode != op || !f.h.Fin || !bytes.Equal(got, want) {
		c.t.Fatalf("got frame op=%d fin=%v len=%d, want echo op=%d len=%d", f.h.OpCode, f.h.Fin, len(got), op, len(want))
	}
}

// expectClose checks that the server sends a close frame with code, then
// drops the connection.
func (c *rawClient) expectClose(code ws.StatusCode) {
	c.t.Helper()
	f := c.nextData()
	if f.h.OpCode != ws.OpClose {
		c.t.Fatalf("got op %d (%d bytes), want close %d", f.h.OpCode, len(f.payload), code)
	}
	got, reason := ws.ParseCloseFrameData(f.payload)
	if got != code {
		c.t.Fatalf("close code %d (%q), want %d", got, reason, code)
	}
	c.expectEOF()
}

// expectEOF checks that the server closes the TCP connection.
func (c *rawClient) expectEOF() {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, c.br)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		c.t.Fatalf("waiting for the server to close TCP: %v (after %d bytes)", err, n)
	}
}

// deflateForTest compresses p as a permessage-deflate payload.
func deflateForTest(t testing.TB, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	_, _ = w.Write(p)
	_ = w.Flush()
	out := b.Bytes()
	return out[:len(out)-4]
}

func inflateForTest(t testing.TB, p []byte) []byte {
	t.Helper()
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("inflate server frame: %v", err)
	}
	return out
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }
