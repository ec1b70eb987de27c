package logs

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore"
)

func closeEvent(code ws.StatusCode, by netcore.Initiator, reason string) netcore.DisconnectEvent {
	return netcore.DisconnectEvent{
		Info: netcore.ConnInfo{ID: 42, UserID: "alice", Authenticated: true, RemoteAddr: "127.0.0.1:5000",
			ClientIP: netip.MustParseAddr("10.1.2.3"), ConnectedAt: time.Now().Add(-1500 * time.Millisecond),
			MessagesIn: 7, MessagesOut: 9},
		Code: code, Reason: reason, Initiator: by,
	}
}

func TestCloseLogLevels(t *testing.T) {
	c := NewCloseLog(slog.New(slog.DiscardHandler), -1)
	for _, tc := range []struct {
		code ws.StatusCode
		by   netcore.Initiator
		want slog.Level
	}{
		{netcore.ClosePolicy, netcore.InitiatorServer, slog.LevelInfo}, // ban, abuse, slow consumer
		{netcore.CloseTooBig, netcore.InitiatorServer, slog.LevelInfo}, // 1009
		{netcore.CloseAdmin, netcore.InitiatorServer, slog.LevelInfo},  // operator
		{netcore.CloseProtocolError, netcore.InitiatorServer, slog.LevelInfo},
		{netcore.CloseInvalidPayload, netcore.InitiatorServer, slog.LevelInfo},
		{netcore.CloseServiceRestart, netcore.InitiatorServer, slog.LevelInfo}, // maintenance drain
		{netcore.CloseNormal, netcore.InitiatorServer, slog.LevelDebug},        // idle timeout
		{netcore.CloseGoingAway, netcore.InitiatorServer, slog.LevelDebug},     // shutdown drain
		{netcore.CloseNormal, netcore.InitiatorClient, slog.LevelDebug},
		{netcore.ClosePolicy, netcore.InitiatorClient, slog.LevelDebug}, // the client's word
		{ws.StatusAbnormalClosure, netcore.InitiatorClient, slog.LevelDebug},
	} {
		ev := closeEvent(tc.code, tc.by, "")
		if got := c.Level(&ev); got != tc.want {
			t.Errorf("close %d by %s: level %s, want %s", tc.code, tc.by, got, tc.want)
		}
	}
}

// A line carries the socket, user, address, duration, counts, code, reason
// and initiator; debug lines only at debug level.
func TestCloseLogLine(t *testing.T) {
	var out lockedBuffer
	info := slog.New(slog.NewJSONHandler(&out, nil))
	c := NewCloseLog(info, -1)
	c.OnDisconnect(closeEvent(netcore.CloseNormal, netcore.InitiatorClient, "bye")) // debug: not written
	c.OnDisconnect(closeEvent(netcore.CloseAdmin, netcore.InitiatorServer, "kicked by ops"))
	recs := records(t, out.String())
	if len(recs) != 1 {
		t.Fatalf("lines at info: %d, want 1:\n%s", len(recs), out.String())
	}
	r := recs[0]
	if r["msg"] != "connection closed" || r["level"] != "INFO" || r["socket"] != 42.0 || r["user"] != "alice" ||
		r["address"] != "10.1.2.3" || r["messagesIn"] != 7.0 || r["messagesOut"] != 9.0 || r["code"] != 4000.0 ||
		r["reason"] != "kicked by ops" || r["initiator"] != "server" || r["authenticated"] != true {
		t.Fatalf("close line: %v", r)
	}
	if d := r["durationMs"].(float64); d < 1500 || d > 60_000 {
		t.Errorf("durationMs %v, want about 1500", d)
	}

	out = lockedBuffer{}
	c = NewCloseLog(slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})), -1)
	c.OnDisconnect(closeEvent(netcore.CloseNormal, netcore.InitiatorClient, "bye"))
	if recs := records(t, out.String()); len(recs) != 1 || recs[0]["level"] != "DEBUG" {
		t.Fatalf("debug close line: %s", out.String())
	}
}

// Over the rate, lines are counted instead of written; the count is taken
// once.
func TestCloseLogRate(t *testing.T) {
	var out lockedBuffer
	c := NewCloseLog(slog.New(slog.NewJSONHandler(&out, nil)), 5)
	for range 50 {
		c.OnDisconnect(closeEvent(netcore.ClosePolicy, netcore.InitiatorServer, "slow consumer"))
	}
	n := strings.Count(out.String(), "\n")
	// 5 in the burst, maybe one more refilled while the loop ran.
	if n < 5 || n > 7 {
		t.Fatalf("%d lines written at 5/s, want about 5", n)
	}
	if got := c.TakeSuppressed(); got != uint64(50-n) {
		t.Fatalf("suppressed %d, want %d", got, 50-n)
	}
	if got := c.TakeSuppressed(); got != 0 {
		t.Fatalf("suppressed again %d, want 0", got)
	}
	// Lines below the level use no token and are not counted.
	quiet := NewCloseLog(slog.New(slog.NewJSONHandler(&out, nil)), 1)
	for range 10 {
		quiet.OnDisconnect(closeEvent(netcore.CloseNormal, netcore.InitiatorClient, ""))
	}
	if got := quiet.TakeSuppressed(); got != 0 {
		t.Fatalf("debug lines at info level counted as suppressed: %d", got)
	}
	if NewCloseLog(slog.New(slog.DiscardHandler), 0).bucket.rate != DefaultCloseLogRate {
		t.Error("rate 0 is not the default")
	}
}

func TestTokenBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newTokenBucket(2, 2, now)
	if !b.take(now) || !b.take(now) || b.take(now) {
		t.Fatal("burst of 2 not honoured")
	}
	if b.take(now.Add(400 * time.Millisecond)) {
		t.Fatal("a token after 0.4 s at 2/s")
	}
	if !b.take(now.Add(600 * time.Millisecond)) {
		t.Fatal("no token after 0.6 s at 2/s")
	}
	if !b.take(now.Add(time.Hour)) || !b.take(now.Add(time.Hour)) || b.take(now.Add(time.Hour)) {
		t.Fatal("refill past the burst")
	}
}
