package netcore

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sockmon/sockmon/netcore/wstest"
)

// ConnQuery.RemotePrefix selects by the client's address as admission
// determined it (behind a trusted proxy, the X-Forwarded-For client), not by
// the TCP peer, which is then the proxy.
func TestConnectionsRemotePrefixMatchesClientIP(t *testing.T) {
	srv, err := New(Config{Logger: discardLogger(), DrainDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	admit := admitFunc(func(r *Request, peer netip.Addr) (Admission, *HandshakeError) {
		return Admission{ClientIP: ForwardedClient(peer, r.XForwardedFor, trusted)}, nil
	})
	if err := srv.Handle(Route{Path: "/app", Handler: Echo(), Admitter: admit}); err != nil {
		t.Fatal(err)
	}
	addr := serveTest(t, srv)
	wstest.Dial(t, addr, "/app", "X-Forwarded-For: 203.0.113.7")
	wstest.Dial(t, addr, "/app", "X-Forwarded-For: 2001:db8::5")
	wstest.Dial(t, addr, "/app") // no proxy: the client is the peer
	wstest.WaitFor(t, "three connections", func() bool { return srv.Stats().Open == 3 })

	for _, tc := range []struct {
		prefix string
		want   string // the ClientIP of the one match; "" for none
	}{
		{"203.0.113.", "203.0.113.7"},
		{"203.0.113.7", "203.0.113.7"},
		{"2001:db8:", "2001:db8::5"},
		{"127.0.0.1", "127.0.0.1"},
		{"127.0.0.1:", ""}, // client addresses have no port
		{"10.", ""},
	} {
		page, err := srv.Connections(ConnQuery{RemotePrefix: tc.prefix})
		if err != nil {
			t.Fatal(err)
		}
		if tc.want == "" {
			if page.Total != 0 {
				t.Errorf("prefix %q: %d matches, want none", tc.prefix, page.Total)
			}
			continue
		}
		if page.Total != 1 || page.Items[0].ClientIP.String() != tc.want {
			t.Errorf("prefix %q: %+v, want the connection of %s", tc.prefix, page.Items, tc.want)
			continue
		}
		// The peer is still there, beside the client: the proxy (loopback).
		if peer := page.Items[0].RemoteAddr; !strings.HasPrefix(peer, "127.0.0.1:") {
			t.Errorf("prefix %q: RemoteAddr %q, want the TCP peer 127.0.0.1:port", tc.prefix, peer)
		}
	}
}
