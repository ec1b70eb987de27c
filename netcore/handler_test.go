package netcore

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cloudwego/netpoll"
	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// Handle refuses routes that would serve a path without admission, twice,
// or after Serve; Serve refuses to start without a route.
func TestHandleRefusesBadRoutes(t *testing.T) {
	srv, err := New(Config{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []Route{
		{Path: "ws", Handler: Echo(), Admitter: AdmitAll()},
		{Path: "/ws", Handler: Echo()},
		{Path: "/ws", Admitter: AdmitAll()},
	} {
		if err := srv.Handle(r); err == nil {
			t.Errorf("Handle(%+v) accepted", r)
		}
	}
	ln, err := netpoll.CreateListener("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ln); err == nil || !strings.Contains(err.Error(), "no routes") {
		t.Fatalf("Serve without routes: %v", err)
	}
	if err := srv.Handle(Route{Path: "/ws", Handler: Echo(), Admitter: AdmitAll()}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Handle(Route{Path: "/ws", Handler: Echo(), Admitter: AdmitAll()}); err == nil {
		t.Fatal("a second route on /ws accepted")
	}
}

// admitFunc adapts a function to Admitter.
type admitFunc func(*Request, netip.Addr) (Admission, *HandshakeError)

func (f admitFunc) Admit(r *Request, p netip.Addr) (Admission, *HandshakeError) { return f(r, p) }

// recordingHandler counts its sessions' Closed calls by socket id.
type recordingHandler struct {
	mu     sync.Mutex
	closed map[uint64]int
	opened atomic.Int64
}

func (h *recordingHandler) Open(c *Conn, _ *Request) Session {
	h.opened.Add(1)
	return &recordingSession{h: h, c: c}
}

type recordingSession struct {
	h *recordingHandler
	c *Conn
}

func (s *recordingSession) HandleMessage(mt MessageType, data []byte) error {
	return s.c.Reply(mt, data)
}

func (s *recordingSession) Closed(DisconnectEvent) {
	s.h.mu.Lock()
	s.h.closed[s.c.ID()]++
	s.h.mu.Unlock()
}

// Every route goes through its admitter, then the engine's own checks:
// the admitter's identity and client address reach the connection; a
// refusal is answered with its status; maintenance refuses every route.
// Each session's Closed runs exactly once, however the connection ends.
func TestRoutesAdmitAndSessionsCloseOnce(t *testing.T) {
	srv, err := New(Config{Logger: discardLogger(), DrainDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	h := &recordingHandler{closed: map[uint64]int{}}
	clientIP := netip.MustParseAddr("203.0.113.7")
	admit := admitFunc(func(r *Request, peer netip.Addr) (Admission, *HandshakeError) {
		if r.Query("deny") != "" {
			return Admission{}, &HandshakeError{Status: http.StatusForbidden, Reason: "denied"}
		}
		if !peer.IsLoopback() {
			t.Errorf("peer %v, want loopback", peer)
		}
		return Admission{UserID: "ann", Authenticated: true, ClientIP: clientIP}, nil
	})
	if err := srv.Handle(Route{Path: "/app", Handler: h, Admitter: admit}); err != nil {
		t.Fatal(err)
	}
	addr := serveTest(t, srv)

	if _, resp := wstest.DialResp(t, addr, "/app?deny=1"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("refused by the admitter: status %d, want 403", resp.StatusCode)
	}
	if _, resp := wstest.DialResp(t, addr, "/nowhere"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("no route: status %d, want 404", resp.StatusCode)
	}
	a := wstest.Dial(t, addr, "/app")
	a.Send(true, ws.OpText, []byte("hi"))
	a.ExpectEcho(ws.OpText, []byte("hi"))
	info := srv.Conns()[0]
	if info.UserID != "ann" || !info.Authenticated || info.ClientIP != clientIP {
		t.Fatalf("identity not from the admitter: %+v", info)
	}
	// Ended three ways: by the server, by the peer's close frame, by a
	// dropped socket.
	b, c := wstest.Dial(t, addr, "/app"), wstest.Dial(t, addr, "/app")
	wstest.WaitFor(t, "three connections", func() bool { return srv.Stats().Open == 3 })
	srv.DisconnectUser("ann", "bye") // closes all three from the server side...
	a.ExpectClose(CloseAdmin)
	b.Send(true, ws.OpClose, []byte{3, 232}) // ...b answers with its own close
	_ = c.Conn.(*net.TCPConn).SetLinger(0)
	c.Conn.Close() // ...c just drops
	wstest.WaitFor(t, "every connection closed", func() bool { return srv.Stats().Open == 0 })

	srv.SetMaintenance(true, "test", false)
	if _, resp := wstest.DialResp(t, addr, "/app"); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("maintenance: status %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if int64(len(h.closed)) != h.opened.Load() || h.opened.Load() != 3 {
		t.Fatalf("%d sessions opened, %d closed: %v", h.opened.Load(), len(h.closed), h.closed)
	}
	for id, n := range h.closed {
		if n != 1 {
			t.Errorf("socket %d: Closed called %d times", id, n)
		}
	}
}

func TestForwardedClient(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	proxy, client := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("198.51.100.2")
	for _, tc := range []struct {
		name  string
		peer  netip.Addr
		xff   string
		trust []netip.Prefix
		want  netip.Addr
	}{
		{"no proxies configured", proxy, "198.51.100.2", nil, proxy},
		{"untrusted peer: its header is ignored", client, "1.2.3.4", proxies, client},
		{"trusted peer, one hop", proxy, "198.51.100.2", proxies, client},
		{"the rightmost untrusted hop wins over a forged left", proxy, "6.6.6.6, 198.51.100.2, 10.0.0.9", proxies, client},
		{"every hop a proxy", proxy, "10.0.0.5, 10.0.0.6", proxies, proxy},
		{"garbage hop", proxy, "198.51.100.2, not-an-ip", proxies, proxy},
		{"empty header", proxy, "", proxies, proxy},
		{"mapped IPv4 is unmapped", proxy, "::ffff:198.51.100.2", proxies, client},
	} {
		if got := ForwardedClient(tc.peer, tc.xff, tc.trust); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
