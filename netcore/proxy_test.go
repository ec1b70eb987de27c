package netcore

import (
	"bufio"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/sockmon/sockmon/netcore/wstest"
)

const upgradeHead = "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

// proxyV2 is a v2 header for client 203.0.113.9:5000, with a TLV (as AWS
// NLBs add) that must be skipped.
func proxyV2(t *testing.T) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP("203.0.113.9"), Port: 5000}, &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 80})
	if err := h.SetTLVs([]proxyproto.TLV{{Type: proxyproto.PP2_TYPE_MIN_CUSTOM + 0x0A, Value: []byte("\x01vpce-0123456789abcdef")}}); err != nil {
		t.Fatal(err)
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// send writes the raw bytes (in pieces, as a slow balancer might) and
// returns the HTTP answer, or nil when the server closed without one.
func send(t *testing.T, addr string, pieces ...[]byte) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, p := range pieces {
		if _, err := c.Write(p); err != nil {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil
	}
	return resp
}

// The client address a PROXY header names (v1 or v2, TLVs skipped) is the
// connection's client address; from an untrusted peer, or missing with
// --proxy-protocol on, or malformed, the connection is closed and counted
// as a rejection.
func TestProxyProtocol(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	client := netip.MustParseAddr("203.0.113.9")
	for _, tc := range []struct {
		name    string
		mode    ProxyMode
		trusted []netip.Prefix
		pieces  [][]byte
		want    netip.Addr // zero: refused without an answer
	}{
		{"v1", ProxyOn, loopback, [][]byte{[]byte("PROXY TCP4 203.0.113.9 127.0.0.1 5000 80\r\n" + upgradeHead)}, client},
		{"v1 in pieces", ProxyOn, loopback, [][]byte{[]byte("PRO"), []byte("XY TCP4 203.0.113.9 127.0.0.1 5000 80\r"), []byte("\n" + upgradeHead)}, client},
		{"v2 with a TLV", ProxyOn, loopback, [][]byte{append(proxyV2(t), upgradeHead...)}, client},
		{"v1 UNKNOWN: the peer's address", ProxyOn, loopback, [][]byte{[]byte("PROXY UNKNOWN\r\n" + upgradeHead)}, netip.MustParseAddr("127.0.0.1")},
		{"optional, none sent", ProxyOptional, loopback, [][]byte{[]byte(upgradeHead)}, netip.MustParseAddr("127.0.0.1")},
		{"on, none sent", ProxyOn, loopback, [][]byte{[]byte(upgradeHead)}, netip.Addr{}},
		{"from an untrusted peer", ProxyOptional, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, [][]byte{[]byte("PROXY TCP4 203.0.113.9 127.0.0.1 5000 80\r\n" + upgradeHead)}, netip.Addr{}},
		{"malformed v1", ProxyOn, loopback, [][]byte{[]byte("PROXY TCP4 not-an-ip 127.0.0.1 5000 80\r\n" + upgradeHead)}, netip.Addr{}},
		{"v1 without its CRLF", ProxyOn, loopback, [][]byte{[]byte("PROXY TCP4 203.0.113.9 127.0.0.1 5000 80 " + string(make([]byte, 200)))}, netip.Addr{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, addr := testServer(t, Config{ProxyProtocol: tc.mode, TrustedProxies: tc.trusted})
			resp := send(t, addr, tc.pieces...)
			if !tc.want.IsValid() {
				if resp != nil {
					t.Fatalf("answered %d, want the connection closed", resp.StatusCode)
				}
				wstest.WaitFor(t, "the rejection to be counted", func() bool {
					return srv.Stats().Rejected == 1
				})
				var b strings.Builder
				srv.Metrics().WritePrometheus(&b)
				if !strings.Contains(b.String(), `sockmon_connections_rejected_total{reason="proxy"} 1`) {
					t.Fatal(`the refusal is not counted as sockmon_connections_rejected_total{reason="proxy"}`)
				}
				return
			}
			if resp == nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade: %v, want 101", resp)
			}
			wstest.WaitFor(t, "the connection", func() bool { return len(srv.Conns()) == 1 })
			if got := srv.Conns()[0].ClientIP; got != tc.want {
				t.Fatalf("client address %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := New(Config{ProxyProtocol: ProxyOn}); err == nil {
		t.Fatal("--proxy-protocol on without trusted proxies was accepted")
	}
}
