package protocol

import (
	"sync"
	"testing"

	"github.com/sockmon/sockmon/netcore"
)

func TestHub(t *testing.T) {
	var h hub
	h.init()
	// The hub keys members by pointer and never dereferences them.
	a, b := new(netcore.Conn), new(netcore.Conn)
	if !h.join("r", a) || h.join("r", a) {
		t.Fatal("join should report only the first join")
	}
	h.join("r", b)
	h.join("s", b)
	if got := h.members([]byte("r"), nil); len(got) != 2 {
		t.Fatalf("members of r: %d", len(got))
	}
	if got := h.members([]byte("nope"), nil); len(got) != 0 {
		t.Fatalf("members of an unknown room: %d", len(got))
	}
	rooms := map[string]int{}
	for _, r := range h.rooms() {
		rooms[r.Name] = r.Members
	}
	if rooms["r"] != 2 || rooms["s"] != 1 || len(rooms) != 2 {
		t.Fatalf("rooms %v", rooms)
	}
	if !h.leave("r", a) || h.leave("r", a) {
		t.Fatal("leave should report only a member's leave")
	}
	h.leave("r", b)
	h.leave("s", b)
	if n := len(h.rooms()); n != 0 {
		t.Fatalf("%d rooms left after everyone left: empty rooms must be deleted", n)
	}
}

// Concurrent joins, leaves and member copies of the same rooms (run with
// -race).
func TestHubConcurrent(t *testing.T) {
	var h hub
	h.init()
	conns := make([]*netcore.Conn, 64)
	for i := range conns {
		conns[i] = new(netcore.Conn)
	}
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			room := []string{"a", "b", "c"}[i%3]
			for range 200 {
				h.join(room, c)
				_ = h.members([]byte(room), nil)
				h.leave(room, c)
			}
		}()
	}
	wg.Wait()
	if n := len(h.rooms()); n != 0 {
		t.Fatalf("%d rooms left", n)
	}
}
