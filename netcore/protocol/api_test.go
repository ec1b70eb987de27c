package protocol

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/wstest"
)

func TestMaintenanceMode(t *testing.T) {
	srv, addr := testServer(t, Config{ConnRate: -1})
	url := "ws://" + addr + "/ws"
	stay := dialWS(t, url, nil)
	drained := dialWS(t, url, nil)
	drained.roundTrip(`{"type":"ping"}`)

	srv.SetMaintenance(true, "database upgrade", false)
	if srv.Ready() || srv.Maintenance() == nil || srv.Maintenance().Reason != "database upgrade" {
		t.Fatalf("maintenance on: ready=%v state=%+v", srv.Ready(), srv.Maintenance())
	}
	for _, c := range []*wsClient{stay, drained} {
		if m := c.recv(); m["type"] != "system" || m["event"] != "maintenance" || m["message"] != "database upgrade" {
			t.Fatalf("system message: %v", m)
		}
	}
	status, hdr := dialStatus(t, url, nil)
	if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("upgrade in maintenance: %d Retry-After %q", status, hdr.Get("Retry-After"))
	}
	// Connected clients stay without drain.
	if m := stay.roundTrip(`{"type":"ping"}`); m["type"] != "pong" {
		t.Fatalf("connected client during maintenance: %v", m)
	}
	// With drain they are closed with 1012.
	srv.SetMaintenance(true, "draining now", true)
	for _, c := range []*wsClient{stay, drained} {
		if ce := c.ExpectClose(); ce.Code != 1012 {
			t.Fatalf("drain close %d %q, want 1012", ce.Code, ce.Text)
		}
	}
	srv.SetMaintenance(false, "", false)
	wstest.WaitFor(t, "readiness", srv.Ready)
	dialWS(t, url, nil)
	if got := srv.Metrics().Snapshot(); got.Maintenance {
		t.Fatal("maintenance gauge still on")
	}
}

func TestBroadcastPublishAndDisconnects(t *testing.T) {
	srv, addr := testServer(t, Config{JWTSecret: testSecret, ConnRate: -1})
	url := "ws://" + addr + "/ws"
	tok := func(sub string) string {
		return token(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()})
	}
	a1 := dialWS(t, url+"?token="+tok("ann"), nil)
	a2 := dialWS(t, url+"?token="+tok("ann"), nil)
	b := dialWS(t, url+"?token="+tok("ben"), nil)
	anon := dialWS(t, url, nil)
	b.roundTrip(`{"type":"join","room":"ops"}`)

	n, err := srv.Broadcast([]byte(`{"notice":"hello"}`), "")
	if err != nil || n != 4 {
		t.Fatalf("Broadcast: %d %v, want 4 clients", n, err)
	}
	for _, c := range []*wsClient{a1, a2, b, anon} {
		if got := asJSON(c.recv()); got != `{"data":{"notice":"hello"},"type":"broadcast"}` {
			t.Fatalf("broadcast: %s", got)
		}
	}
	if _, err := srv.Broadcast([]byte(`{bad`), ""); err == nil {
		t.Fatal("Broadcast of invalid JSON accepted")
	}
	if n, _ := srv.Broadcast([]byte(`1`), "ops"); n != 1 {
		t.Fatalf("room broadcast reached %d", n)
	}
	b.recv()
	if n, err := srv.Publish("ops", []byte(`"from the server"`)); err != nil || n != 1 {
		t.Fatalf("Publish: %d %v", n, err)
	}
	if got := asJSON(b.recv()); got != `{"data":"from the server","from":"server","room":"ops","type":"message"}` {
		t.Fatalf("server publish: %s", got)
	}

	yes := true
	page, err := srv.Connections(ConnQuery{ConnQuery: netcore.ConnQuery{Authenticated: &yes, SortBy: "messages", Desc: true, Limit: 2}})
	if err != nil || page.Total != 3 || len(page.Items) != 2 || page.Items[0].UserID != "ben" {
		t.Fatalf("Connections: %+v %v", page, err)
	}
	if page, _ := srv.Connections(ConnQuery{Room: "ops"}); page.Total != 1 || page.Items[0].Rooms[0] != "ops" {
		t.Fatalf("room filter: %+v", page)
	}
	if page, _ := srv.Connections(ConnQuery{ConnQuery: netcore.ConnQuery{RemotePrefix: "127.0.0.1", Offset: 3}}); page.Total != 4 || len(page.Items) != 1 {
		t.Fatalf("remote prefix and offset: %+v", page)
	}
	for _, q := range []netcore.ConnQuery{{Limit: 1001}, {SortBy: "age"}, {Offset: -1}} {
		q := ConnQuery{ConnQuery: q}
		if _, err := srv.Connections(q); err == nil {
			t.Errorf("Connections(%+v) accepted", q)
		}
	}

	if n := srv.DisconnectUser("ann", "account locked"); n != 2 {
		t.Fatalf("DisconnectUser closed %d, want 2", n)
	}
	for _, c := range []*wsClient{a1, a2} {
		if ce := c.ExpectClose(); ce.Code != 4000 || ce.Text != "account locked" {
			t.Fatalf("close %d %q", ce.Code, ce.Text)
		}
	}
	if n := srv.DisconnectAll("maintenance window", 1, time.Millisecond); n < 2 {
		t.Fatalf("DisconnectAll scheduled %d", n)
	}
	for _, c := range []*wsClient{b, anon} {
		if ce := c.ExpectClose(); ce.Code != 4000 {
			t.Fatalf("close %d", ce.Code)
		}
	}
	wstest.WaitFor(t, "every connection to close", func() bool { return srv.Stats().Open == 0 })
	if srv.DisconnectSocket(12345, "x") {
		t.Fatal("DisconnectSocket of an unknown id reported success")
	}
}

func TestManyRoomsCap(t *testing.T) {
	_, addr := testServer(t, Config{MaxRoomsPerConn: 3})
	c := dialWS(t, "ws://"+addr+"/ws", nil)
	for i := 0; i < 3; i++ {
		c.roundTrip(fmt.Sprintf(`{"type":"join","room":"r%d"}`, i))
	}
	if m := c.roundTrip(`{"type":"join","id":1,"room":"r9"}`); m["code"] != "too_large" {
		t.Fatalf("fourth room: %v, want too_large", m)
	}
}
