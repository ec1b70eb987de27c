package protocol

import (
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// Publishing needs membership unless PublishWithoutJoin; a room's publishes
// are rate-limited for all its publishers together.
func TestPublishNeedsMembershipAndRoomRate(t *testing.T) {
	_, addr := testServer(t, Config{ConnRate: -1, RoomPublishRate: 1, RoomPublishBurst: 2})
	member := dialWS(t, "ws://"+addr+"/ws", nil)
	member.roundTrip(`{"type":"join","room":"r"}`)
	outsider := dialWS(t, "ws://"+addr+"/ws", nil)
	if m := outsider.roundTrip(`{"type":"publish","id":1,"room":"r","data":"spam"}`); m["code"] != CodeNotFound || !strings.Contains(m["message"].(string), "join it") {
		t.Fatalf("a non-member's publish: %v, want not_found", m)
	}
	for i := 0; i < 2; i++ { // the burst
		member.Send(`{"type":"publish","id":2,"room":"r","data":1}`)
		if a, b := member.recv(), member.recv(); a["type"] == "error" || b["type"] == "error" {
			t.Fatalf("publish %d within the burst: %v %v", i, a, b)
		}
	}
	if m := member.roundTrip(`{"type":"publish","id":3,"room":"r","data":1}`); m["code"] != CodeRateLimited || m["retryAfterMs"] == nil {
		t.Fatalf("over the room's rate: %v, want rate_limited with retryAfterMs", m)
	}

	_, open := testServer(t, Config{PublishWithoutJoin: true})
	c := dialWS(t, "ws://"+open+"/ws", nil)
	if m := c.roundTrip(`{"type":"publish","id":1,"room":"r","data":1}`); m["type"] != "ack" {
		t.Fatalf("with PublishWithoutJoin: %v, want ack", m)
	}
}

// A fan-out to members that negotiated permessage-deflate is compressed
// (once, for all of them); the others get it plain.
func TestFanOutIsCompressedForDeflateMembers(t *testing.T) {
	_, addr := testServer(t, Config{ConnRate: -1})
	join := wstest.ClientFrame(true, 0, ws.OpText, []byte(`{"type":"join","room":"r"}`), true)
	zipped := wstest.Dial(t, addr, "/ws", "Sec-WebSocket-Extensions: permessage-deflate")
	plain := wstest.Dial(t, addr, "/ws")
	for _, c := range []*wstest.Client{zipped, plain} {
		c.Write(join)
		c.NextData()
	}
	data := `"` + strings.Repeat("news ", 400) + `"`
	plain.Send(true, ws.OpText, []byte(`{"type":"publish","room":"r","data":`+data+`}`))
	f := zipped.NextData()
	if !f.Header.Rsv1() || len(f.Payload) > 500 || !strings.Contains(string(wstest.Inflate(t, f.Payload)), "news news") {
		t.Fatalf("deflate member: RSV1 %v, %d bytes; want the message compressed", f.Header.Rsv1(), len(f.Payload))
	}
	for {
		f := plain.NextData()
		if f.Header.Rsv1() {
			t.Fatal("a member without deflate got a compressed frame")
		}
		if strings.Contains(string(f.Payload), `"type":"message"`) {
			break
		}
	}
}

// Members that stopped reading cannot make the server queue without bound:
// past the process-wide outbound budget, the connections with a backlog are
// closed as slow consumers, counted, and the queued bytes stay bounded.
func TestOutboundBudget(t *testing.T) {
	const budget = 256 << 10
	srv, addr := testServer(t, Config{ConnRate: -1, MessageRate: -1, MessageBytesRate: -1, RoomPublishRate: -1},
		func(e *netcore.Config) { e.OutboundBudget = budget })
	join := wstest.ClientFrame(true, 0, ws.OpText, []byte(`{"type":"join","room":"r"}`), true)
	var members []*wstest.Client
	for i := 0; i < 20; i++ { // they join, then never read again
		c := wstest.Dial(t, addr, "/ws")
		c.Write(join)
		c.NextData()
		members = append(members, c)
	}
	pub := dialWS(t, "ws://"+addr+"/ws", nil)
	pub.roundTrip(`{"type":"join","room":"r"}`)
	data := `"` + strings.Repeat("x", 32<<10) + `"`
	deadline := time.Now().Add(20 * time.Second)
	for srv.Metrics().Snapshot().Connections.Anonymous > 1 && time.Now().Before(deadline) {
		pub.Send(`{"type":"publish","room":"r","data":` + data + `}`)
		for {
			if m := pub.recv(); m["type"] == "ack" {
				break
			}
		}
		// Bound: the budget, plus what each member may hold before it
		// counts as backlogged (64 KiB and a message).
		if q, bound := srv.queuedBytes(), budget+20*(64<<10+33<<10); q > bound {
			t.Fatalf("%d bytes queued, over %d", q, bound)
		}
	}
	wstest.WaitFor(t, "the members that do not read to be shed", func() bool {
		return srv.Metrics().Snapshot().Connections.Anonymous == 1
	})
	var b strings.Builder
	srv.Metrics().WritePrometheus(&b)
	if !strings.Contains(b.String(), "sockmon_outbound_budget_shed_total ") || strings.Contains(b.String(), "sockmon_outbound_budget_shed_total 0\n") {
		t.Fatal("the budget sheds are not counted in sockmon_outbound_budget_shed_total")
	}
	_ = members
}
