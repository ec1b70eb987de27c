package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

// Canary steps, in the order they run.
const (
	StepConnect = "connect" // TCP connect and WebSocket upgrade
	StepEcho    = "echo"    // {"type":"echo","id":1,"data":...} until the echo comes back
	StepPing    = "ping"    // {"type":"ping","id":2} until {"type":"pong","id":2}
	StepClose   = "close"   // close 1000 until the server's close reply
)

// steps lists the canary steps in order.
var steps = [...]string{StepConnect, StepEcho, StepPing, StepClose}

// Step is one timed canary step.
type Step struct {
	Name     string
	Duration time.Duration
	// Err is why the step failed; nil when it succeeded.
	Err error
}

// Canary is the outcome of the WebSocket canary: the steps it ran, in
// order; the last one failed when OK is false.
type Canary struct {
	URL   string
	OK    bool
	Steps []Step
	// HTTPStatus is the upgrade's status code when the server refused it
	// (503 in maintenance or draining); 0 otherwise.
	HTTPStatus int
	// CloseCode is the code of the server's close reply; 0 before it.
	CloseCode int
	// TimedOut is set when Config.Timeout expired during a step.
	TimedOut bool
}

// Err is the error of the failed step, nil when the canary succeeded.
func (c *Canary) Err() error {
	if n := len(c.Steps); n > 0 {
		return c.Steps[n-1].Err
	}
	return nil
}

// FailedStep names the step that failed, "" when none did.
func (c *Canary) FailedStep() string {
	if n := len(c.Steps); n > 0 && c.Steps[n-1].Err != nil {
		return c.Steps[n-1].Name
	}
	return ""
}

// Total is the time of all the steps run.
func (c *Canary) Total() time.Duration {
	var d time.Duration
	for _, s := range c.Steps {
		d += s.Duration
	}
	return d
}

// step returns the named step and whether it ran.
func (c *Canary) step(name string) (Step, bool) {
	for _, s := range c.Steps {
		if s.Name == name {
			return s, true
		}
	}
	return Step{}, false
}

// envelope is the client protocol's JSON envelope, as far as the canary
// reads it.
type envelope struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id"`
	Data    json.RawMessage `json:"data"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
}

// runCanary connects to url, echoes, pings and closes, timing each step.
// token, when set, goes in the upgrade's Authorization header. It returns
// when the close reply came, a step failed, or ctx ended; the connection
// is closed on return.
func runCanary(ctx context.Context, url, token string) *Canary {
	c := &Canary{URL: url}
	var conn *websocket.Conn
	stop := func() bool { return false }
	run := func(name string, f func() error) bool {
		start := time.Now()
		err := f()
		c.Steps = append(c.Steps, Step{Name: name, Duration: time.Since(start), Err: err})
		if err != nil {
			c.TimedOut = timedOut(ctx, err)
			return false
		}
		return true
	}
	defer func() {
		stop()
		if conn != nil {
			_ = conn.Close()
		}
	}()
	ok := run(StepConnect, func() error {
		var hdr http.Header
		if token != "" {
			hdr = http.Header{"Authorization": {"Bearer " + token}}
		}
		d := websocket.Dialer{Proxy: http.ProxyFromEnvironment}
		var resp *http.Response
		var err error
		conn, resp, err = d.DialContext(ctx, url, hdr)
		if err != nil {
			if resp != nil {
				c.HTTPStatus = resp.StatusCode
				return fmt.Errorf("upgrade refused: HTTP %d", resp.StatusCode)
			}
			return err
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetReadDeadline(dl)
			_ = conn.SetWriteDeadline(dl)
		}
		// A caller's cancel (not only the deadline) ends a blocked read.
		stop = context.AfterFunc(ctx, func() { _ = conn.Close() })
		// We close first; the server's close frame is the reply, which
		// gorilla's default handler would answer with a second close.
		conn.SetCloseHandler(func(int, string) error { return nil })
		return nil
	})
	if !ok {
		return c
	}
	data, _ := json.Marshal("sockmon check " + strconv.FormatInt(time.Now().UnixNano(), 10))
	ok = run(StepEcho, func() error {
		return request(conn, `{"type":"echo","id":1,"data":`+string(data)+`}`, "echo", "1", func(e *envelope) error {
			if string(e.Data) != string(data) {
				return fmt.Errorf("echo came back with data %s, want %s", e.Data, data)
			}
			return nil
		})
	}) && run(StepPing, func() error {
		return request(conn, `{"type":"ping","id":2}`, "pong", "2", nil)
	}) && run(StepClose, func() error {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "sockmon check")
		if err := conn.WriteMessage(websocket.CloseMessage, msg); err != nil {
			return err
		}
		for {
			_, _, err := conn.ReadMessage()
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.CloseCode = ce.Code
				if ce.Code != websocket.CloseNormalClosure {
					return fmt.Errorf("close reply %d %q, want 1000", ce.Code, ce.Text)
				}
				return nil
			}
			if err != nil {
				return fmt.Errorf("no close reply: %w", err)
			}
		}
	})
	c.OK = ok
	return c
}

// request sends msg and reads until the reply of type want with the given
// id; other messages (server pushes) are skipped. An error reply with that
// id fails the request; check, when set, judges the reply.
func request(conn *websocket.Conn, msg, want, id string, check func(*envelope) error) error {
	if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		return err
	}
	for {
		typ, b, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return fmt.Errorf("server closed the connection (%d %q) before the %s", ce.Code, ce.Text, want)
			}
			return err
		}
		if typ != websocket.TextMessage {
			continue
		}
		var e envelope
		if json.Unmarshal(b, &e) != nil || string(e.ID) != id {
			continue
		}
		switch e.Type {
		case want:
			if check != nil {
				return check(&e)
			}
			return nil
		case "error":
			return fmt.Errorf("%s error reply: %s: %s", want, e.Code, e.Message)
		}
	}
}
