package main

import (
	"bytes"
	"runtime"
	"sync"

	"github.com/cloudwego/netpoll"
	"github.com/gobwas/ws"
)

// room is the one room of the server: every connection that sent a join.
var room = &members{set: make(map[*conn]struct{})}

type members struct {
	mu   sync.Mutex
	set  map[*conn]struct{}
	list []*conn // snapshot reused by fan-outs; guarded by mu
}

func (m *members) leave(c *conn) {
	m.mu.Lock()
	delete(m.set, c)
	m.mu.Unlock()
}

// request handles a join or a publish from st, whose write lock the caller
// holds, writing the ack to w. It reports false for any other text message.
// A publish lets go of st's lock while it writes to the members (st among
// them): two publishers each holding their own lock while waiting for the
// other's would deadlock.
func (m *members) request(st *conn, w netpoll.Writer, msg []byte) bool {
	switch {
	case bytes.HasPrefix(msg, []byte(`{"type":"join"`)):
		m.mu.Lock()
		m.set[st] = struct{}{}
		m.mu.Unlock()
	case bytes.HasPrefix(msg, []byte(`{"type":"publish"`)):
		st.mu.Unlock()
		m.publish(field(msg, "room"), field(msg, "data"))
		st.mu.Lock()
	default:
		return false
	}
	ack := append([]byte(`{"type":"ack","id":`), field(msg, "id")...)
	writeFrame(w, true, ws.OpText, append(ack, '}'))
	return true
}

// publish writes one message frame to every member and flushes it, from one
// goroutine per core.
func (m *members) publish(room, data []byte) {
	msg := append([]byte(`{"type":"message","room":"`), room...)
	msg = append(msg, `","from":"raw","data":"`...)
	msg = append(msg, data...)
	msg = append(msg, `"}`...)
	m.mu.Lock()
	list := m.list[:0]
	for c := range m.set {
		list = append(list, c)
	}
	m.list = list
	m.mu.Unlock()
	n := runtime.GOMAXPROCS(0)
	per := (len(list) + n - 1) / n
	var wg sync.WaitGroup
	for i := 0; i < len(list); i += per {
		part := list[i:min(i+per, len(list))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range part {
				c.mu.Lock()
				writeFrame(c.c.Writer(), true, ws.OpText, msg)
				_ = c.c.Writer().Flush()
				c.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// field returns the raw value of "key" in the flat JSON object msg: a
// string's contents without quotes, or a number; nil when absent.
func field(msg []byte, key string) []byte {
	i := bytes.Index(msg, []byte(`"`+key+`":`))
	if i < 0 {
		return nil
	}
	v := msg[i+len(key)+3:]
	if len(v) > 0 && v[0] == '"' {
		if j := bytes.IndexByte(v[1:], '"'); j >= 0 {
			return v[1 : 1+j]
		}
		return nil
	}
	j := bytes.IndexAny(v, ",}")
	if j < 0 {
		return nil
	}
	return bytes.TrimSpace(v[:j])
}
