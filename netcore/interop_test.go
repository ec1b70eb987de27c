package netcore

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"
)

// Interop with independent client libraries: every message type and size
// class, with and without compression, echoed verbatim.

// interopPayloads returns messages of every length encoding (7-bit, 16-bit,
// 64-bit) and sizes below and above the compression threshold. Text
// payloads are valid UTF-8, multi-byte sequences included.
func interopPayloads(text bool) [][]byte {
	big := bytes.Repeat([]byte{0, 1, 2, 3, 255}, 13000) // 65000 bytes: 64-bit length
	if text {
		big = []byte(strings.Repeat("sockmon é€😀 ", 3600)) // 64800 bytes
	}
	return [][]byte{
		[]byte("hello"),
		[]byte(strings.Repeat("sockmon ", 200)), // 1600 bytes: 16-bit length, compressible
		big,
		{},
	}
}

func TestInteropGorilla(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "deflate"}[compress], func(t *testing.T) {
			_, addr := testServer(t, Config{})
			d := websocket.Dialer{EnableCompression: compress}
			conn, resp, err := d.Dial("ws://"+addr+"/echo", nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.Close()
			gotExt := resp.Header.Get("Sec-WebSocket-Extensions")
			if compress != (gotExt != "") {
				t.Fatalf("compress=%v but Sec-WebSocket-Extensions=%q", compress, gotExt)
			}
			for _, mt := range []int{websocket.TextMessage, websocket.BinaryMessage} {
				for _, p := range interopPayloads(mt == websocket.TextMessage) {
					if err := conn.WriteMessage(mt, p); err != nil {
						t.Fatal(err)
					}
					gmt, got, err := conn.ReadMessage()
					if err != nil {
						t.Fatalf("read echo of %d bytes: %v", len(p), err)
					}
					if gmt != mt || !bytes.Equal(got, p) {
						t.Fatalf("echo of %d bytes type %d: got %d bytes type %d", len(p), mt, len(got), gmt)
					}
				}
			}
			err = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = conn.ReadMessage()
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Fatalf("after our close: %v, want close 1000 echoed", err)
			}
		})
	}
}

func TestInteropCoder(t *testing.T) {
	modes := map[string]coder.CompressionMode{
		"plain":            coder.CompressionDisabled,
		"no-takeover":      coder.CompressionNoContextTakeover,
		"context-takeover": coder.CompressionContextTakeover,
	}
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			_, addr := testServer(t, Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, _, err := coder.Dial(ctx, "ws://"+addr+"/echo", &coder.DialOptions{CompressionMode: mode})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.CloseNow()
			conn.SetReadLimit(1 << 20)
			for _, mt := range []coder.MessageType{coder.MessageText, coder.MessageBinary} {
				for _, p := range interopPayloads(mt == coder.MessageText) {
					if err := conn.Write(ctx, mt, p); err != nil {
						t.Fatal(err)
					}
					gmt, got, err := conn.Read(ctx)
					if err != nil {
						t.Fatalf("read echo of %d bytes: %v", len(p), err)
					}
					if gmt != mt || !bytes.Equal(got, p) {
						t.Fatalf("echo of %d bytes: got %d bytes type %v", len(p), len(got), gmt)
					}
				}
			}
			if err := conn.Close(coder.StatusNormalClosure, "bye"); err != nil {
				t.Fatalf("close handshake: %v", err)
			}
		})
	}
}

// TestInteropNodeWS drives the echo endpoint with the Node ws package (npm),
// with and without permessage-deflate. `make test` installs the package;
// under CI a missing install fails the test instead of skipping it.
func TestInteropNodeWS(t *testing.T) {
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat("testdata/nodews/node_modules/ws")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node or the ws package is missing (run make test-deps): %v", err)
		}
		t.Skipf("node or the ws package is missing (run make test-deps): %v", err)
	}
	_, addr := testServer(t, Config{MaxMessageSize: 1 << 20})
	for _, mode := range []string{"plain", "deflate"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, node, "testdata/nodews/echo-client.js", "ws://"+addr+"/echo", mode).CombinedOutput()
			if err != nil {
				t.Fatalf("node ws client: %v\n%s", err, out)
			}
		})
	}
}
