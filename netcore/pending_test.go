package netcore

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/sockmon/sockmon/netcore/wstest"
)

// Connections still in the handshake are capped in all and per peer
// address; a trusted proxy's address is exempt from the per-address cap.
func TestPendingCaps(t *testing.T) {
	srv, addr := testServer(t, Config{MaxPending: 4, MaxPendingPerIP: 2})
	dialFrom := func(src string) net.Conn {
		t.Helper()
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closed := func(c net.Conn) bool {
		_ = c.SetReadDeadline(deadline())
		_, err := c.Read(make([]byte, 1))
		return err != nil && !isTimeout(err)
	}
	a1, a2 := dialFrom("127.0.0.2"), dialFrom("127.0.0.2")
	wstest.WaitFor(t, "two pending", func() bool { return srv.pending.Load() == 2 })
	if a3 := dialFrom("127.0.0.2"); !closed(a3) {
		t.Fatal("a third idle connection from one address was kept (per-address cap 2)")
	}
	dialFrom("127.0.0.3")
	dialFrom("127.0.0.4")
	wstest.WaitFor(t, "four pending", func() bool { return srv.pending.Load() == 4 })
	if c := dialFrom("127.0.0.5"); !closed(c) {
		t.Fatal("a fifth pending connection was kept (cap 4)")
	}
	_ = a1.Close()
	_ = a2.Close()
	wstest.WaitFor(t, "room again", func() bool { return srv.pending.Load() == 2 })
	wstest.Dial(t, addr, "/echo") // a real client gets in, and its upgrade ends its pending count
	wstest.WaitFor(t, "the upgrade to leave the count", func() bool { return srv.pending.Load() == 2 && srv.Stats().Open == 1 })
	if got := srv.Stats().Rejected; got != 2 {
		t.Fatalf("%d rejections counted, want 2", got)
	}
}

func TestPendingPerIPExemptsTrustedProxies(t *testing.T) {
	srv, addr := testServer(t, Config{MaxPending: 10, MaxPendingPerIP: 1, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	wstest.WaitFor(t, "three pending from the trusted proxy", func() bool { return srv.pending.Load() == 3 })
}

func deadline() time.Time { return time.Now().Add(2 * time.Second) }

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
