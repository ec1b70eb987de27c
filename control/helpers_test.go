package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudwego/netpoll"
	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/protocol"
	"github.com/sockmon/sockmon/netcore/wstest"
)

const (
	testAdminSecret  = "test-admin-secret-0123456789abcdef-xyz"
	testClientSecret = "test-client-secret-0123456789abcdef-xyz"
)

// syncBuffer is a bytes.Buffer safe for concurrent writers (the logger).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// fixture is an engine and a control server on 127.0.0.1, sharing a data
// directory that survives restart.
type fixture struct {
	t      testing.TB
	dir    string
	engine *netcore.Server
	proto  *protocol.Service
	ctl    *Server
	wsAddr string
	base   string // http://127.0.0.1:port of the control server
	logs   *syncBuffer

	engineCfg netcore.Config
	protoCfg  protocol.Config
	ctlOpts   []func(*Config)
	ctlDone   chan error
	engDone   chan error
	stopped   bool
}

// newEngine builds an engine that serves the sockmon protocol; it does not
// listen yet.
func newEngine(t testing.TB, ecfg netcore.Config, pcfg protocol.Config) (*netcore.Server, *protocol.Service) {
	t.Helper()
	eng, proto, err := buildEngine(ecfg, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	return eng, proto
}

func buildEngine(ecfg netcore.Config, pcfg protocol.Config) (*netcore.Server, *protocol.Service, error) {
	eng, err := netcore.New(ecfg)
	if err != nil {
		return nil, nil, err
	}
	proto, err := protocol.New(eng, pcfg)
	return eng, proto, err
}

// newFixture starts an engine and a control server; opts adjust the
// control Config. Both stop when the test ends.
func newFixture(t testing.TB, opts ...func(*Config)) *fixture {
	t.Helper()
	return newFixtureWith(t, nil, opts...)
}

// newFixtureWith is newFixture with the engine's Config adjusted by engine.
func newFixtureWith(t testing.TB, engine func(*netcore.Config), opts ...func(*Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), logs: &syncBuffer{}, ctlOpts: opts}
	f.engineCfg = netcore.Config{
		Addr:            "127.0.0.1:0",
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		DrainDelay:      -1,
		ShutdownTimeout: 5 * time.Second,
	}
	f.protoCfg = protocol.Config{JWTSecret: []byte(testClientSecret), ConnRate: -1}
	if engine != nil {
		engine(&f.engineCfg)
	}
	f.start(true)
	t.Cleanup(f.stop)
	return f
}

// start builds the engine and the control server; serveEngine false leaves
// the engine not yet serving (starting).
func (f *fixture) start(serveEngine bool) {
	t := f.t
	t.Helper()
	eng, proto := newEngine(t, f.engineCfg, f.protoCfg)
	cfg := Config{
		DataDir:      f.dir,
		AdminSecret:  []byte(testAdminSecret),
		ClientSecret: []byte(testClientSecret),
		Engine:       eng,
		Protocol:     proto,
		Logger:       slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range f.ctlOpts {
		o(&cfg)
	}
	ctl, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.engine, f.proto, f.ctl, f.stopped = eng, proto, ctl, false
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.base = "http://" + ln.Addr().String()
	f.ctlDone = make(chan error, 1)
	go func() { f.ctlDone <- ctl.Serve(ln) }()
	f.engDone = nil
	if serveEngine {
		f.serveEngine()
	}
}

// serveEngine starts the engine's listener and waits until it serves.
func (f *fixture) serveEngine() {
	t := f.t
	t.Helper()
	wln, err := netpoll.CreateListener("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.wsAddr = wln.Addr().String()
	f.engDone = make(chan error, 1)
	eng := f.engine
	go func() { f.engDone <- eng.Serve(wln) }()
	wstest.WaitFor(t, "engine serving", func() bool { return eng.Ready() || eng.Maintenance() != nil })
	wstest.WaitFor(t, "engine heartbeat", func() bool { return !eng.LastHeartbeat().IsZero() })
}

// stop shuts both down and checks that Serve returned.
func (f *fixture) stop() {
	if f.stopped {
		return
	}
	f.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.ctl.Shutdown(ctx); err != nil {
		f.t.Errorf("control Shutdown: %v", err)
	}
	select {
	case err := <-f.ctlDone:
		if !errors.Is(err, ErrServerClosed) {
			f.t.Errorf("control Serve returned %v, want ErrServerClosed", err)
		}
	case <-time.After(10 * time.Second):
		f.t.Errorf("control Serve did not return after Shutdown")
	}
	_ = f.engine.Shutdown(ctx)
	if f.engDone != nil {
		select {
		case <-f.engDone:
		case <-time.After(10 * time.Second):
			f.t.Errorf("engine Serve did not return after Shutdown")
		}
	}
}

// restart stops both servers and starts new ones on the same data dir.
func (f *fixture) restart(serveEngine bool) {
	f.t.Helper()
	f.stop()
	f.start(serveEngine)
}

// response is an HTTP answer read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// envelope decodes an admin reply.
func (r *response) envelope(t testing.TB) (ok bool, data json.RawMessage, code, field, msg string) {
	t.Helper()
	var env struct {
		Success bool            `json:"success"`
		Data    json.RawMessage `json:"data"`
		Error   *struct {
			Code, Message, Field string
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &env); err != nil {
		t.Fatalf("reply is not JSON: %v: %s", err, r.body)
	}
	if env.Error != nil {
		return env.Success, env.Data, env.Error.Code, env.Error.Field, env.Error.Message
	}
	return env.Success, env.Data, "", "", ""
}

var testClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}}

// do sends a request to the control server; token "" sends none; headers
// are extra "Name: value" pairs.
func (f *fixture) do(method, path, token string, body []byte, headers ...string) *response {
	f.t.Helper()
	req, err := http.NewRequest(method, f.base+path, bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

// admin posts {"action":action,"data":data} with a valid admin token.
func (f *fixture) admin(action string, data any) *response {
	f.t.Helper()
	body, err := json.Marshal(map[string]any{"action": action, "data": data})
	if err != nil {
		f.t.Fatal(err)
	}
	return f.do("POST", PathAdmin, f.token(), body)
}

// mustAdmin posts an action that must succeed and returns its data.
func (f *fixture) mustAdmin(action string, data any) json.RawMessage {
	f.t.Helper()
	r := f.admin(action, data)
	ok, d, code, _, msg := r.envelope(f.t)
	if r.status != 200 || !ok {
		f.t.Fatalf("%s: status %d, code %s: %s", action, r.status, code, msg)
	}
	return d
}

// token is a valid admin token for "alice".
func (f *fixture) token() string {
	f.t.Helper()
	tok, err := AdminToken([]byte(testAdminSecret), "alice", time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// dial opens a WebSocket client on the protocol path; user "" is
// anonymous, otherwise it carries a client token for user.
// waitOpen waits until the engine and the metrics both count n open
// connections: the engine counts one before its 101 is sent (for
// --max-conns), the metrics once it is open.
func (f *fixture) waitOpen(n int64) {
	f.t.Helper()
	wstest.WaitFor(f.t, strconv.FormatInt(n, 10)+" open connections", func() bool {
		return f.engine.Stats().Open == n && f.ctl.metrics.Snapshot().Connections.Total == n
	})
}

func (f *fixture) dial(user string) *websocket.Conn {
	f.t.Helper()
	u := "ws://" + f.wsAddr + "/ws"
	if user != "" {
		u += "?token=" + clientToken(f.t, user)
	}
	c, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		f.t.Fatalf("dial %s: %v (status %d)", u, err, status)
	}
	f.t.Cleanup(func() { _ = c.Close() })
	return c
}

// clientToken is a client (not admin) token for user.
func clientToken(t testing.TB, user string) string {
	t.Helper()
	tok, err := signHS256(testClientSecret, map[string]any{"sub": user, "exp": time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// readJSON reads the next text message as JSON into a map.
func readJSON(t testing.TB, c *websocket.Conn) map[string]any {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	return m
}

// readClose reads until the connection closes and returns the close code
// and reason.
func readClose(t testing.TB, c *websocket.Conn) (int, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Text
		}
		t.Fatalf("read: %v, want a close frame", err)
	}
}

// dialRaw tries a WebSocket upgrade on addr's protocol path and returns the
// HTTP response of a refusal.
func dialRaw(addr string) (*websocket.Conn, *http.Response, error) {
	c, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if c != nil {
		_ = c.Close()
	}
	return c, resp, err
}

func decodeJSON(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
