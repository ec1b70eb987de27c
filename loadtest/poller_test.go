package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/gobwas/ws"
)

// pollerEchoServer is an echo server on 127.0.0.1:0 that sends first in
// the same write as its 101 response (a ping, say), so the frames reach the
// client together with the handshake and the poller must handle input
// buffered before the connection was registered. It counts the pongs it
// receives, answers a close, and echoes every data frame. It returns the
// URL and the count of pongs.
func pollerEchoServer(t *testing.T, first ...ws.Frame) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var pongs atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var head bytes.Buffer
				if _, err := (ws.Upgrader{}).Upgrade(struct {
					io.Reader
					io.Writer
				}{c, &head}); err != nil {
					return
				}
				for _, f := range first {
					_ = ws.WriteFrame(&head, f)
				}
				if _, err := c.Write(head.Bytes()); err != nil {
					return
				}
				br, bw := bufio.NewReader(c), bufio.NewWriter(c)
				for {
					f, err := ws.ReadFrame(br)
					if err != nil {
						return
					}
					f = ws.UnmaskFrameInPlace(f)
					switch f.Header.OpCode {
					case ws.OpPong:
						pongs.Add(1)
						continue
					case ws.OpClose:
						_ = ws.WriteFrame(bw, ws.NewCloseFrame(f.Payload))
						_ = bw.Flush()
						return
					}
					if ws.WriteFrame(bw, ws.NewFrame(f.Header.OpCode, true, f.Payload)) != nil || bw.Flush() != nil {
						return
					}
				}
			}()
		}
	}()
	return "ws://" + ln.Addr().String() + "/echo", &pongs
}

// Frames that arrive with the handshake, frames larger than the loop's read
// buffer (read in many parts) and writes larger than the socket buffer
// (finished on EPOLLOUT) all go through the poller intact.
func TestPollerBufferedInputAndLargeFrames(t *testing.T) {
	url, pongs := pollerEchoServer(t, ws.NewPingFrame([]byte("at-once")))
	rep, err := Run(context.Background(), Config{URL: url, Conns: 4, Duration: time.Second, Size: 300_000})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors.Total != 0 || rep.Messages.Received == 0 || rep.Messages.Received != rep.Messages.Sent {
		t.Fatalf("sent %d received %d errors %v, want every 300 KB echo back and no error",
			rep.Messages.Sent, rep.Messages.Received, rep.Errors.ByClass)
	}
	if rep.Messages.PingsAnswered != 4 || pongs.Load() != 4 {
		t.Fatalf("pings answered %d, pongs at the server %d; want the 4 pings sent with the handshakes answered",
			rep.Messages.PingsAnswered, pongs.Load())
	}
}

// A connect-only connection keeps no message state and no input buffer, yet
// still handles what a server may send it: a ping with the handshake, a
// frame larger than the loop's read buffer (read in parts into a buffer of
// its own, freed once the frame is done), a fragmented message, and a ping
// after all that.
func TestPollerConnectOnlyFramesWithoutState(t *testing.T) {
	url, pongs := pollerEchoServer(t,
		ws.NewPingFrame([]byte("at-once")),
		ws.NewBinaryFrame(bytes.Repeat([]byte{7}, 300_000)),
		ws.NewFrame(ws.OpText, false, []byte("frag")),
		ws.NewFrame(ws.OpContinuation, false, []byte("ment")),
		ws.NewFrame(ws.OpContinuation, true, []byte("ed")),
		ws.NewPingFrame([]byte("after")))
	rep, err := Run(context.Background(), Config{URL: url, Conns: 4, Duration: 500 * time.Millisecond, Mode: ModeConnectOnly})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors.Total != 0 || rep.Connections.HeldAtEnd != 4 {
		t.Fatalf("held %d of 4, errors %v; want all held and no error", rep.Connections.HeldAtEnd, rep.Errors.ByClass)
	}
	if rep.Messages.PingsAnswered != 8 || pongs.Load() != 8 {
		t.Fatalf("pings answered %d, pongs at the server %d; want both pings of each of 4 connections answered",
			rep.Messages.PingsAnswered, pongs.Load())
	}
}

// Sessions and pollWires lie side by side in arrays, neighbours on different
// loops: each is exactly one cache line, so no two share one.
func TestSessionAndWireAreOneCacheLine(t *testing.T) {
	if s, w := unsafe.Sizeof(session{}), unsafe.Sizeof(pollWire{}); s != cacheLine || w != cacheLine {
		t.Fatalf("session %d bytes, pollWire %d bytes; want %d each", s, w, cacheLine)
	}
}
