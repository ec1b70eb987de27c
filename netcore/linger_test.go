package netcore

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// expectCleanEOF reads until the server closes and fails on a reset: the
// peer of a lingering close gets everything that was sent, then a FIN.
func expectCleanEOF(t *testing.T, r io.Reader) {
	t.Helper()
	if n, err := io.Copy(io.Discard, r); err != nil {
		t.Fatalf("after the close: %v (after %d bytes); want a clean end of stream, not a reset", err, n)
	}
}

// A message over MaxMessageSize followed by more data gets close 1009 and a
// clean end of stream, while the client is still writing.
func TestTooBigMessageGets1009WhileTheClientWrites(t *testing.T) {
	srv, addr := testServer(t, Config{MaxMessageSize: 1 << 10})
	c := wstest.Dial(t, addr, "/echo")
	// A header announcing 64 KiB, then the payload and more, written on.
	hdr := wstest.ClientFrame(true, 0, ws.OpBinary, make([]byte, 64<<10), true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Conn.Write(hdr)
		_, _ = c.Conn.Write(bytes.Repeat([]byte{1}, 256<<10))
	}()
	f := c.NextData()
	if code, _ := ws.ParseCloseFrameData(f.Payload); f.Header.OpCode != ws.OpClose || code != CloseTooBig {
		t.Fatalf("got op %d code %d, want close 1009", f.Header.OpCode, code)
	}
	<-done
	_ = c.Conn.(*net.TCPConn).CloseWrite() // the client is done sending
	_ = c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	expectCleanEOF(t, c.Reader)
	wstest.WaitFor(t, "the socket to close", func() bool { return srv.metrics.Snapshot().Connections.Total == 0 && srv.reg.count.Load() == 0 })
}

// A client that neither answers the close frame nor closes stays lingering
// (counted in sockmon_lingering_connections, not in Stats.Open or against
// MaxConns) until LingerTimeout, then the socket is closed.
func TestLingeringIsBoundedAndVisible(t *testing.T) {
	srv, addr := testServer(t, Config{MaxConns: 1, MaxMessageSize: 16, LingerTimeout: 300 * time.Millisecond})
	c := wstest.Dial(t, addr, "/echo")
	c.Send(true, ws.OpBinary, make([]byte, 17)) // over the limit: 1009
	if f := c.NextData(); f.Header.OpCode != ws.OpClose {
		t.Fatalf("op %d, want close", f.Header.OpCode)
	}
	lingering := func() float64 {
		var b bytes.Buffer
		srv.Metrics().WritePrometheus(&b)
		for _, l := range strings.Split(b.String(), "\n") {
			if v, ok := strings.CutPrefix(l, "sockmon_lingering_connections "); ok {
				return map[string]float64{"0": 0, "1": 1}[v]
			}
		}
		return -1
	}
	wstest.WaitFor(t, "the connection to linger", func() bool { return lingering() == 1 })
	if n := srv.Stats().Open; n != 0 {
		t.Fatalf("a lingering connection counts as open: %d", n)
	}
	wstest.Dial(t, addr, "/echo") // MaxConns 1: the lingering one does not count
	wstest.WaitFor(t, "the linger to end", func() bool { return lingering() == 0 })
	_ = c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	expectCleanEOF(t, c.Reader)
}

// A refused upgrade (here 431, a request head over MaxHeaderBytes, still
// being sent) gets its whole answer, not a reset.
func TestRefusalIsReadWhileTheClientWrites(t *testing.T) {
	_, addr := testServer(t, Config{MaxHeaderBytes: 512})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Write([]byte("GET /echo HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("a", 64<<10)))
	}()
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the refusal: %v", err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || !strings.Contains(string(body), "request head over") {
		t.Fatalf("body %q: %v", body, err)
	}
	<-done
	_ = conn.(*net.TCPConn).CloseWrite()
	expectCleanEOF(t, br)
}
