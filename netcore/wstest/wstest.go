// Package wstest is a WebSocket client built from bytes on a TCP socket, and
// the polling helper of sockmon's tests. The client can send any frame,
// legal or not, which is what a conformance suite and the misbehaving-client
// tests need; every method fails the test (t.Fatal) on an I/O error, so it is
// for tests only. Frames are encoded by wsproto, the same code the engine and
// the load generator use.
package wstest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/klauspost/compress/flate"
	"github.com/sockmon/sockmon/netcore/wsproto"
)

// IOTimeout bounds every read and write of a Client.
const IOTimeout = 5 * time.Second

// WaitFor polls cond every 2 ms until it holds, and fails the test if it
// does not within 10 seconds.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll(t, 10*time.Second, 2*time.Millisecond, func() string {
		if cond() {
			return ""
		}
		return "timed out waiting for " + what
	})
}

// Eventually calls check every 20 ms until it returns "", and fails the
// test with check's last answer if it does not within d. For conditions
// that cost a request to another process, and whose failure says more
// than a name.
func Eventually(t testing.TB, d time.Duration, check func() string) {
	t.Helper()
	poll(t, d, 20*time.Millisecond, func() string {
		if msg := check(); msg != "" {
			return fmt.Sprintf("after %s: %s", d, msg)
		}
		return ""
	})
}

func poll(t testing.TB, d, every time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(every)
	}
}

// Client is one raw WebSocket connection. Its fields may be used directly
// (to send bytes that are not frames, or to read with a custom deadline).
// Not safe for concurrent use.
type Client struct {
	T      testing.TB
	Conn   net.Conn
	Reader *bufio.Reader
	// Resp is the server's answer to the opening handshake.
	Resp *http.Response
}

// Frame is one frame the server sent.
type Frame struct {
	Header  ws.Header
	Payload []byte
}

// Dial connects to addr and performs the opening handshake for path with
// extra header lines (for example "Sec-WebSocket-Extensions:
// permessage-deflate"). It fails the test unless the server answers 101
// with the right Sec-WebSocket-Accept. The connection is closed when the
// test ends.
func Dial(t testing.TB, addr, path string, extra ...string) *Client {
	t.Helper()
	c, resp := DialResp(t, addr, path, extra...)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: status %d, want 101", resp.StatusCode)
	}
	return c
}

// DialResp is Dial that accepts any answer: refusals are for the caller to
// check in the returned response.
func DialResp(t testing.TB, addr, path string, extra ...string) (*Client, *http.Response) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, IOTimeout)
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
	c := &Client{T: t, Conn: conn, Reader: bufio.NewReader(conn)}
	c.Write([]byte(req))
	_ = conn.SetReadDeadline(time.Now().Add(IOTimeout))
	resp, err := http.ReadResponse(c.Reader, nil)
	if err != nil {
		t.Fatalf("read handshake response: %v", err)
	}
	c.Resp = resp
	if resp.StatusCode == http.StatusSwitchingProtocols {
		want := wsproto.AcceptKey(base64.StdEncoding.EncodeToString(key[:]))
		if got := resp.Header.Get("Sec-WebSocket-Accept"); got != want {
			t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, want)
		}
	}
	return c, resp
}

// Write writes raw bytes.
func (c *Client) Write(p []byte) {
	c.T.Helper()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(IOTimeout))
	if _, err := c.Conn.Write(p); err != nil {
		c.T.Fatalf("write: %v", err)
	}
}

// ClientFrame encodes a client frame, masked with a random key or not
// masked at all (which a server must refuse). rsv holds RSV1..RSV3 as bits
// 2..0 (4 is RSV1).
func ClientFrame(fin bool, rsv byte, op ws.OpCode, payload []byte, masked bool) []byte {
	if masked {
		var mask [4]byte
		_, _ = rand.Read(mask[:])
		return wsproto.AppendClientFrame(nil, fin, rsv, op, payload, mask)
	}
	// An unmasked frame is a server frame with the client's bits.
	b := wsproto.AppendFrame(nil, fin, rsv&4 != 0, op, payload)
	b[0] |= (rsv & 3) << 4
	return b
}

// Send writes one masked frame.
func (c *Client) Send(fin bool, op ws.OpCode, payload []byte) {
	c.T.Helper()
	c.Write(ClientFrame(fin, 0, op, payload, true))
}

// Next reads one server frame, failing the test on timeout.
func (c *Client) Next() Frame {
	c.T.Helper()
	f, err := c.TryNext(IOTimeout)
	if err != nil {
		c.T.Fatalf("read frame: %v", err)
	}
	return f
}

// TryNext reads one server frame within timeout.
func (c *Client) TryNext(timeout time.Duration) (Frame, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(timeout))
	h, err := ws.ReadHeader(c.Reader)
	if err != nil {
		return Frame{}, err
	}
	if h.Masked {
		return Frame{}, fmt.Errorf("server frame is masked")
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.Reader, p); err != nil {
		return Frame{}, err
	}
	return Frame{h, p}, nil
}

// NextData reads the next frame that is not a ping (pings are not answered).
func (c *Client) NextData() Frame {
	c.T.Helper()
	for {
		f := c.Next()
		if f.Header.OpCode != ws.OpPing {
			return f
		}
	}
}

// ExpectEcho checks that the next data frame is a final frame of op with
// payload want (inflating it when RSV1 is set).
func (c *Client) ExpectEcho(op ws.OpCode, want []byte) {
	c.T.Helper()
	f := c.NextData()
	got := f.Payload
	if f.Header.Rsv1() {
		got = Inflate(c.T, got)
	}
	if f.Header.OpCode != op || !f.Header.Fin || !bytes.Equal(got, want) {
		c.T.Fatalf("got frame op=%d fin=%v len=%d, want echo op=%d len=%d", f.Header.OpCode, f.Header.Fin, len(got), op, len(want))
	}
}

// ExpectClose checks that the server sends a close frame with code, then
// drops the connection.
func (c *Client) ExpectClose(code ws.StatusCode) {
	c.T.Helper()
	f := c.NextData()
	if f.Header.OpCode != ws.OpClose {
		c.T.Fatalf("got op %d (%d bytes), want close %d", f.Header.OpCode, len(f.Payload), code)
	}
	got, reason := ws.ParseCloseFrameData(f.Payload)
	if got != code {
		c.T.Fatalf("close code %d (%q), want %d", got, reason, code)
	}
	c.ExpectEOF()
}

// ExpectEOF checks that the server closes the TCP connection.
func (c *Client) ExpectEOF() {
	c.T.Helper()
	_ = c.Conn.SetReadDeadline(time.Now().Add(IOTimeout))
	n, err := io.Copy(io.Discard, c.Reader)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		c.T.Fatalf("waiting for the server to close TCP: %v (after %d bytes)", err, n)
	}
}

// Deflate compresses p as a permessage-deflate payload, at best
// compression with a writer of its own (not wsproto's pooled one).
func Deflate(t testing.TB, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	_, _ = w.Write(p)
	_ = w.Flush()
	out := b.Bytes()
	return out[:len(out)-4]
}

// Inflate decompresses a permessage-deflate payload.
func Inflate(t testing.TB, p []byte) []byte {
	t.Helper()
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("inflate server frame: %v", err)
	}
	return out
}

// Rig writes perWrite prebuilt frames at once and reads their replies into
// a buffer of the right size: nothing it does allocates, so allocation
// counts and benchmarks see only the server's work.
type Rig struct {
	C     *Client
	req   []byte
	reply []byte
}

// NewRig dials path and prebuilds perWrite frames of op carrying msg. It
// learns the size of one reply from a first round trip, so the server must
// answer each message with one frame of a fixed size.
func NewRig(t testing.TB, addr, path string, op ws.OpCode, msg []byte, perWrite int) *Rig {
	t.Helper()
	r := &Rig{C: Dial(t, addr, path)}
	r.C.Write(ClientFrame(true, 0, op, msg, true))
	f := r.C.NextData()
	for i := 0; i < perWrite; i++ {
		r.req = append(r.req, ClientFrame(true, 0, op, msg, true)...)
	}
	r.reply = make([]byte, perWrite*(wsproto.ServerHeaderLen(len(f.Payload))+len(f.Payload)))
	return r
}

// NewRigOn is NewRig on an existing connection, for a server that is not a
// WebSocket server of ours (a baseline); every reply must be the size of
// msg in a final frame.
func NewRigOn(c *Client, op ws.OpCode, msg []byte, perWrite int) *Rig {
	r := &Rig{C: c}
	for i := 0; i < perWrite; i++ {
		r.req = append(r.req, ClientFrame(true, 0, op, msg, true)...)
	}
	r.reply = make([]byte, perWrite*(wsproto.ServerHeaderLen(len(msg))+len(msg)))
	return r
}

// RequestBytes is the size of one write of the rig.
func (r *Rig) RequestBytes() int { return len(r.req) }

// RoundTrip writes the frames and reads every reply.
func (r *Rig) RoundTrip(t testing.TB) {
	if _, err := r.C.Conn.Write(r.req); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r.C.Reader, r.reply); err != nil {
		t.Fatal(err)
	}
}
