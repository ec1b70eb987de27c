package check

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeWS serves a WebSocket endpoint whose behaviour is serve's, and
// returns its ws:// URL.
func fakeWS(t *testing.T, serve func(c *websocket.Conn)) string {
	t.Helper()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer refuse-me" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		serve(c)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// protocol answers like sockmon: echo, pong, and the close reply; before
// replies it pushes extra (a server push the canary must skip).
func protocol(extra string, mangle func(reply map[string]any)) func(*websocket.Conn) {
	return func(c *websocket.Conn) {
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			var req map[string]any
			_ = json.Unmarshal(b, &req)
			reply := map[string]any{"id": req["id"]}
			switch req["type"] {
			case "echo":
				reply["type"], reply["data"] = "echo", req["data"]
			case "ping":
				reply["type"] = "pong"
			}
			if mangle != nil {
				mangle(reply)
			}
			if extra != "" {
				_ = c.WriteMessage(websocket.TextMessage, []byte(extra))
			}
			out, _ := json.Marshal(reply)
			_ = c.WriteMessage(websocket.TextMessage, out)
		}
	}
}

func TestCanary(t *testing.T) {
	for _, tc := range []struct {
		name    string
		serve   func(*websocket.Conn)
		token   string
		ok      bool
		failed  string // the step that fails
		errText string
		timeout bool
		status  int
	}{
		{name: "sockmon-like", serve: protocol("", nil), ok: true},
		{name: "server pushes in between", serve: protocol(`{"type":"system","event":"maintenance","message":"soon"}`, nil), ok: true},
		{name: "wrong echo data", serve: protocol("", func(r map[string]any) {
			if r["type"] == "echo" {
				r["data"] = "something else"
			}
		}), failed: StepEcho, errText: "echo came back with data"},
		{name: "error reply", serve: protocol("", func(r map[string]any) {
			if r["type"] == "pong" {
				r["type"], r["code"], r["message"] = "error", "rate_limited", "slow down"
			}
		}), failed: StepPing, errText: "rate_limited"},
		{name: "no pong", serve: protocol("", func(r map[string]any) {
			if r["type"] == "pong" {
				r["id"] = 99
			}
		}), failed: StepPing, timeout: true},
		{name: "server closes with 1011", serve: func(c *websocket.Conn) {
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1011, "boom"), time.Now().Add(time.Second))
			_, _, _ = c.ReadMessage()
		}, failed: StepEcho, errText: "server closed the connection (1011"},
		{name: "close reply is not 1000", serve: func(c *websocket.Conn) {
			c.SetCloseHandler(func(int, string) error {
				return c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1001, "going"), time.Now().Add(time.Second))
			})
			protocol("", nil)(c)
		}, failed: StepClose, errText: "close reply 1001"},
		{name: "upgrade refused", serve: protocol("", nil), token: "refuse-me", failed: StepConnect, errText: "HTTP 401", status: 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := fakeWS(t, tc.serve)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			c := runCanary(ctx, url, tc.token)
			if c.OK != tc.ok || c.FailedStep() != tc.failed || c.TimedOut != tc.timeout || c.HTTPStatus != tc.status {
				t.Fatalf("ok %t failed %q timed out %t status %d (err %v), want ok %t failed %q timed out %t status %d",
					c.OK, c.FailedStep(), c.TimedOut, c.HTTPStatus, c.Err(), tc.ok, tc.failed, tc.timeout, tc.status)
			}
			if tc.errText != "" && (c.Err() == nil || !strings.Contains(c.Err().Error(), tc.errText)) {
				t.Errorf("error %v, want it to mention %q", c.Err(), tc.errText)
			}
			if tc.ok {
				if len(c.Steps) != 4 || c.CloseCode != 1000 || c.Total() <= 0 {
					t.Errorf("steps %+v close %d", c.Steps, c.CloseCode)
				}
				for i, s := range c.Steps {
					if s.Name != steps[i] || s.Duration <= 0 || s.Err != nil {
						t.Errorf("step %d: %+v", i, s)
					}
				}
			}
		})
	}
}

func TestCanaryUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := runCanary(context.Background(), "ws://"+addr+"/ws", "")
	if c.OK || c.FailedStep() != StepConnect || c.TimedOut || !strings.Contains(rootCause(c.Err()), "connection refused") {
		t.Fatalf("nothing listening: ok %t failed %q timed out %t err %v", c.OK, c.FailedStep(), c.TimedOut, c.Err())
	}
}
