package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"
	"github.com/sockmon/sockmon/netcore/backplane/redistest"
	"github.com/sockmon/sockmon/netcore/wstest"
)

// benchNodeArgs lift the per-IP and per-connection limits a benchmark's
// few source addresses would hit.
var benchNodeArgs = []string{"--max-conns", "20000", "--max-pending-per-ip", "1000", "--conn-rate", "0", "--message-rate", "0",
	"--message-bytes-rate", "0", "--room-publish-rate", "0", "--ping-interval", "0", "--idle-timeout", "0", "--close-log-rate", "1"}

func startBenchNode(b *testing.B, args ...string) bpNode {
	b.Helper()
	_, ws, ctl, _ := startServeLogs(b, []string{"SOCKMON_ADMIN_SECRET=" + checkTestAdminSecret}, append(slices.Clone(benchNodeArgs), args...)...)
	return bpNode{ws, ctl}
}

// slowProxy forwards TCP to target, holding every chunk for delay in each
// direction: a Redis that answers slowly.
func slowProxy(b *testing.B, target string, delay time.Duration) string {
	return tcpProxy(b, target, func(dst, src net.Conn, _ bool, _ <-chan struct{}) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				time.Sleep(delay)
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
}

// Local echo latency on a node whose Redis answers every chunk 50 ms late,
// against a node without a backplane, in the same run, probed alternately.
// Both nodes carry the same room traffic (a publisher at 200/s into a room
// of 10 local members), which on the first node goes through the slow
// Redis. Reports both p50 and p99 and p99 ratio slow/none (1.0: no added
// latency).
//
//	go test ./cmd/sockmon -run '^$' -bench BackplaneSlowRedisEcho -benchtime 3000x
func BenchmarkBackplaneSlowRedisEcho(b *testing.B) {
	redis := redistest.Start(b)
	proxy := slowProxy(b, redis.Addr(), 50*time.Millisecond)
	slow := startBenchNode(b, "--redis-url", "redis://"+proxy+"?read_timeout=5s&write_timeout=5s")
	none := startBenchNode(b)
	for _, nd := range []bpNode{slow, none} {
		var members []*roomClient
		for range 10 {
			m := dialRoomClient(b, nd.ws)
			m.join("traffic")
			members = append(members, m)
		}
		pub := members[0]
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
					_ = pub.c.WriteJSON(map[string]any{"type": "publish", "room": "traffic", "data": i})
				}
			}
		}()
		b.Cleanup(func() { close(stop); <-done })
	}
	echo := func(c *websocket.Conn, i int) time.Duration {
		msg := []byte(`{"type":"echo","id":` + strconv.Itoa(i) + `,"data":"x"}`)
		start := time.Now()
		if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.ReadMessage(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	dial := func(addr string) *websocket.Conn {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	cs, cn := dial(slow.ws), dial(none.ws)
	time.Sleep(time.Second) // the backplane's queue in its steady state
	var ls, ln []time.Duration
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			ls, ln = append(ls, echo(cs, i)), append(ln, echo(cn, i))
		} else {
			ln, ls = append(ln, echo(cn, i)), append(ls, echo(cs, i))
		}
	}
	b.StopTimer()
	sent := metricValue(b, slow.ctl, `sockmon_backplane_messages_total{direction="out",result="sent"}`)
	if sent <= 0 {
		b.Fatalf("the slow node sent %v messages through Redis: the benchmark did not use the backplane", sent)
	}
	q := func(v []time.Duration, p float64) float64 {
		slices.Sort(v)
		return float64(v[int(p*float64(len(v)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(ls, 0.5), "slow-p50-ms")
	b.ReportMetric(q(ls, 0.99), "slow-p99-ms")
	b.ReportMetric(q(ln, 0.5), "none-p50-ms")
	b.ReportMetric(q(ln, 0.99), "none-p99-ms")
	b.ReportMetric(q(ls, 0.99)/q(ln, 0.99), "p99-slow/none")
}

// fanTracker follows every publish of a run to its last delivery.
type fanTracker struct {
	base    time.Time
	members int32
	sent    []atomic.Int64 // ns since base
	done    []atomic.Int64 // ns since base of the last member's delivery
	count   []atomic.Int32
	joined  atomic.Int32
	gone    atomic.Int32 // members whose connection ended
	total   atomic.Int64
}

func newFanTracker(members, publishes int) *fanTracker {
	return &fanTracker{base: time.Now(), members: int32(members), sent: make([]atomic.Int64, publishes),
		done: make([]atomic.Int64, publishes), count: make([]atomic.Int32, publishes)}
}

func (f *fanTracker) now() int64 { return int64(time.Since(f.base)) }

func (f *fanTracker) deliver(seq int) {
	if seq < 0 || seq >= len(f.count) {
		return
	}
	f.total.Add(1)
	if f.count[seq].Add(1) == f.members {
		f.done[seq].Store(f.now())
	}
}

// rawMember is a room member with a raw socket and a goroutine that reads
// frames and reports each message's sequence number to the tracker.
type rawMember struct{ c net.Conn }

// wsKey is a valid Sec-WebSocket-Key (16 bytes, base64).
const wsKey = "dGhlIHNhbXBsZSBub25jZQ=="

func dialRawMember(src netip.Addr, addr, room string) (net.Conn, *bufio.Reader, error) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + wsKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		c.Close()
		return nil, nil, err
	}
	rd := bufio.NewReaderSize(c, 16<<10)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	status, err := rd.ReadString('\n')
	if err != nil || !bytes.Contains([]byte(status), []byte(" 101 ")) {
		c.Close()
		return nil, nil, fmt.Errorf("upgrade: %q %v", status, err)
	}
	for {
		l, err := rd.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		if l == "\r\n" {
			break
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	if _, err := c.Write(wstest.ClientFrame(true, 0, ws.OpText, []byte(`{"type":"join","room":"`+room+`"}`), true)); err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, rd, nil
}

// readMember reads frames until the connection ends: the join's ack counts
// as joined, a message's "s" goes to the tracker.
func readMember(rd *bufio.Reader, f *fanTracker) {
	var hdr [8]byte
	buf := make([]byte, 0, 512)
	for {
		if _, err := io.ReadFull(rd, hdr[:2]); err != nil {
			return
		}
		n := int(hdr[1] & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(rd, hdr[:2]); err != nil {
				return
			}
			n = int(binary.BigEndian.Uint16(hdr[:2]))
		case 127:
			if _, err := io.ReadFull(rd, hdr[:8]); err != nil {
				return
			}
			n = int(binary.BigEndian.Uint64(hdr[:8]))
		}
		buf = slices.Grow(buf[:0], n)[:n]
		if _, err := io.ReadFull(rd, buf); err != nil {
			return
		}
		if i := bytes.Index(buf, []byte(`{"s":`)); i >= 0 {
			s := buf[i+5:]
			j := bytes.IndexByte(s, '}')
			if seq, err := strconv.Atoi(string(s[:max(j, 0)])); err == nil {
				f.deliver(seq)
			}
		} else if bytes.Contains(buf, []byte(`"ack"`)) {
			f.joined.Add(1)
		}
	}
}

// fanSources are the local addresses the members dial from (8 x 10,000
// ports would do; 8 spread the kernel's per-address port search).
func fanSources() []netip.Addr {
	var out []netip.Addr
	for i := 2; i <= 9; i++ {
		out = append(out, netip.AddrFrom4([4]byte{127, 0, 0, byte(i)}))
	}
	return out
}

const (
	fanMembers     = 10_000
	fanPacedRate   = 1 // publishes per second in the latency phase
	fanPacedCount  = 30
	fanBurstCount  = 20 // publishes back to back in the throughput phase
	fanDialWorkers = 64
)

type fanResult struct {
	deliveriesPerSec float64
	p50, p99         time.Duration
}

// runFanOut joins fanMembers members spread over memberAddrs, publishes
// from pubAddr, and measures a paced phase (publish-to-last-delivery) and a
// burst (deliveries per second).
func runFanOut(b *testing.B, pubAddr string, memberAddrs []string, room string) fanResult {
	b.Helper()
	total := fanPacedCount + fanBurstCount
	f := newFanTracker(fanMembers, total)
	srcs := fanSources()
	conns := make([]net.Conn, fanMembers)
	var wg, readers sync.WaitGroup
	errs := make(chan error, fanMembers)
	jobs := make(chan int)
	for range fanDialWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				c, rd, err := dialRawMember(srcs[i%len(srcs)], memberAddrs[i%len(memberAddrs)], room)
				if err != nil {
					errs <- err
					continue
				}
				conns[i] = c
				readers.Add(1)
				go func() { defer readers.Done(); readMember(rd, f); f.gone.Add(1) }()
			}
		}()
	}
	for i := range fanMembers {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		readers.Wait()
	}()
	select {
	case err := <-errs:
		b.Fatalf("dial a member: %v", err)
	default:
	}
	deadline := time.Now().Add(60 * time.Second)
	for f.joined.Load() < fanMembers {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d members joined", f.joined.Load(), fanMembers)
		}
		time.Sleep(10 * time.Millisecond)
	}
	pub, _, err := websocket.DefaultDialer.Dial("ws://"+pubAddr+"/ws", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	go func() {
		for {
			if _, _, err := pub.ReadMessage(); err != nil {
				return
			}
		}
	}()
	send := func(seq int) {
		f.sent[seq].Store(f.now())
		if err := pub.WriteMessage(websocket.TextMessage, []byte(`{"type":"publish","room":"`+room+`","data":{"s":`+strconv.Itoa(seq)+`}}`)); err != nil {
			b.Fatal(err)
		}
	}
	if err := pub.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"`+room+`"}`)); err != nil {
		b.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the publisher's node subscribed
	waitDone := func(from, to int) {
		deadline := time.Now().Add(90 * time.Second)
		for seq := from; seq < to; seq++ {
			for f.done[seq].Load() == 0 {
				if time.Now().After(deadline) {
					b.Fatalf("publish %d reached %d of %d members (%d members' connections ended)", seq, f.count[seq].Load(), fanMembers, f.gone.Load())
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	tick := time.NewTicker(time.Second / fanPacedRate)
	for seq := range fanPacedCount {
		<-tick.C
		send(seq)
	}
	tick.Stop()
	waitDone(0, fanPacedCount)
	for seq := fanPacedCount; seq < total; seq++ {
		send(seq)
	}
	waitDone(fanPacedCount, total)

	lat := make([]time.Duration, fanPacedCount)
	for seq := range fanPacedCount {
		lat[seq] = time.Duration(f.done[seq].Load() - f.sent[seq].Load())
	}
	slices.Sort(lat)
	var last int64
	for seq := fanPacedCount; seq < total; seq++ {
		last = max(last, f.done[seq].Load())
	}
	span := time.Duration(last - f.sent[fanPacedCount].Load())
	return fanResult{
		deliveriesPerSec: float64(fanBurstCount*fanMembers) / span.Seconds(),
		p50:              lat[len(lat)/2],
		p99:              lat[int(0.99*float64(len(lat)-1))],
	}
}

// Cross-node room fan-out: a publisher on node 1, 10,000 members spread
// over nodes 2 and 3 (client sockets from 127.0.0.2-9), against the same
// room of 10,000 members and its publisher on a single node without a
// backplane, in the same run (single first, then cross, b.N times
// alternately; medians reported). Two phases each: 30 publishes at 1/s
// (publish-to-last-delivery p50 and p99) and 20 back to back (deliveries
// per second). The members are read by this process's goroutines, on the
// same 2 cores as the nodes: the figures are the ratio, not the absolute
// numbers.
//
//	go test ./cmd/sockmon -run '^$' -bench BackplaneRoomFanOut -benchtime 3x -timeout 30m
func BenchmarkBackplaneRoomFanOut(b *testing.B) {
	redis := redistest.Start(b)
	url := "--redis-url=" + redis.URL()
	single := startBenchNode(b)
	n1, n2, n3 := startBenchNode(b, url), startBenchNode(b, url), startBenchNode(b, url)
	var singles, crosses []fanResult
	b.ResetTimer()
	for i := range b.N {
		room := "fan" + strconv.Itoa(i)
		singles = append(singles, runFanOut(b, single.ws, []string{single.ws}, room))
		crosses = append(crosses, runFanOut(b, n1.ws, []string{n2.ws, n3.ws}, room))
	}
	b.StopTimer()
	med := func(rs []fanResult, get func(fanResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	dps := func(r fanResult) float64 { return r.deliveriesPerSec }
	p50 := func(r fanResult) float64 { return float64(r.p50.Microseconds()) / 1000 }
	p99 := func(r fanResult) float64 { return float64(r.p99.Microseconds()) / 1000 }
	b.ReportMetric(med(singles, dps), "single-deliveries/s")
	b.ReportMetric(med(crosses, dps), "cross-deliveries/s")
	b.ReportMetric(med(crosses, dps)/med(singles, dps), "deliveries-cross/single")
	b.ReportMetric(med(singles, p50), "single-p50-ms")
	b.ReportMetric(med(singles, p99), "single-p99-ms")
	b.ReportMetric(med(crosses, p50), "cross-p50-ms")
	b.ReportMetric(med(crosses, p99), "cross-p99-ms")
	b.ReportMetric(med(crosses, p99)-med(singles, p99), "added-p99-ms")
}
