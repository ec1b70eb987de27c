package netcore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/sockmon/sockmon/netcore/wsproto"
)

// The embedding API: what a Go program (and the control sidecar) can read
// and do on a running server. Every method is safe for concurrent use and
// never takes a lock that the message path holds for long: snapshots copy
// per shard, fan-outs copy the member list and write outside any lock.

// ConnQuery selects, sorts and pages connections. Zero fields select all.
type ConnQuery struct {
	UserID        string
	Authenticated *bool
	Room          string
	// RemotePrefix matches the start of the remote address ("10.1.").
	RemotePrefix string
	// SortBy is "connectedAt" (default), "messages" (in + out) or "errors".
	SortBy string
	Desc   bool
	// Limit is the page size, 1 to MaxPageSize; 0 means 100.
	Limit  int
	Offset int
}

// MaxPageSize caps ConnQuery.Limit.
const MaxPageSize = 1000

// ConnPage is one page of connections and the number that matched.
type ConnPage struct {
	Total int
	Items []ConnInfo
}

// ErrBadQuery reports a ConnQuery field out of range.
var ErrBadQuery = errors.New("netcore: bad connection query")

// Connections returns the page of upgraded connections that q selects (the
// seed's getConnectionsData).
func (s *Server) Connections(q ConnQuery) (ConnPage, error) {
	if q.Limit == 0 {
		q.Limit = 100
	}
	if q.Limit < 0 || q.Limit > MaxPageSize {
		return ConnPage{}, fmt.Errorf("%w: limit %d, want 1 to %d", ErrBadQuery, q.Limit, MaxPageSize)
	}
	if q.Offset < 0 {
		return ConnPage{}, fmt.Errorf("%w: offset %d is negative", ErrBadQuery, q.Offset)
	}
	var key func(a, b *ConnInfo) int
	switch q.SortBy {
	case "", "connectedAt":
		key = func(a, b *ConnInfo) int { return a.ConnectedAt.Compare(b.ConnectedAt) }
	case "messages":
		key = func(a, b *ConnInfo) int { return cmpU(a.MessagesIn+a.MessagesOut, b.MessagesIn+b.MessagesOut) }
	case "errors":
		key = func(a, b *ConnInfo) int { return cmpU(a.Errors, b.Errors) }
	default:
		return ConnPage{}, fmt.Errorf("%w: sort %q, want connectedAt, messages or errors", ErrBadQuery, q.SortBy)
	}
	var all []ConnInfo
	s.reg.each(func(c *Conn) {
		st := c.state.Load()
		if st != stateOpen && st != stateClosing {
			return
		}
		if q.UserID != "" && c.userID != q.UserID {
			return
		}
		if q.Authenticated != nil && c.authenticated != *q.Authenticated {
			return
		}
		if q.RemotePrefix != "" && !strings.HasPrefix(c.remote, q.RemotePrefix) {
			return
		}
		if q.Room != "" && !slices.Contains(c.Rooms(), q.Room) {
			return
		}
		all = append(all, c.Info())
	})
	slices.SortStableFunc(all, func(a, b ConnInfo) int {
		r := key(&a, &b)
		if r == 0 {
			r = cmpU(a.ID, b.ID)
		}
		if q.Desc {
			return -r
		}
		return r
	})
	page := ConnPage{Total: len(all)}
	if q.Offset < len(all) {
		page.Items = all[q.Offset:min(q.Offset+q.Limit, len(all))]
	}
	return page, nil
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// DisconnectSocket closes one connection with 4000 and reason (an admin's
// disconnect). It reports whether the socket was open.
func (s *Server) DisconnectSocket(id uint64, reason string) bool {
	c := s.reg.get(id)
	if c == nil || c.state.Load() != stateOpen {
		return false
	}
	c.Close(CloseAdmin, reason)
	return true
}

// DisconnectUser closes every connection of userID with 4000 and reason
// (the seed's forceDisconnectUser). It returns how many it closed.
func (s *Server) DisconnectUser(userID, reason string) int {
	if userID == "" {
		return 0
	}
	n := 0
	for _, c := range s.openConns(func(c *Conn) bool { return c.userID == userID }) {
		c.Close(CloseAdmin, reason)
		n++
	}
	return n
}

// DisconnectAll closes every connection with 4000 and reason, batchSize at a
// time with interval (jittered) between batches, in the background. It
// returns how many connections it will close. batchSize 0 means 100;
// interval 0 means 100ms.
func (s *Server) DisconnectAll(reason string, batchSize int, interval time.Duration) int {
	if batchSize <= 0 {
		batchSize = 100
	}
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	conns := s.openConns(nil)
	s.spawn(func(ctx context.Context) {
		s.closeInBatches(ctx, conns, CloseAdmin, reason, batchSize, interval)
	})
	return len(conns)
}

// Broadcast sends {"type":"broadcast","data":data} to every client of the
// protocol path, or to the members of room when room is not empty. data
// must be valid JSON. It returns the number of clients written to.
func (s *Server) Broadcast(data []byte, room string) (int, error) {
	if err := checkJSON(data); err != nil {
		return 0, err
	}
	var conns []*Conn
	if room != "" {
		conns = s.hub.members([]byte(room), nil)
	} else {
		conns = s.protocolConns()
	}
	buf := getBuffer()
	defer putBuffer(buf)
	b := append((*buf)[:0], `{"type":"broadcast"`...)
	if room != "" {
		b = append(b, `,"room":`...)
		b = appendJSONString(b, room)
	}
	b = append(b, `,"data":`...)
	b = append(b, data...)
	b = append(b, '}')
	*buf = b
	return s.fanOut(conns, b), nil
}

// Publish sends {"type":"message","room":room,"from":"server","data":data}
// to every member of room, as a client's publish would. data must be valid
// JSON. It returns the number of members written to.
func (s *Server) Publish(room string, data []byte) (int, error) {
	if msg := validRoom([]byte(room)); msg != "" {
		return 0, errors.New("netcore: " + msg)
	}
	if err := checkJSON(data); err != nil {
		return 0, err
	}
	return s.publish([]byte(room), nil, data), nil
}

// System sends {"type":"system","event":event,"message":message} to every
// client of the protocol path.
func (s *Server) System(event, message string) int {
	buf := getBuffer()
	defer putBuffer(buf)
	b := append((*buf)[:0], `{"type":"system","event":`...)
	b = appendJSONString(b, event)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, message)
	b = append(b, '}')
	*buf = b
	return s.fanOut(s.protocolConns(), b)
}

// SetRateLimit sets a custom message rate for one user or one socket (the
// seed's setCustomRateLimit); Limit 0 removes it. It takes effect on the
// next message of every connection concerned.
func (s *Server) SetRateLimit(rl RateLimit) error {
	if (rl.UserID == "") == (rl.SocketID == 0) {
		return errors.New("netcore: a rate limit needs exactly one of UserID and SocketID")
	}
	if rl.Limit < 0 || (rl.Limit > 0 && rl.Window <= 0) {
		return fmt.Errorf("netcore: rate limit %d per %s: want a positive limit per positive window", rl.Limit, rl.Window)
	}
	s.overrides.set(rl)
	s.limitGen.Add(1)
	return nil
}

// RateLimits lists the custom rate limits in force.
func (s *Server) RateLimits() []RateLimit { return s.overrides.list() }

// Rooms lists the rooms and their sizes.
func (s *Server) Rooms() []RoomInfo { return s.hub.rooms() }

// publish encodes one message frame for the room and writes it to every
// member. from is the publishing connection, or nil for the server.
func (s *Server) publish(room []byte, from *Conn, data []byte) int {
	members := connSlices.Get().(*[]*Conn)
	conns := s.hub.members(room, (*members)[:0])
	buf := getBuffer()
	b := append((*buf)[:0], `{"type":"message","room":`...)
	b = appendJSONString(b, string(room))
	b = append(b, `,"from":`...)
	if from != nil {
		b = from.appendFrom(b)
	} else {
		b = append(b, `"server"`...)
	}
	b = append(b, `,"data":`...)
	b = append(b, data...)
	b = append(b, '}')
	*buf = b
	n := s.fanOut(conns, b)
	putBuffer(buf)
	clear(conns)
	*members = conns[:0]
	connSlices.Put(members)
	return n
}

// fanOut writes one text message, encoded once, to every open connection
// in conns. It never blocks on a slow reader.
func (s *Server) fanOut(conns []*Conn, payload []byte) int {
	if len(conns) == 0 {
		return 0
	}
	fb := getBuffer()
	hl := wsproto.ServerHeaderLen(len(payload))
	f := append((*fb)[:0], make([]byte, hl)...)
	wsproto.PutHeader(f, true, false, ws.OpText, len(payload))
	f = append(f, payload...)
	*fb = f
	n := writeAll(conns, f)
	putBuffer(fb)
	return n
}

// fanOutChunk is the fan-out size above which the writes are split over
// the cores: each write is a sendmsg, and one goroutine alone would leave
// the other cores idle.
const fanOutChunk = 512

// writeAll writes frame to every connection and returns how many took it.
// Large fan-outs run in parallel on the runner, one chunk per core; frame
// must stay valid until writeAll returns, which it does after every chunk.
func writeAll(conns []*Conn, frame []byte) int {
	chunks := min(runtime.GOMAXPROCS(0), (len(conns)+fanOutChunk-1)/fanOutChunk)
	if chunks <= 1 {
		return writeChunk(conns, frame)
	}
	var wg sync.WaitGroup
	var total atomic.Int64
	size := (len(conns) + chunks - 1) / chunks
	for i := size; i < len(conns); i += size {
		part := conns[i:min(i+size, len(conns))]
		wg.Add(1)
		taskRunner.run(func() {
			total.Add(int64(writeChunk(part, frame)))
			wg.Done()
		})
	}
	n := writeChunk(conns[:size], frame)
	wg.Wait()
	return n + int(total.Load())
}

func writeChunk(conns []*Conn, frame []byte) int {
	n := 0
	for _, c := range conns {
		if c.WriteFrame(frame) == nil {
			n++
		}
	}
	return n
}

// openConns copies the open connections that keep selects (all if nil).
func (s *Server) openConns(keep func(*Conn) bool) []*Conn {
	var out []*Conn
	s.reg.each(func(c *Conn) {
		if c.state.Load() == stateOpen && (keep == nil || keep(c)) {
			out = append(out, c)
		}
	})
	return out
}

// protocolConns copies the open connections of the protocol path.
func (s *Server) protocolConns() []*Conn {
	return s.openConns(func(c *Conn) bool { return c.handler == s.cfg.Handler })
}

// spawn runs f on a goroutine the server owns: Shutdown cancels its context
// and waits for it.
func (s *Server) spawn(f func(ctx context.Context)) {
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		f(s.bgCtx)
	}()
}

// closeInBatches closes conns with code and reason, batchSize at a time
// (0: in drainBatches batches), with a jittered pause of about gap between
// batches (0.5 to 1.5 gap), until ctx ends.
func (s *Server) closeInBatches(ctx context.Context, conns []*Conn, code ws.StatusCode, reason string, batchSize int, gap time.Duration) {
	rand.Shuffle(len(conns), func(i, j int) { conns[i], conns[j] = conns[j], conns[i] })
	if batchSize <= 0 {
		batchSize = max(1, (len(conns)+drainBatches-1)/drainBatches)
	}
	for i := 0; i < len(conns); i += batchSize {
		for _, c := range conns[i:min(i+batchSize, len(conns))] {
			if c.state.Load() == stateHandshake {
				_ = c.nc.Close()
				continue
			}
			c.Close(code, reason)
		}
		if i+batchSize < len(conns) && gap > 0 {
			select {
			case <-time.After(gap/2 + time.Duration(rand.Int64N(int64(gap)))):
			case <-ctx.Done():
				return
			}
		}
	}
}

// checkJSON validates a raw JSON value.
func checkJSON(data []byte) error {
	s := scanner{p: data}
	s.skipSpace()
	if err := s.value(1); err != nil {
		return fmt.Errorf("netcore: data is not valid JSON: %w", err)
	}
	s.skipSpace()
	if s.i != len(data) {
		return errors.New("netcore: data is not valid JSON: trailing bytes")
	}
	return nil
}
