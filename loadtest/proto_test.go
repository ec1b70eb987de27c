package loadtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// protoServer speaks the part of sockmon's client protocol the generator
// uses (echo, join, publish), re-encoding every reply through a map so field
// order differs from the request, as a real server's encoder may.
type protoServer struct {
	mu    sync.Mutex
	rooms map[string]map[*protoConn]bool
}

type protoConn struct {
	mu sync.Mutex
	c  *websocket.Conn
}

func (p *protoConn) send(v any) {
	b, _ := json.Marshal(v)
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.c.WriteMessage(websocket.TextMessage, b)
}

func startProto(t *testing.T) string {
	t.Helper()
	ps := &protoServer{rooms: map[string]map[*protoConn]bool{}}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		pc := &protoConn{c: c}
		defer func() {
			ps.mu.Lock()
			for _, m := range ps.rooms {
				delete(m, pc)
			}
			ps.mu.Unlock()
			c.Close()
		}()
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			var req map[string]any
			if json.Unmarshal(msg, &req) != nil {
				pc.send(map[string]any{"type": "error", "code": "bad_request", "message": "not JSON"})
				continue
			}
			switch req["type"] {
			case "echo":
				pc.send(map[string]any{"type": "echo", "id": req["id"], "data": req["data"]})
			case "join":
				room, _ := req["room"].(string)
				ps.mu.Lock()
				if ps.rooms[room] == nil {
					ps.rooms[room] = map[*protoConn]bool{}
				}
				ps.rooms[room][pc] = true
				ps.mu.Unlock()
				pc.send(map[string]any{"type": "ack", "id": req["id"]})
			case "publish":
				room, _ := req["room"].(string)
				pc.send(map[string]any{"type": "ack", "id": req["id"]})
				ps.mu.Lock()
				var members []*protoConn
				for m := range ps.rooms[room] {
					members = append(members, m)
				}
				ps.mu.Unlock()
				for _, m := range members {
					m.send(map[string]any{"type": "message", "room": room, "from": "anon:1", "data": req["data"]})
				}
			default:
				pc.send(map[string]any{"type": "error", "id": req["id"], "code": "bad_request", "message": "unknown type"})
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}

func TestRunEchoJSON(t *testing.T) {
	url := startProto(t)
	rep := runOrFail(t, Config{URL: url, Conns: 20, Rate: 1000, Duration: time.Second, Mode: ModeEchoJSON, Size: 100})
	if rep.Errors.Total != 0 || rep.Messages.Received < 900 || rep.Messages.Received != rep.Messages.Sent {
		t.Fatalf("sent %d received %d errors %v", rep.Messages.Sent, rep.Messages.Received, rep.Errors.ByClass)
	}
}

// An echo server answering binary echo with something else is counted as
// echo_mismatch.
func TestRunEchoMismatch(t *testing.T) {
	url := startProto(t) // answers a binary frame's non-JSON with an error envelope in text
	rep := runOrFail(t, Config{URL: url, Conns: 2, Rate: 100, Duration: 300 * time.Millisecond})
	if rep.Errors.ByClass[ErrClassMismatch] == 0 || rep.Messages.Received != 0 {
		t.Fatalf("received %d errors %v, want only echo_mismatch", rep.Messages.Received, rep.Errors.ByClass)
	}
}

func TestRunPublish(t *testing.T) {
	url := startProto(t)
	for _, rate := range []float64{0, 50} {
		rep := runOrFail(t, Config{URL: url, Conns: 100, Rate: rate, Duration: time.Second, Mode: ModePublish, Size: 64})
		p := rep.Publish
		if p == nil {
			t.Fatal("no publish section")
		}
		t.Logf("rate %g: %d publishes, %d/%d deliveries, %.0f/s, fan-out p99 %.3fms, errors %v",
			rate, p.Publishes, p.Deliveries, p.ExpectedDeliveries, p.DeliveriesPerSecond, p.FanoutMS.P99, rep.Errors.ByClass)
		if p.Members != 100 || p.Publishes == 0 || p.Deliveries != p.ExpectedDeliveries || rep.Errors.Total != 0 {
			t.Fatalf("rate %g: members %d publishes %d deliveries %d/%d errors %v",
				rate, p.Members, p.Publishes, p.Deliveries, p.ExpectedDeliveries, rep.Errors.ByClass)
		}
		if p.Acks != p.Publishes || p.FanoutMS.Count != p.Publishes || rep.Latency.Corrected.Count != p.Deliveries {
			t.Errorf("acks %d, fan-outs %d, latency samples %d for %d publishes",
				p.Acks, p.FanoutMS.Count, rep.Latency.Corrected.Count, p.Publishes)
		}
		if rate > 0 && (p.Publishes < 45 || p.Publishes > 51) {
			t.Errorf("%d publishes at 50/s for 1s", p.Publishes)
		}
	}
}
