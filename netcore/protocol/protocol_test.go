package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// Tests of the client protocol with a real client library (gorilla).

// wsClient is a gorilla connection with JSON helpers.
type wsClient struct {
	t *testing.T
	c *websocket.Conn
}

func dialWS(t *testing.T, url string, hdr http.Header) *wsClient {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return &wsClient{t: t, c: c}
}

// dialStatus dials and returns the HTTP status of a refused upgrade.
func dialStatus(t *testing.T, url string, hdr http.Header) (int, http.Header) {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, hdr)
	if err == nil {
		c.Close()
		return http.StatusSwitchingProtocols, nil
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return resp.StatusCode, resp.Header
}

func (w *wsClient) Send(msg string) {
	w.t.Helper()
	if err := w.c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		w.t.Fatalf("send %s: %v", msg, err)
	}
}

// recv reads the next text message as a JSON object.
func (w *wsClient) recv() map[string]any {
	w.t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	mt, p, err := w.c.ReadMessage()
	if err != nil {
		w.t.Fatalf("recv: %v", err)
	}
	if mt != websocket.TextMessage {
		w.t.Fatalf("recv: message type %d", mt)
	}
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		w.t.Fatalf("recv: reply %q is not JSON: %v", p, err)
	}
	return m
}

// roundTrip sends msg and returns the reply.
func (w *wsClient) roundTrip(msg string) map[string]any {
	w.t.Helper()
	w.Send(msg)
	return w.recv()
}

// ExpectClose reads until the server closes and returns the close error.
func (w *wsClient) ExpectClose() *websocket.CloseError {
	w.t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := w.c.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce
		}
		if err != nil {
			w.t.Fatalf("expected a close frame, got %v", err)
		}
	}
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestProtocolEnvelopes(t *testing.T) {
	_, addr := testServer(t, Config{})
	c := dialWS(t, "ws://"+addr+"/ws", nil)
	cases := []struct{ send, want string }{
		{`{"type":"echo","id":1,"data":{"a":[1,"x",null]}}`, `{"data":{"a":[1,"x",null]},"id":1,"type":"echo"}`},
		{`{"type":"echo","id":"req-7","data":"hi"}`, `{"data":"hi","id":"req-7","type":"echo"}`},
		{`{"type":"echo","data":3.5}`, `{"data":3.5,"type":"echo"}`},
		{`{"type":"ping","id":2}`, `{"id":2,"type":"pong"}`},
		{`{"type":"join","id":3,"room":"lobby"}`, `{"id":3,"type":"ack"}`},
		{`{"type":"join","id":4,"room":"lobby"}`, `{"id":4,"type":"ack"}`}, // joining twice is fine
		{`{"type":"leave","id":5,"room":"lobby"}`, `{"id":5,"type":"ack"}`},
		{`{"type":"leave","id":6,"room":"lobby"}`, `{"code":"not_found","id":6,"message":"not in room \"lobby\"","type":"error"}`},
		{`{"type":"rpc","id":7,"service":"ai","data":1}`, `{"code":"not_found","id":7,"message":"no upstream service \"ai\" is configured","type":"error"}`},
		{`{"type":"teleport","id":8}`, `{"code":"bad_request","id":8,"message":"unknown type \"teleport\"; valid types: echo, ping, join, leave, publish, rpc","type":"error"}`},
		{`{"id":9}`, `{"code":"bad_request","id":9,"message":"missing \"type\"","type":"error"}`},
		{`{"type":"join","id":10}`, `{"code":"bad_request","id":10,"message":"missing \"room\"","type":"error"}`},
		{`{"type":"publish","id":11,"room":"r"}`, `{"code":"bad_request","id":11,"message":"publish needs \"data\"","type":"error"}`},
		{`not json`, `{"code":"bad_request","message":"invalid envelope: message is not a JSON object","type":"error"}`},
		// The id is copied back when the envelope got as far as reading it.
		{`{"type":"echo","id":12,`, `{"code":"bad_request","id":12,"message":"invalid envelope: malformed JSON","type":"error"}`},
	}
	for _, tc := range cases {
		if got := asJSON(c.roundTrip(tc.send)); got != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.send, got, tc.want)
		}
	}
	// Binary frames are echoed verbatim, and the connection is still open
	// after all the errors above.
	if err := c.c.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2, 0xff}); err != nil {
		t.Fatal(err)
	}
	mt, p, err := c.c.ReadMessage()
	if err != nil || mt != websocket.BinaryMessage || string(p) != "\x00\x01\x02\xff" {
		t.Fatalf("binary echo: %d %q %v", mt, p, err)
	}
}

func TestPublishFanOut(t *testing.T) {
	srv, addr := testServer(t, Config{ConnRate: -1})
	const members = 200
	var clients []*wsClient
	var pubID uint64
	for i := 0; i < members; i++ {
		c := dialWS(t, "ws://"+addr+"/ws", nil)
		if r := c.roundTrip(fmt.Sprintf(`{"type":"join","id":%d,"room":"news"}`, i)); r["type"] != "ack" {
			t.Fatalf("join: %v", r)
		}
		if i == 0 {
			pubID = srv.Conns()[0].ID
		}
		clients = append(clients, c)
	}
	outsider := dialWS(t, "ws://"+addr+"/ws", nil)
	pub := clients[0]
	pub.Send(`{"type":"publish","id":"p1","room":"news","data":{"headline":"sockmon ships"}}`)
	// The publisher gets its ack and, as a member, the message too.
	var gotAck bool
	for i := 0; i < 2; i++ {
		m := pub.recv()
		if m["type"] == "ack" && m["id"] == "p1" {
			gotAck = true
		}
	}
	if !gotAck {
		t.Fatal("publisher got no ack")
	}
	want := fmt.Sprintf(`{"data":{"headline":"sockmon ships"},"from":"anon:%d","room":"news","type":"message"}`, pubID)
	for i, c := range clients[1:] {
		if got := asJSON(c.recv()); got != want {
			t.Fatalf("member %d got %s, want %s", i+1, got, want)
		}
	}
	// Not a member: nothing arrives.
	_ = outsider.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, p, err := outsider.c.ReadMessage(); err == nil {
		t.Fatalf("a non-member received %s", p)
	}
	// Leaving and disconnecting clean the room up.
	for i, c := range clients {
		if i%2 == 0 {
			c.roundTrip(`{"type":"leave","room":"news"}`)
		} else {
			c.c.Close()
		}
	}
	wstest.WaitFor(t, "the room to disappear", func() bool { return len(srv.Rooms()) == 0 })
}

// token signs claims with secret (HS256 unless method says otherwise).
func token(t *testing.T, method jwt.SigningMethod, secret any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func TestClientAuth(t *testing.T) {
	_, addr := testServer(t, Config{JWTSecret: testSecret, RequireAuth: true})
	url := "ws://" + addr + "/ws"
	valid := token(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})

	t.Run("valid token in the query", func(t *testing.T) {
		c := dialWS(t, url+"?token="+valid, nil)
		c.roundTrip(`{"type":"join","room":"r"}`)
		c.Send(`{"type":"publish","room":"r","data":1}`)
		for i := 0; i < 2; i++ {
			if m := c.recv(); m["type"] == "message" && m["from"] != "alice" {
				t.Fatalf("from %v, want alice", m["from"])
			}
		}
	})
	t.Run("valid token in Authorization", func(t *testing.T) {
		dialWS(t, url, http.Header{"Authorization": {"Bearer " + valid}})
	})
	bad := map[string]string{
		"expired":      token(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()}),
		"wrong secret": token(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}),
		"alg none":     token(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}),
		"HS512":        token(t, jwt.SigningMethodHS512, testSecret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}),
		"no exp":       token(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "alice"}),
		"no sub":       token(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()}),
		"garbage":      "not.a.token",
	}
	for name, tok := range bad {
		t.Run(name, func(t *testing.T) {
			if status, _ := dialStatus(t, url+"?token="+tok, nil); status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", status)
			}
		})
	}
	t.Run("missing with require-auth", func(t *testing.T) {
		if status, _ := dialStatus(t, url, nil); status != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", status)
		}
	})
}

func TestOrigins(t *testing.T) {
	_, addr := testServer(t, Config{AllowedOrigins: []string{"https://app.example.com", "https://*.example.org"}})
	url := "ws://" + addr + "/ws"
	for origin, want := range map[string]int{
		"https://app.example.com":  101,
		"https://a.b.example.org":  101,
		"https://evil.example.com": 403,
		"http://app.example.com":   403,
		"https://example.org.evil": 403,
	} {
		if status, _ := dialStatus(t, url, http.Header{"Origin": {origin}}); status != want {
			t.Errorf("origin %s: status %d, want %d", origin, status, want)
		}
	}
}

func TestMessageRateLimitAndBan(t *testing.T) {
	srv, addr := testServer(t, Config{MessageRate: 1, MessageBurst: 5, BanAfter: 3, BanDuration: time.Minute})
	url := "ws://" + addr + "/ws"
	c := dialWS(t, url, nil)
	for i := 0; i < 5; i++ {
		if m := c.roundTrip(`{"type":"ping"}`); m["type"] != "pong" {
			t.Fatalf("message %d within the burst: %v", i, m)
		}
	}
	// The refused message's id is copied into the error, so the client
	// knows which request was refused.
	m := c.roundTrip(`{"type":"ping","id":6}`)
	if m["code"] != "rate_limited" || m["retryAfterMs"].(float64) <= 0 || m["id"] != float64(6) {
		t.Fatalf("over the rate: %v, want rate_limited with id 6 and retryAfterMs", m)
	}
	if m := c.roundTrip(`{"type":"echo","data":{"id":1},"id":"req-7"}`); m["code"] != "rate_limited" || m["id"] != "req-7" {
		t.Fatalf("over the rate: %v, want rate_limited with id \"req-7\"", m)
	}
	if m := c.roundTrip(`{"type":"ping"}`); m["code"] != "rate_limited" || m["id"] != nil {
		t.Fatalf("over the rate without an id: %v, want rate_limited without one", m)
	}
	c.Send(`{"type":"ping"}`) // the fourth limited message: over --ban-after 3
	if ce := c.ExpectClose(); ce.Code != 1008 {
		t.Fatalf("close %d %q, want 1008", ce.Code, ce.Text)
	}
	status, hdr := dialStatus(t, url, nil)
	if status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Fatalf("reconnect while banned: %d Retry-After %q, want 429 with Retry-After", status, hdr.Get("Retry-After"))
	}
	if srv.Metrics().Snapshot().Totals.RateLimited == 0 {
		t.Error("rate-limited messages were not counted")
	}
}

// Twenty connections from one address flooding at once (the load test of
// issue 19) earn one ban of the first length, not one doubling per
// connection: every close reason and the Retry-After of the next upgrade
// say at most --ban-duration.
func TestFloodFromOneAddressIsOneOffence(t *testing.T) {
	_, addr := testServer(t, Config{MessageRate: 1, MessageBurst: 5, BanAfter: 3, BanDuration: time.Minute, BanMax: time.Hour})
	url := "ws://" + addr + "/ws"
	const n = 20
	conns := make([]*wsClient, n)
	for i := range conns {
		conns[i] = dialWS(t, url, nil)
	}
	reasons := make(chan string, n)
	for _, c := range conns {
		go func() {
			for i := 0; i < 20; i++ {
				if c.c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)) != nil {
					break
				}
			}
			_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				_, _, err := c.c.ReadMessage()
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					reasons <- fmt.Sprintf("%d %s", ce.Code, ce.Text)
					return
				}
				if err != nil {
					reasons <- err.Error()
					return
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		r := <-reasons
		_, banned, _ := strings.Cut(r, "banned for ")
		if d, err := time.ParseDuration(banned); !strings.HasPrefix(r, "1008 ") || err != nil || d <= 0 || d > time.Minute {
			t.Errorf("connection %d: close %q, want 1008 banned for at most 1m0s", i, r)
		}
	}
	status, hdr := dialStatus(t, url, nil)
	retry, err := strconv.Atoi(hdr.Get("Retry-After"))
	if status != http.StatusTooManyRequests || err != nil || retry < 1 || retry > 60 {
		t.Fatalf("upgrade after the flood: %d Retry-After %q, want 429 with at most 60 s (the first ban)", status, hdr.Get("Retry-After"))
	}
}

func TestConnectionRatePerIP(t *testing.T) {
	_, addr := testServer(t, Config{ConnRate: 1, ConnBurst: 3})
	url := "ws://" + addr + "/ws"
	for i := 0; i < 3; i++ {
		dialWS(t, url, nil)
	}
	status, hdr := dialStatus(t, url, nil)
	if status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Fatalf("4th connection: %d Retry-After %q, want 429", status, hdr.Get("Retry-After"))
	}
}

func TestCustomRateLimits(t *testing.T) {
	srv, addr := testServer(t, Config{JWTSecret: testSecret})
	url := "ws://" + addr + "/ws"
	anon := dialWS(t, url, nil)
	anon.roundTrip(`{"type":"ping"}`)
	id := srv.Conns()[0].ID
	if err := srv.SetRateLimit(RateLimit{SocketID: id, Limit: 2, Window: time.Hour}); err != nil {
		t.Fatal(err)
	}
	anon.roundTrip(`{"type":"ping"}`)
	anon.roundTrip(`{"type":"ping"}`)
	if m := anon.roundTrip(`{"type":"ping"}`); m["code"] != "rate_limited" {
		t.Fatalf("third message under a 2-per-hour socket limit: %v", m)
	}
	if err := srv.SetRateLimit(RateLimit{SocketID: id}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if m := anon.roundTrip(`{"type":"ping"}`); m["type"] != "pong" {
		t.Fatalf("after removing the limit: %v", m)
	}

	if err := srv.SetRateLimit(RateLimit{UserID: "bob", Limit: 1, Window: time.Hour}); err != nil {
		t.Fatal(err)
	}
	bob := dialWS(t, url+"?token="+token(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Hour).Unix()}), nil)
	bob.roundTrip(`{"type":"ping"}`)
	if m := bob.roundTrip(`{"type":"ping"}`); m["code"] != "rate_limited" {
		t.Fatalf("second message under bob's 1-per-hour limit: %v", m)
	}
	for _, bad := range []RateLimit{{}, {UserID: "x", SocketID: 1, Limit: 1, Window: time.Second}, {UserID: "x", Limit: 5}} {
		if err := srv.SetRateLimit(bad); err == nil {
			t.Errorf("SetRateLimit(%+v) accepted", bad)
		}
	}
}

func TestGarbageIsEventuallyClosed(t *testing.T) {
	_, addr := testServer(t, Config{MaxBadMessages: 5})
	c := dialWS(t, "ws://"+addr+"/ws", nil)
	for i := 0; i < 5; i++ {
		if m := c.roundTrip(`garbage`); m["code"] != "bad_request" {
			t.Fatalf("garbage %d: %v", i, m)
		}
	}
	c.Send(`garbage`)
	if ce := c.ExpectClose(); ce.Code != 1008 {
		t.Fatalf("close %d, want 1008", ce.Code)
	}
}

func TestHooksOrderAndArguments(t *testing.T) {
	srv := newNode(t, netcore.Config{Logger: discardLogger(), DrainDelay: -1}, Config{})
	var mu sync.Mutex
	var events []string
	record := func(s string) {
		mu.Lock()
		events = append(events, s)
		mu.Unlock()
	}
	srv.OnConnect(func(e netcore.ConnectEvent) { record("connect " + e.Request.Path) })
	srv.OnMessage(func(e netcore.MessageEvent) { record(fmt.Sprintf("message %s %d", e.Type, e.Size)) })
	srv.OnMessageError(func(e MessageErrorEvent) { record("error " + e.Code) })
	srv.OnDisconnect(func(e netcore.DisconnectEvent) {
		record(fmt.Sprintf("disconnect %d %s %q", e.Code, e.Initiator, e.Reason))
	})
	addr := serveTest(t, srv.Server)
	c := dialWS(t, "ws://"+addr+"/ws", nil)
	c.roundTrip(`{"type":"ping"}`)
	c.roundTrip(`{"type":"nope"}`)
	srv.DisconnectSocket(srv.Conns()[0].ID, "kicked by test")
	if ce := c.ExpectClose(); ce.Code != 4000 || ce.Text != "kicked by test" {
		t.Fatalf("close %d %q, want 4000 kicked by test", ce.Code, ce.Text)
	}
	c.c.Close()
	wstest.WaitFor(t, "the disconnect hook", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) > 0 && strings.HasPrefix(events[len(events)-1], "disconnect")
	})
	mu.Lock()
	defer mu.Unlock()
	want := []string{"connect /ws", "message text 15", "error bad_request", "message text 15", `disconnect 4000 server "kicked by test"`}
	if strings.Join(events, "\n") != strings.Join(want, "\n") {
		t.Fatalf("hook calls:\n%s\nwant:\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a hook after Serve did not panic")
		}
	}()
	srv.OnConnect(func(netcore.ConnectEvent) {})
}
